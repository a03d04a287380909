#include <gtest/gtest.h>

#include <cstdio>
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

// services sni/host, triggers and match (lib/match): parsing, limits and pattern compilation.

TEST(Config, ServiceNamesTriggersAndMatchWindow) {
    const Config c = load_string(R"(
services:
  - {name: api, sni: ['api\.example\.com'], ports: [8443]}
  - {name: web, host: ['(www\.)?example\.org']}
triggers:
  - {name: blocked_word, pattern: 'forbidden-word'}
match:
  window: 2048
  pending_flows: 16
  names: 100
)");
    ASSERT_EQ(c.services.size(), 2u);
    EXPECT_EQ(c.services[0].sni, std::vector<std::string>{"api\\.example\\.com"});
    EXPECT_EQ(c.services[0].ports, std::vector<uint16_t>{8443});
    EXPECT_TRUE(c.services[1].ports.empty());
    EXPECT_EQ(c.services[1].host, std::vector<std::string>{"(www\\.)?example\\.org"});
    ASSERT_EQ(c.triggers.size(), 1u);
    EXPECT_EQ(c.triggers[0].name, "blocked_word");
    EXPECT_EQ(c.triggers[0].pattern, "forbidden-word");
    EXPECT_EQ(c.match.window, 2048u);
    EXPECT_EQ(c.match.pending_flows, 16u);
    EXPECT_EQ(c.match.names, 100u);

    // The spec handed to the matcher keeps config order: services[i] is service index i + 1.
    const rstmon::match::MatchSpec spec = match_spec(c);
    ASSERT_EQ(spec.services.size(), 2u);
    EXPECT_EQ(spec.services[1].host, c.services[1].host);
    const auto db = rstmon::match::MatchDatabases::compile(spec);
    auto scratch = db->make_scratch();
    EXPECT_EQ(db->classify_service(rstmon::match::NameKind::sni, "API.example.com", scratch), 1);
    EXPECT_EQ(db->classify_service(rstmon::match::NameKind::host, "example.org", scratch), 2);
}

TEST(Config, DefaultsHaveNoPatterns) {
    const Config c = load_string("");
    EXPECT_TRUE(c.triggers.empty());
    EXPECT_EQ(c.match.window, 4096u);
    EXPECT_EQ(c.match.pending_flows, 1024u);
    EXPECT_EQ(c.match.names, 65536u);
    for (const auto& s : c.services) {
        EXPECT_TRUE(s.sni.empty());
        EXPECT_TRUE(s.host.empty());
    }
}

TEST(Config, PatternThatDoesNotCompileIsOneLine) {
    EXPECT_EQ(error_of("services: [{name: a, ports: [1]}, {name: b, sni: ['(']}]"),
              "services[1].sni[0]: pattern '(' does not compile: Missing close parenthesis for "
              "group started at index 0.");
    EXPECT_EQ(error_of("services: [{name: a, host: ['ok', 'a[']}]"),
              "services[0].host[1]: pattern 'a[' does not compile: Unterminated character class "
              "starting at index 1.");
    EXPECT_EQ(error_of("triggers: [{name: t, pattern: 'x(?'}]"),
              "triggers[0].pattern: pattern 'x(?' does not compile: Invalid repeat at index 2.");
    EXPECT_EQ(error_of("services: [{name: a, sni: ['']}]"), "services[0].sni[0]: empty pattern");
}

TEST(Config, PatternErrorFromFileNamesTheFile) {
    const std::string path = ::testing::TempDir() + "rstmon_bad_pattern.yaml";
    {
        std::ofstream out(path);
        out << "services:\n  - {name: api, sni: ['api(']}\n";
    }
    try {
        load_file(path);
        ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()),
                  path + ": services[0].sni[0]: pattern 'api(' does not compile: Missing close "
                         "parenthesis for group started at index 3.");
    }
    std::remove(path.c_str());
}

TEST(Config, ServiceNeedsPortsSniOrHost) {
    EXPECT_EQ(error_of("services: [{name: a}]"), "services[0]: needs at least one of ports, sni, host");
    EXPECT_EQ(error_of("services: [{name: a, ports: [], sni: []}]"),
              "services[0]: needs at least one of ports, sni, host");
    EXPECT_EQ(error_of("services: [{name: a, ports: 80}]"),
              "services[0].ports: expected a list of port numbers, got '80'");
    EXPECT_EQ(error_of("services: [{name: a, sni: 'x'}]"),
              "services[0].sni: expected a list of strings, got 'x'");
    EXPECT_EQ(error_of("services: [{name: a, sni: ['x'], hots: ['y']}]"),
              "services[0].hots: unknown key");
    EXPECT_EQ(error_of("services: [{name: a, host: ['x.example']}]"), "");
}

TEST(Config, TriggerAndPatternLimits) {
    std::string many = "triggers:\n";
    for (int i = 0; i < 33; ++i)
        many += "  - {name: t" + std::to_string(i) + ", pattern: 'p" + std::to_string(i) + "'}\n";
    EXPECT_EQ(error_of(many), "triggers: 33 triggers, at most 32");
    EXPECT_EQ(error_of(many.substr(0, many.rfind("  - "))), "");  // 32 are fine

    std::string sni = "services: [{name: a, sni: [";
    for (int i = 0; i < 65; ++i) sni += std::string(i ? "," : "") + "'n" + std::to_string(i) + "'";
    EXPECT_EQ(error_of(sni + "]}]"), "services[0].sni: 65 patterns, at most 64");
    EXPECT_EQ(error_of("services: [{name: a, host: ['" + std::string(1025, 'a') + "']}]"),
              "services[0].host[0]: pattern of 1025 characters, at most 1024");
    EXPECT_EQ(error_of("triggers: [{name: t, pattern: '" + std::string(1025, 'a') + "'}]"),
              "triggers[0].pattern: pattern of 1025 characters, at most 1024");

    EXPECT_EQ(error_of("triggers: [{name: Bad, pattern: x}]"),
              "triggers[0].name: 'Bad' must be 1-32 characters of a-z 0-9 _ -");
    EXPECT_EQ(error_of("triggers: [{name: t, pattern: x}, {name: t, pattern: y}]"),
              "triggers[1].name: 't' is listed twice");
    EXPECT_EQ(error_of("triggers: [{name: t}]"), "triggers[0].pattern: missing");
    EXPECT_EQ(error_of("triggers: [{name: t, patern: x}]"), "triggers[0].patern: unknown key");
    EXPECT_EQ(error_of("triggers: {name: t}"),
              "triggers: expected a list of {name, pattern}, got a mapping");
    EXPECT_EQ(error_of("match: {window: 70000}"), "match.window: 70000 is out of range [0, 65536]");
    EXPECT_EQ(error_of("match: {windw: 1}"), "match.windw: unknown key");
    EXPECT_EQ(error_of("match: {pending_flows: 65536}"),
              "match.pending_flows: 65536 is out of range [0, 65535]");
    EXPECT_EQ(error_of("match: {names: -1}"), "match.names: -1 is out of range [0, 16777216]");
}

TEST(Config, ShippedConfigMatchSectionsEqualDefaults) {
    const std::string path = std::string(RSTMON_SOURCE_ROOT) + "/config/rstmon.yaml";
    std::ifstream in(path);
    if (!in) GTEST_SKIP() << "no " << path;
    const Config c = load_file(path);
    const Config d = defaults();
    EXPECT_EQ(c.match.window, d.match.window);
    EXPECT_EQ(c.match.pending_flows, d.match.pending_flows);
    EXPECT_EQ(c.match.names, d.match.names);
    EXPECT_EQ(c.triggers.size(), d.triggers.size());
    ASSERT_EQ(c.services.size(), d.services.size());
    for (size_t i = 0; i < c.services.size(); ++i) {
        EXPECT_EQ(c.services[i].sni, d.services[i].sni);
        EXPECT_EQ(c.services[i].host, d.services[i].host);
    }
}

// Found by fuzz_config: a key starting with NUL gave a refusal whose message was empty (the NUL
// cut it short). Control bytes are written as \xNN.
TEST(Config, RefusalQuotesControlBytesVisibly) {
    // tests/fuzz/corpus/fuzz_config/nul-key-message
    const std::string yaml("services:\n'\0- name: wclostimlNULLn:\xd3" "4}\n", 39);
    try {
        load_string(yaml);
        FAIL() << "accepted";
    } catch (const ConfigError& e) {
        const std::string msg = e.what();
        EXPECT_FALSE(msg.empty());
        EXPECT_EQ(msg.find('\0'), std::string::npos);
        EXPECT_NE(msg.find("\\x00"), std::string::npos) << msg;
    }
    EXPECT_STREQ(ConfigError("a\x1b[31mb").what(), "a\\x1b[31mb");
}
