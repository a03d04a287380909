// Evidence helpers and their JSON, the space-saving summary, the top summary and learned idle
// timeouts, and the config keys of events/forensics/top: pure code, no EAL.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "config/config.hpp"
#include "events/evidence.hpp"
#include "metrics/json_endpoint.hpp"
#include "packet_builder.hpp"
#include "top/space_saving.hpp"
#include "top/top_summary.hpp"

using namespace rstmon;
using namespace rstmon::packet::tcpflag;

namespace {

TEST(Evidence, HopsFromTheUsualInitialTtls) {
    EXPECT_EQ(events::hops_from_ttl(64), 0);
    EXPECT_EQ(events::hops_from_ttl(63), 1);
    EXPECT_EQ(events::hops_from_ttl(1), 63);
    EXPECT_EQ(events::hops_from_ttl(65), 63);  // above 64: a 128 start
    EXPECT_EQ(events::hops_from_ttl(128), 0);
    EXPECT_EQ(events::hops_from_ttl(117), 11);
    EXPECT_EQ(events::hops_from_ttl(255), 0);
    EXPECT_EQ(events::hops_from_ttl(240), 15);
}

TEST(Evidence, HopDeltaSaysHowMuchCloserTheRstWasMade) {
    EXPECT_EQ(events::hop_delta(64, 63), 1);    // router next to the monitor, server one further
    EXPECT_EQ(events::hop_delta(61, 61), 0);    // the endpoint itself
    EXPECT_EQ(events::hop_delta(250, 120), 3);  // 8 hops vs 5 (different initial TTLs)
    EXPECT_EQ(events::hop_delta(60, 64), -4);   // made farther away than the endpoint
    EXPECT_EQ(events::hop_delta(64, 0), 0);     // no baseline
}

TEST(Evidence, BytesFromSequenceSpaceWithOrWithoutTheSyn) {
    tcp::Connection c;
    test::SegSpec s;
    s.flags = syn;
    s.seq = 1000;
    c.start(test::parse_ok(test::frame(s)), 0);
    c.update(test::parse_ok(test::frame(s)), 0, 0);
    s.flags = ack | psh;
    s.seq = 1001;
    s.ack = 77777;  // side 1's SYN-ACK, not captured
    s.payload.assign(300, 'a');
    c.update(test::parse_ok(test::frame(s)), 0, 1);
    s.flags = ack | fin;
    s.seq = 1301;
    s.payload.clear();
    c.update(test::parse_ok(test::frame(s)), 0, 2);
    EXPECT_EQ(events::bytes_sent(c.dir[0]), 300u);  // SYN and FIN are not bytes

    // Side 1 first seen mid-stream: what it sent from there on.
    test::SegSpec r;
    r.src = "10.0.0.2";
    r.dst = "10.0.0.1";
    r.flags = ack | psh;
    r.seq = 77777;
    r.payload.assign(40, 'b');
    c.update(test::parse_ok(test::frame(r)), 1, 3);
    r.seq = 77817;
    r.payload.assign(2, 'c');
    c.update(test::parse_ok(test::frame(r)), 1, 4);
    EXPECT_EQ(events::bytes_sent(c.dir[1]), 42u);
    EXPECT_EQ(events::bytes_sent(tcp::Direction{}), 0u);
}

TEST(Evidence, JsonCarriesEvidenceAndOmitsWhatIsUnknown) {
    events::RstEvent e;
    const auto seg = test::parse_ok(test::frame({}));
    e.src = seg.src;
    e.dst = seg.dst;
    e.ttl = 64;
    e.flow_ttl = 63;
    e.host_ttl = 63;
    e.src_bytes = 1234;
    e.dst_bytes = 56;
    e.rexmit_run = 5;
    e.ka_probes = 1;
    auto j = nlohmann::json::parse(events::to_json(e, {"other"}, {"p0"}));
    EXPECT_EQ(j["hops"], 0);
    EXPECT_EQ(j["flow_ttl"], 63);
    EXPECT_EQ(j["host_ttl"], 63);
    EXPECT_EQ(j["sender_hops"], 1);
    EXPECT_EQ(j["hop_delta"], 1);
    EXPECT_EQ(j["src_bytes"], 1234);
    EXPECT_EQ(j["dst_bytes"], 56);
    EXPECT_EQ(j["rexmit_run"], 5);
    EXPECT_EQ(j["peer_rexmit_run"], 0);
    EXPECT_EQ(j["ka_probes"], 1);
    EXPECT_FALSE(j.contains("missing"));
    EXPECT_FALSE(j.contains("payload"));
    EXPECT_FALSE(j.contains("pcap"));

    // No flow: no flow counters; what was missing is named; payload as hex; the capture.
    events::RstEvent n;
    n.ttl = 250;
    n.missing = (1u << static_cast<unsigned>(events::Missing::flow)) |
                (1u << static_cast<unsigned>(events::Missing::sender_ttl));
    n.payload_caplen = 3;
    n.payload[0] = 0x00;
    n.payload[1] = 0xab;
    n.payload[2] = 0x7f;
    n.worker = 2;
    n.pcap_file = 12;
    n.pcap_first = 40;
    n.pcap_packets = 5;
    n.pcap_rst = 4;
    j = nlohmann::json::parse(events::to_json(n, {"other"}, {"p0"}, "/x/rstmon-1-"));
    EXPECT_EQ(j["hops"], 5);
    EXPECT_FALSE(j.contains("hop_delta"));
    EXPECT_FALSE(j.contains("src_bytes"));
    EXPECT_EQ(j["missing"], nlohmann::json::array({"flow", "sender_ttl"}));
    EXPECT_EQ(j["payload"], "00ab7f");
    EXPECT_EQ(j["pcap"]["file"], "/x/rstmon-1-w2-000012.pcap");
    EXPECT_EQ(j["pcap"]["first_packet"], 40);
    EXPECT_EQ(j["pcap"]["packets"], 5);
    EXPECT_EQ(j["pcap"]["rst_packet"], 44);
}

TEST(Evidence, FillFromConnectionState) {
    tcp::Connection c;
    c.origin = tcp::Origin::midstream;
    c.dir[1].ttl_base = 0;
    c.dir[1].rexmit_run = 2;
    c.dir[0].ka_probes = 3;
    c.dir[0].spoke = 1;  // the RST's receiver has been heard
    classify::Verdict v;
    v.sender = classify::Sender::server;
    v.validity = classify::Validity::exact;
    events::RstEvent e;
    events::fill_evidence(e, &c, 1, 0, v);
    const auto bit = [](events::Missing m) { return 1u << static_cast<unsigned>(m); };
    EXPECT_EQ(e.missing, bit(events::Missing::handshake) | bit(events::Missing::sender_ttl));
    EXPECT_EQ(e.rexmit_run, 2);
    EXPECT_EQ(e.peer_rexmit_run, 0);
    EXPECT_EQ(e.ka_probes, 0);  // the sender's own, not the peer's
    events::RstEvent h;
    events::fill_evidence(h, &c, 1, 61, v);  // a host baseline from other flows
    EXPECT_EQ(h.missing, bit(events::Missing::handshake));
    EXPECT_EQ(h.host_ttl, 61);
}

TEST(SpaceSaving, ExactWhileEveryKeyFits) {
    top::SpaceSaving<int> s(8);
    for (int i = 0; i < 5; ++i)
        for (int k = 0; k <= i; ++k) s.add(i);
    const auto t = s.top(3);
    ASSERT_EQ(t.size(), 3u);
    EXPECT_EQ(t[0].key, 4);
    EXPECT_EQ(t[0].count, 5u);
    EXPECT_EQ(t[2].key, 2);
    EXPECT_EQ(t[2].error, 0u);
    EXPECT_EQ(s.total(), 15u);
}

// The guarantees on a skewed stream much larger than the summary.
TEST(SpaceSaving, BoundsHoldAndHeavyHittersStay) {
    top::SpaceSaving<uint32_t> s(50);
    std::map<uint32_t, uint64_t> truth;
    std::mt19937 rng(7);
    std::uniform_int_distribution<uint32_t> tail(100, 100000);
    for (int i = 0; i < 200000; ++i) {
        const uint32_t k = i % 4 == 0 ? static_cast<uint32_t>(i % 3) : tail(rng);  // 3 heavy keys
        s.add(k);
        truth[k]++;
    }
    EXPECT_EQ(s.size(), 50u);
    for (const auto& e : s.top(50)) {
        EXPECT_LE(e.count - e.error, truth[e.key]) << e.key;
        EXPECT_GE(e.count, truth[e.key]) << e.key;
    }
    const auto t = s.top(3);
    std::vector<uint32_t> keys;
    for (const auto& e : t) keys.push_back(e.key);
    std::sort(keys.begin(), keys.end());
    EXPECT_EQ(keys, (std::vector<uint32_t>{0, 1, 2}));
}

top::Record rst_record(const char* server, uint16_t port, const char* client, classify::Cause c,
                       uint8_t service = 0, uint64_t gap_ns = UINT64_MAX) {
    test::SegSpec s;
    s.src = server;
    s.dst = client;
    const auto seg = test::parse_ok(test::frame(s));
    top::Record r;
    r.server = seg.src;
    r.client = seg.dst;
    r.family = seg.family;
    r.server_port = port;
    r.cause = static_cast<uint8_t>(c);
    r.service = service;
    r.gap_ns = gap_ns;
    r.roles_known = 1;
    return r;
}

TEST(TopSummary, CountsServersClientsAndPrefixesPerCause) {
    top::TopSummary t(100, {"other", "api"});
    for (int i = 0; i < 5; ++i)
        t.add(rst_record("192.0.2.10", 443, "198.51.100.1", classify::Cause::port_closed));
    for (int i = 0; i < 3; ++i)
        t.add(rst_record("192.0.2.20", 443, "198.51.100.2", classify::Cause::middlebox_reject));
    t.add(rst_record("2001:db8::5", 8443, "2001:db8:1::9", classify::Cause::port_closed));
    top::Record unknown;
    unknown.cause = static_cast<uint8_t>(classify::Cause::no_state);
    t.add(unknown);
    const auto j = t.to_json(10);
    EXPECT_EQ(j["size"], 100);
    EXPECT_EQ(j["all"]["rst"], 10);
    EXPECT_EQ(j["all"]["unknown_roles"], 1);
    EXPECT_EQ(j["all"]["servers"][0]["key"], "192.0.2.10:443");
    EXPECT_EQ(j["all"]["servers"][0]["rst"], 5);
    EXPECT_EQ(j["all"]["servers"][2]["key"], "[2001:db8::5]:8443");
    EXPECT_EQ(j["all"]["server_prefixes"][0]["key"], "192.0.2.0/24");
    EXPECT_EQ(j["all"]["server_prefixes"][0]["rst"], 8);
    EXPECT_EQ(j["all"]["server_prefixes"][1]["key"], "2001:db8::/64");
    EXPECT_EQ(j["causes"]["port_closed"]["rst"], 6);
    EXPECT_EQ(j["causes"]["port_closed"]["clients"].size(), 2u);
    EXPECT_EQ(j["causes"]["middlebox_reject"]["clients"][0]["key"], "198.51.100.2");
    EXPECT_FALSE(j["causes"].contains("injected"));
    const auto one = t.to_json(1, static_cast<int>(classify::Cause::middlebox_reject));
    EXPECT_FALSE(one.contains("all"));
    EXPECT_EQ(one["causes"].size(), 1u);
    EXPECT_EQ(one["causes"]["middlebox_reject"]["servers"].size(), 1u);
    EXPECT_TRUE(j["learned_idle_timeouts"].empty());
}

TEST(TopSummary, LearnedTimeoutIsTheIntervalBetweenSurvivedAndResetGaps) {
    top::TopSummary t(10, {"other", "api", "web"});
    constexpr uint64_t s = 1000000000ull;
    auto survived = [&](uint8_t service, uint64_t gap) {
        top::Record r;
        r.kind = top::RecordKind::survived_gap;
        r.service = service;
        r.gap_ns = gap;
        t.add(r);
    };
    survived(1, 120 * s);
    survived(1, 349 * s);
    survived(1, 30 * s);
    t.add(rst_record("192.0.2.1", 443, "198.51.100.1", classify::Cause::idle_timeout, 1, 352 * s));
    t.add(rst_record("192.0.2.1", 443, "198.51.100.1", classify::Cause::idle_timeout, 1, 351 * s));
    // Not an idle_timeout: no bound.
    t.add(rst_record("192.0.2.1", 443, "198.51.100.1", classify::Cause::stale_connection, 1, 10 * s));
    // Contradicting evidence for `web`.
    survived(2, 900 * s);
    t.add(rst_record("192.0.2.2", 80, "198.51.100.1", classify::Cause::idle_timeout, 2, 300 * s));
    const auto l = t.learned();
    EXPECT_EQ(l[1].survived_max_ns, 349 * s);
    EXPECT_EQ(l[1].reset_min_ns, 351 * s);
    EXPECT_EQ(l[1].survived, 3u);
    EXPECT_EQ(l[1].resets, 2u);
    const auto j = t.to_json(5);
    ASSERT_EQ(j["learned_idle_timeouts"].size(), 2u);
    const auto& api = j["learned_idle_timeouts"][0];
    EXPECT_EQ(api["service"], "api");
    EXPECT_DOUBLE_EQ(api["lower_s"].get<double>(), 349.0);
    EXPECT_DOUBLE_EQ(api["upper_s"].get<double>(), 351.0);
    EXPECT_TRUE(api["consistent"].get<bool>());
    EXPECT_EQ(api["text"],
              "connections to `api` idle >= 351.0 s are reset; idle 349.0 s survived: a middlebox "
              "times them out after between 349.0 and 351.0 s");
    EXPECT_FALSE(j["learned_idle_timeouts"][1]["consistent"].get<bool>());
    EXPECT_EQ(top::TopSummary::describe("x", {0, 5 * s, 0, 1}), "connections to `x` idle >= 5.0 s are reset");

    std::vector<prometheus::MetricFamily> fams;
    t.append_metrics(fams, "vm");
    ASSERT_EQ(fams.size(), 1u);
    EXPECT_EQ(fams[0].name, "rstmon_learned_idle_timeout_seconds");
    ASSERT_EQ(fams[0].metric.size(), 4u);  // api and web, lower and upper
    EXPECT_EQ(fams[0].metric[0].label[1].value, "api");
    EXPECT_EQ(fams[0].metric[0].label[2].value, "lower");
    EXPECT_DOUBLE_EQ(fams[0].metric[0].gauge.value, 349.0);
    EXPECT_EQ(fams[0].metric[1].label[2].value, "upper");
    EXPECT_DOUBLE_EQ(fams[0].metric[1].gauge.value, 351.0);
}

TEST(JsonEndpoint, BasicAuthHeader) {
    // "alice:s3cret" in base64
    EXPECT_TRUE(metrics::JsonEndpoint::basic_auth_ok("Basic YWxpY2U6czNjcmV0", "alice", "s3cret"));
    EXPECT_FALSE(metrics::JsonEndpoint::basic_auth_ok("Basic YWxpY2U6czNjcmV0", "alice", "s3cre"));
    EXPECT_FALSE(metrics::JsonEndpoint::basic_auth_ok("Basic YWxpY2U6czNjcmV0", "bob", "s3cret"));
    EXPECT_FALSE(metrics::JsonEndpoint::basic_auth_ok("Bearer x", "alice", "s3cret"));
    EXPECT_FALSE(metrics::JsonEndpoint::basic_auth_ok(nullptr, "alice", "s3cret"));
    EXPECT_FALSE(metrics::JsonEndpoint::basic_auth_ok("Basic !!!!", "alice", "s3cret"));
}

TEST(ConfigEvidence, ForensicsTopAndEventKeys) {
    const config::Config c = config::load_string(R"(
events: {include_payload: true, max_file_size: 2MiB, max_files: 3}
forensics: {enabled: true, causes: [idle_timeout, injected], packets_before: 8, packets_after: 4,
            snaplen: 96, dir: /tmp/x, max_file_size: 1M, max_total_size: 64MiB, in_flight: 16}
top: {size: 50, entries: 5, ring_size: 1024}
learned_timeouts: {min_gap: 30s}
)");
    EXPECT_TRUE(c.events.include_payload);
    EXPECT_EQ(c.events.max_file_size, 2u << 20);
    EXPECT_EQ(c.events.max_files, 3u);
    EXPECT_TRUE(c.forensics.enabled);
    EXPECT_EQ(c.forensics.causes, (std::vector<std::string>{"idle_timeout", "injected"}));
    EXPECT_EQ(c.forensics.packets_before, 8u);
    EXPECT_EQ(c.forensics.max_file_size, 1u << 20);
    EXPECT_EQ(c.forensics.max_total_size, 64u << 20);
    EXPECT_EQ(c.top.size, 50u);
    EXPECT_DOUBLE_EQ(c.learned_timeouts.min_gap_s, 30.0);
    EXPECT_TRUE(config::load_string("forensics: {causes: all}").forensics.causes.empty());
    const config::Config d = config::defaults();
    EXPECT_FALSE(d.forensics.enabled);
    EXPECT_FALSE(d.events.include_payload);
    EXPECT_TRUE(d.top.enabled);
}

TEST(ConfigEvidence, ShippedFileHasTheDefaults) {
    const config::Config c = config::load_file(std::string(RSTMON_SOURCE_ROOT) + "/config/rstmon.yaml");
    const config::Config d = config::defaults();
    EXPECT_EQ(c.events.include_payload, d.events.include_payload);
    EXPECT_EQ(c.events.max_file_size, d.events.max_file_size);
    EXPECT_EQ(c.events.max_files, d.events.max_files);
    EXPECT_EQ(c.forensics.enabled, d.forensics.enabled);
    EXPECT_EQ(c.forensics.causes, d.forensics.causes);
    EXPECT_EQ(c.forensics.packets_before, d.forensics.packets_before);
    EXPECT_EQ(c.forensics.packets_after, d.forensics.packets_after);
    EXPECT_EQ(c.forensics.snaplen, d.forensics.snaplen);
    EXPECT_EQ(c.forensics.in_flight, d.forensics.in_flight);
    EXPECT_EQ(c.forensics.dir, d.forensics.dir);
    EXPECT_EQ(c.forensics.max_file_size, d.forensics.max_file_size);
    EXPECT_EQ(c.forensics.max_total_size, d.forensics.max_total_size);
    EXPECT_EQ(c.top.enabled, d.top.enabled);
    EXPECT_EQ(c.top.size, d.top.size);
    EXPECT_EQ(c.top.entries, d.top.entries);
    EXPECT_EQ(c.top.ring_size, d.top.ring_size);
    EXPECT_DOUBLE_EQ(c.learned_timeouts.min_gap_s, d.learned_timeouts.min_gap_s);
}

TEST(ConfigEvidence, MistakesNameTheKey) {
    auto error_of = [](const char* yaml) {
        try {
            config::load_string(yaml);
        } catch (const config::ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(error_of("forensics: {causes: [port_closed, bogus]}"),
              "forensics.causes[1]: 'bogus' is not a cause (rstmon --list-causes)");
    EXPECT_EQ(error_of("forensics: {causes: some}"),
              "forensics.causes: expected 'all' or a list of cause names, got 'some'");
    EXPECT_EQ(error_of("events: {max_file_size: 12XB}"),
              "events.max_file_size: expected a size like 16MiB, got '12XB'");
    EXPECT_EQ(error_of("forensics: {max_file_size: 1GiB, max_total_size: 1GiB}"),
              "forensics.max_total_size: must be at least twice max_file_size");
    EXPECT_EQ(error_of("forensics: {packets_before: 65}"),
              "forensics.packets_before: 65 is out of range [0, 64]");
    EXPECT_EQ(error_of("top: {sise: 3}"), "top.sise: unknown key");
}

}  // namespace
