#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "events/rst_event.hpp"
#include "packet_builder.hpp"

using namespace rstmon;

TEST(Events, JsonHasThePublicFields) {
    events::RstEvent e;
    e.ts_ns = 1700000000123456789ull;
    const auto seg = test::parse_ok(test::frame({}));
    e.src = seg.src;
    e.dst = seg.dst;
    e.sport = 80;
    e.dport = 40000;
    e.family = 4;
    e.flags = packet::tcpflag::rst | packet::tcpflag::ack;
    e.cause = classify::Cause::port_closed;
    e.stage = classify::Stage::post_syn;
    e.sender = classify::Sender::server;
    e.validity = classify::Validity::exact;
    e.service = 1;
    const auto j = nlohmann::json::parse(events::to_json(e, {"other", "http"}, {"pcap0"}));
    EXPECT_NEAR(j["ts"].get<double>(), 1700000000.123456, 1e-6);
    EXPECT_EQ(j["src"], "10.0.0.1");
    EXPECT_EQ(j["sport"], 80);
    EXPECT_EQ(j["dst"], "10.0.0.2");
    EXPECT_EQ(j["dport"], 40000);
    EXPECT_EQ(j["cause"], "port_closed");
    EXPECT_EQ(j["stage"], "post_syn");
    EXPECT_EQ(j["sender"], "server");
    EXPECT_EQ(j["validity"], "exact");
    EXPECT_EQ(j["service"], "http");
    EXPECT_EQ(j["flags"], "RA");
    EXPECT_EQ(j["port"], "pcap0");
}

// Services and triggers (pipeline/flow_match.hpp): `sni`/`host` only when a name decided the
// service, `trigger` only when one matched, by its config name.
TEST(Events, JsonNamesTheServiceNameAndTheTrigger) {
    events::RstEvent e;
    e.service = 1;
    const std::string host = "www.example.org";
    e.name_kind = 2;  // match::NameKind::host
    e.name_len = static_cast<uint8_t>(host.size());
    host.copy(e.name, host.size());
    e.trigger = 1;
    auto j = nlohmann::json::parse(
        events::to_json(e, {"other", "web"}, {"pcap0"}, {}, {"blocked_word", "curl_agent"}));
    EXPECT_EQ(j["host"], "www.example.org");
    EXPECT_FALSE(j.contains("sni"));
    EXPECT_EQ(j["trigger"], "curl_agent");

    e.name_kind = 1;  // sni
    e.trigger = events::kNoTrigger;
    j = nlohmann::json::parse(events::to_json(e, {"other", "web"}, {"pcap0"}, {}, {"t"}));
    EXPECT_EQ(j["sni"], "www.example.org");
    EXPECT_FALSE(j.contains("host"));
    EXPECT_FALSE(j.contains("trigger"));

    e.name_kind = 0;  // the port decided
    j = nlohmann::json::parse(events::to_json(e, {"other", "web"}, {"pcap0"}));
    EXPECT_FALSE(j.contains("sni"));
    EXPECT_FALSE(j.contains("host"));
}
