#include <gtest/gtest.h>

#include <fstream>

#include "config/config.hpp"

using namespace rstmon::config;

namespace {
std::string error_of(const std::string& yaml) {
    try {
        load_string(yaml);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST(Config, EmptyDocumentGivesDefaults) {
    const Config c = load_string("");
    EXPECT_EQ(c.workers, 1u);
    EXPECT_EQ(c.flow_table.size, 1u << 20);
    EXPECT_EQ(c.metrics.listen, "127.0.0.1:9580");
    EXPECT_DOUBLE_EQ(c.thresholds.idle_threshold_s, 240);
    EXPECT_FALSE(c.services.empty());
}

TEST(Config, ValuesAreRead) {
    const Config c = load_string(R"(
workers: 2
flow_table: {size: 4096, handshake_timeout: 10s, established_timeout: 2h, closing_timeout: 3s}
metrics: {listen: "0.0.0.0:9999", enabled: false}
thresholds: {idle_threshold: 5m}
services:
  - {name: web, ports: [80, 443]}
ports:
  - {name: span0, device: "net_pcap0,iface=eth1"}
)");
    EXPECT_EQ(c.workers, 2u);
    EXPECT_EQ(c.flow_table.size, 4096u);
    EXPECT_DOUBLE_EQ(c.flow_table.handshake_timeout_s, 10);
    EXPECT_DOUBLE_EQ(c.flow_table.established_timeout_s, 7200);
    EXPECT_DOUBLE_EQ(c.flow_table.closing_timeout_s, 3);
    EXPECT_FALSE(c.metrics.enabled);
    EXPECT_DOUBLE_EQ(c.thresholds.idle_threshold_s, 300);
    ASSERT_EQ(c.services.size(), 1u);
    EXPECT_EQ(c.services[0].ports[1], 443);
    ASSERT_EQ(c.ports.size(), 1u);
    EXPECT_EQ(c.ports[0].device, "net_pcap0,iface=eth1");
}

TEST(Config, ErrorsNameTheKey) {
    EXPECT_EQ(error_of("flow_tabel: {}"), "flow_tabel: unknown key");
    EXPECT_EQ(error_of("flow_table: {sise: 5}"), "flow_table.sise: unknown key");
    EXPECT_EQ(error_of("workers: abc"), "workers: expected an integer, got 'abc'");
    EXPECT_EQ(error_of("workers: 0"), "workers: 0 is out of range [1, 64]");
    EXPECT_EQ(error_of("flow_table: {size: 5}"),
              "flow_table.size: 5 is out of range [1024, 1073741824]");
    EXPECT_EQ(error_of("metrics: {enabled: maybe}"),
              "metrics.enabled: expected true or false, got 'maybe'");
    EXPECT_EQ(error_of("thresholds: {idle_threshold: 5parsecs}"),
              "thresholds.idle_threshold: unknown duration unit 'parsecs' in '5parsecs' (use ms, "
              "s, m, h)");
    EXPECT_EQ(error_of("metrics: {listen: nohost}"), "metrics.listen: 'nohost' is not host:port");
    EXPECT_EQ(error_of("events: {ring_size: 1000}"),
              "events.ring_size: 1000 is not a power of two");
    EXPECT_EQ(error_of("services: [{name: a, ports: [80]}, {name: b, ports: [80]}]"),
              "services[1].ports: port 80 already belongs to another service");
    EXPECT_EQ(error_of("services: [{name: Bad Name, ports: [1]}]"),
              "services[0].name: 'Bad Name' must be 1-32 characters of a-z 0-9 _ - and not "
              "'other'");
    EXPECT_EQ(error_of("ports: [{name: x}]"), "ports[0].device: missing");
    EXPECT_EQ(error_of("log_level: loud"),
              "log_level: 'loud' is not one of trace, debug, info, warning, error, critical, off");
    EXPECT_EQ(error_of("- just a list"), "top level: expected a mapping, got a list");
    EXPECT_NE(error_of("workers: [1, 2"), "");  // YAML syntax error
}

TEST(Config, ShippedConfigLoadsAndEqualsDefaults) {
    const std::string path = std::string(RSTMON_SOURCE_ROOT) + "/config/rstmon.yaml";
    std::ifstream in(path);
    if (!in) GTEST_SKIP() << "no " << path;
    const Config c = load_file(path);
    const Config d = defaults();
    EXPECT_EQ(c.workers, d.workers);
    EXPECT_EQ(c.flow_table.size, d.flow_table.size);
    EXPECT_DOUBLE_EQ(c.flow_table.handshake_timeout_s, d.flow_table.handshake_timeout_s);
    EXPECT_DOUBLE_EQ(c.flow_table.established_timeout_s, d.flow_table.established_timeout_s);
    EXPECT_DOUBLE_EQ(c.flow_table.closing_timeout_s, d.flow_table.closing_timeout_s);
    EXPECT_EQ(c.rx.mbufs, d.rx.mbufs);
    EXPECT_EQ(c.rx.burst, d.rx.burst);
    EXPECT_EQ(c.metrics.listen, d.metrics.listen);
    EXPECT_EQ(c.events.max_per_second, d.events.max_per_second);
    EXPECT_DOUBLE_EQ(c.thresholds.idle_threshold_s, d.thresholds.idle_threshold_s);
    ASSERT_EQ(c.services.size(), d.services.size());
    for (size_t i = 0; i < c.services.size(); ++i) {
        EXPECT_EQ(c.services[i].name, d.services[i].name);
        EXPECT_EQ(c.services[i].ports, d.services[i].ports);
    }
}
