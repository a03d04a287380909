// Services by SNI/Host and triggers in the worker (pipeline/flow_match.hpp), on a real rte_hash
// flow table and real Hyperscan databases: the reassembly buffers and their pool running dry,
// names kept for RST events and pushed out of a full set, trigger windows per direction, and the
// hand-over of recompiled databases at a burst boundary.
#include <gtest/gtest.h>
#include <rte_memory.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <deque>
#include <string>

#include "packet_builder.hpp"
#include "pipeline/worker.hpp"

using namespace rstmon;
using namespace rstmon::test;
using namespace rstmon::packet::tcpflag;
using match::IdentMethod;

namespace {

constexpr uint64_t kMs = 1000000ull;
using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, size_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

// A TLS 1.3-style ClientHello in one record: a padding extension of `pad` bytes first, so the
// server_name lands late (in a second segment when the hello is cut in two).
Bytes client_hello(const std::string& sni, size_t pad) {
    Bytes ext;
    put16(ext, 21);  // padding
    put16(ext, pad);
    ext.insert(ext.end(), pad, 0);
    put16(ext, 0);  // server_name
    put16(ext, sni.size() + 5);
    put16(ext, sni.size() + 3);
    ext.push_back(0);  // host_name
    put16(ext, sni.size());
    ext.insert(ext.end(), sni.begin(), sni.end());
    Bytes body = {3, 3};
    body.insert(body.end(), 32, 0x42);                  // random
    body.push_back(0);                                  // session id
    body.insert(body.end(), {0, 2, 0x13, 0x01, 1, 0});  // one cipher suite, null compression
    put16(body, ext.size());
    body.insert(body.end(), ext.begin(), ext.end());
    Bytes hs = {1, static_cast<uint8_t>(body.size() >> 16), static_cast<uint8_t>(body.size() >> 8),
                static_cast<uint8_t>(body.size())};
    hs.insert(hs.end(), body.begin(), body.end());
    Bytes rec = {0x16, 3, 1};
    put16(rec, hs.size());
    rec.insert(rec.end(), hs.begin(), hs.end());
    return rec;
}

Bytes text(const std::string& s) {
    return Bytes(s.begin(), s.end());
}

class FlowMatchTest : public ::testing::Test {
  protected:
    void SetUp() override {
        services_.fill(0);
        services_[443] = 3;  // "tls" by port
        spec_.services = {{{"api\\.example\\.com"}, {}}, {{}, {"(www\\.)?example\\.org"}}, {}};
        spec_.triggers = {{"blocked_word", "forbidden-word"}, {"secret", "s3cr3t"}};
        cfg_.match.pending_flows = 4;
        cfg_.match.names = 64;
    }
    void start() {
        static int n = 0;
        const std::string id = std::to_string(n++);
        table_ = std::make_unique<flow::FlowTable>("fm_flows" + id, 4096, SOCKET_ID_ANY,
                                                   flow::FlowTimeouts{});
        ring_ = rte_ring_create_elem(("fm_ev" + id).c_str(), sizeof(events::RstEvent), 1024,
                                     SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(ring_, nullptr);
        cfg_.events = ring_;
        cfg_.events_lossless = true;
        cfg_.thresholds.linger_ns = 10 * kMs;
        cfg_.services = &services_;
        cfg_.match.db = match::MatchDatabases::compile(spec_);
        stats_ = std::make_unique<metrics::LcoreStats>();
        worker_ = std::make_unique<pipeline::Worker>(cfg_, *table_, *stats_);
    }
    void TearDown() override {
        swap_.abandon();  // before the worker (and its mailbox) goes
        worker_.reset();
        table_.reset();
        if (ring_) rte_ring_free(ring_);
    }

    // A connection from client port `cport` to server port `sport`; sequence numbers tracked.
    struct Conn {
        SegSpec c2s, s2c;
        uint32_t cseq = 1000, sseq = 5000;
    };
    Conn conn(uint16_t cport, uint16_t sport) {
        Conn c;
        c.c2s.sport = cport;
        c.c2s.dport = sport;
        c.s2c.src = c.c2s.dst;
        c.s2c.dst = c.c2s.src;
        c.s2c.sport = sport;
        c.s2c.dport = cport;
        return c;
    }
    void send(SegSpec s, uint8_t flags, uint32_t seq, uint32_t ack, const Bytes& payload) {
        s.flags = flags;
        s.seq = seq;
        s.ack = ack;
        s.payload = payload;
        frames_.push_back(frame(s));
        pipeline::Frame f;
        f.data = frames_.back().data();
        f.len = f.wire_len = static_cast<uint32_t>(frames_.back().size());
        f.ts_ns = now_;
        now_ += kMs / 10;
        worker_->process(&f, 1);
    }
    void handshake(Conn& c) {
        send(c.c2s, syn, c.cseq, 0, {});
        send(c.s2c, syn | ack, c.sseq, c.cseq + 1, {});
        c.cseq++, c.sseq++;
        send(c.c2s, ack, c.cseq, c.sseq, {});
    }
    void client_data(Conn& c, const Bytes& b) {
        send(c.c2s, ack | psh, c.cseq, c.sseq, b);
        c.cseq += static_cast<uint32_t>(b.size());
    }
    void server_data(Conn& c, const Bytes& b) {
        send(c.s2c, ack | psh, c.sseq, c.cseq, b);
        c.sseq += static_cast<uint32_t>(b.size());
    }
    void server_reset(Conn& c) { send(c.s2c, rst | ack, c.sseq, c.cseq, {}); }
    std::vector<events::RstEvent> events() {
        std::vector<events::RstEvent> out;
        events::RstEvent ev[16];
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(ring_, ev, sizeof ev[0], 16, nullptr)) > 0)
            out.insert(out.end(), ev, ev + n);
        return out;
    }
    std::vector<events::RstEvent> finish_events() {
        worker_->finish(false);
        return events();
    }
    uint64_t method(IdentMethod m) const {
        return stats_->service_identified[static_cast<size_t>(m)].load();
    }
    uint64_t tls(match::SniResult r) const {
        return stats_->tls_names[static_cast<size_t>(r)].load();
    }
    static std::string name_of(const events::RstEvent& e) { return {e.name, e.name_len}; }

    match::MatchSpec spec_;
    pipeline::WorkerConfig cfg_;
    pipeline::ServiceMap services_;
    std::unique_ptr<flow::FlowTable> table_;
    std::unique_ptr<metrics::LcoreStats> stats_;
    std::unique_ptr<pipeline::Worker> worker_;
    pipeline::MatchSwap swap_;
    rte_ring* ring_ = nullptr;
    std::deque<Bytes> frames_;
    uint64_t now_ = 1000000000000ull;
};

TEST_F(FlowMatchTest, ClientHelloSplitOverSegmentsNamesTheServiceThroughABuffer) {
    start();
    Conn c = conn(40000, 443);
    handshake(c);
    const Bytes hello = client_hello("API.Example.com", 600);
    client_data(c, Bytes(hello.begin(), hello.begin() + 300));
    worker_->publish();
    EXPECT_EQ(stats_->match_buffers_in_use.load(), 1u);  // waiting for the rest
    EXPECT_EQ(method(IdentMethod::sni) + method(IdentMethod::port), 0u);
    client_data(c, Bytes(hello.begin() + 300, hello.end()));
    worker_->publish();
    EXPECT_EQ(stats_->match_buffers_in_use.load(), 0u);  // given back once decided
    EXPECT_EQ(method(IdentMethod::sni), 1u);
    EXPECT_EQ(tls(match::SniResult::found), 1u);
    server_reset(c);
    const auto ev = finish_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].service, 1);  // api, by SNI, over the port map's "tls"
    EXPECT_EQ(ev[0].name_kind, static_cast<uint8_t>(match::NameKind::sni));
    EXPECT_EQ(name_of(ev[0]), "api.example.com");  // lower-cased
    EXPECT_EQ(ev[0].trigger, events::kNoTrigger);
}

TEST_F(FlowMatchTest, NoNameMatchFallsBackToThePortThenToOther) {
    start();
    Conn a = conn(40001, 443);
    handshake(a);
    client_data(a, client_hello("unknown.example.net", 10));
    Conn b = conn(40002, 8080);
    handshake(b);
    client_data(b, text("GET / HTTP/1.1\r\nHost: nobody.invalid\r\n\r\n"));
    Conn w = conn(40003, 8080);
    handshake(w);
    client_data(w, text("GET / HTTP/1.1\r\nHost: WWW.example.org:8080\r\n\r\n"));
    EXPECT_EQ(method(IdentMethod::port), 1u);  // 443 -> service 3
    EXPECT_EQ(method(IdentMethod::none), 1u);  // 8080 is no service port
    EXPECT_EQ(method(IdentMethod::host), 1u);
    server_reset(a);
    server_reset(b);
    server_reset(w);
    const auto ev = finish_events();
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[0].service, 3);
    EXPECT_EQ(ev[0].name_kind, 0);  // the name did not decide: not on the event
    EXPECT_EQ(ev[1].service, 0);
    EXPECT_EQ(ev[1].name_kind, 0);
    EXPECT_EQ(ev[2].service, 2);
    EXPECT_EQ(ev[2].name_kind, static_cast<uint8_t>(match::NameKind::host));
    EXPECT_EQ(name_of(ev[2]), "www.example.org");
}

TEST_F(FlowMatchTest, NoFreeBufferDecidesByPortAndCounts) {
    cfg_.match.pending_flows = 1;
    start();
    const Bytes hello = client_hello("api.example.com", 600);
    Conn a = conn(40010, 443), b = conn(40011, 443);
    handshake(a);
    handshake(b);
    client_data(a, Bytes(hello.begin(), hello.begin() + 200));  // takes the only buffer
    client_data(b, Bytes(hello.begin(), hello.begin() + 200));  // none left
    EXPECT_EQ(stats_->match_pool_exhausted.load(), 1u);
    EXPECT_EQ(method(IdentMethod::port), 1u);
    EXPECT_EQ(tls(match::SniResult::incomplete), 1u);
    client_data(b, Bytes(hello.begin() + 200, hello.end()));  // decided already: not looked at
    client_data(a, Bytes(hello.begin() + 200, hello.end()));
    EXPECT_EQ(method(IdentMethod::sni), 1u);
    server_reset(a);
    server_reset(b);
    const auto ev = finish_events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].service, 1);
    EXPECT_EQ(ev[1].service, 3);
}

TEST_F(FlowMatchTest, ServerSpeakingOrTheFlowEndingReleasesAnIncompleteHello) {
    start();
    const Bytes hello = client_hello("api.example.com", 600);
    Conn a = conn(40020, 443);
    handshake(a);
    client_data(a, Bytes(hello.begin(), hello.begin() + 100));
    server_data(a, text("not waiting any longer"));  // the rest will not come now
    worker_->publish();
    EXPECT_EQ(stats_->match_buffers_in_use.load(), 0u);
    EXPECT_EQ(method(IdentMethod::port), 1u);
    EXPECT_EQ(tls(match::SniResult::incomplete), 1u);

    Conn b = conn(40021, 443);
    handshake(b);
    client_data(b, Bytes(hello.begin(), hello.begin() + 100));
    send(b.c2s, fin | ack, b.cseq, b.sseq, {});
    send(b.s2c, fin | ack, b.sseq, b.cseq + 1, {});
    worker_->finish(false);  // closed by FIN: the flow ends, its buffer goes back
    worker_->publish();
    EXPECT_EQ(stats_->match_buffers_in_use.load(), 0u);
    EXPECT_EQ(method(IdentMethod::port), 2u);
    EXPECT_EQ(tls(match::SniResult::incomplete), 2u);
}

TEST_F(FlowMatchTest, TriggersInTheFirstWindowOfEitherDirection) {
    cfg_.match.window = 32;
    start();
    // Client: the word past the window; server: the second trigger inside it.
    Conn a = conn(40030, 8080);
    handshake(a);
    client_data(a, text("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: 0123456789 forbidden-word\r\n\r\n"));
    server_data(a, text("HTTP/1.1 200 OK s3cr3t"));
    server_reset(a);
    // Client: the word at the start of its second segment, still inside the window.
    Conn b = conn(40031, 8080);
    handshake(b);
    client_data(b, text("0123456789"));
    client_data(b, text("forbidden-word s3cr3t"));  // bytes 10-30: both inside
    server_reset(b);
    // Nothing in the first 32 bytes of either side.
    Conn n = conn(40032, 8080);
    handshake(n);
    client_data(n, Bytes(40, 'x'));
    client_data(n, text("forbidden-word"));
    server_reset(n);
    const auto ev = finish_events();
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[0].trigger, 1);  // s3cr3t, from the server's side
    EXPECT_EQ(ev[1].trigger, 0);  // both matched: the first in config order
    EXPECT_EQ(ev[2].trigger, events::kNoTrigger);
    uint64_t by_trigger[2] = {};
    for (const auto& per_cause : stats_->rst_by_trigger)
        for (size_t g = 0; g < 2; ++g) by_trigger[g] += per_cause[g].load();
    EXPECT_EQ(by_trigger[0], 1u);
    EXPECT_EQ(by_trigger[1], 1u);
    EXPECT_EQ(stats_->match_scan_errors.load(), 0u);
}

TEST_F(FlowMatchTest, AFullNameSetPushesOutTheOldestAndCounts) {
    cfg_.match.names = 8;  // one set of eight ways: the ninth live named flow pushes one out
    start();
    std::vector<Conn> cs;
    for (uint16_t i = 0; i < 9; ++i) {
        cs.push_back(conn(static_cast<uint16_t>(40040 + i), 443));
        handshake(cs.back());
        client_data(cs.back(), client_hello("api.example.com", 10));
    }
    EXPECT_EQ(stats_->match_names_evicted.load(), 1u);
    for (auto& c : cs) server_reset(c);
    const auto ev = finish_events();
    ASSERT_EQ(ev.size(), 9u);
    size_t with_name = 0;
    for (const auto& e : ev) {
        EXPECT_EQ(e.service, 1);  // the service is right whether or not the name was kept
        with_name += e.name_kind != 0;
    }
    EXPECT_EQ(with_name, 8u);
}

TEST_F(FlowMatchTest, ANewConnectionOnTheTupleIsIdentifiedAfresh) {
    start();
    Conn c = conn(40050, 443);
    handshake(c);
    client_data(c, client_hello("api.example.com", 10));
    server_reset(c);
    now_ += 100 * kMs;  // past the episode: the next SYN starts another connection
    c.cseq += 100000;
    handshake(c);
    client_data(c, client_hello("elsewhere.example.net", 10));
    server_reset(c);
    const auto ev = finish_events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].service, 1);
    EXPECT_EQ(name_of(ev[0]), "api.example.com");
    EXPECT_EQ(ev[1].service, 3);  // by port this time; the old name is gone with the old one
    EXPECT_EQ(ev[1].name_kind, 0);
}

TEST_F(FlowMatchTest, NewDatabasesTakeOverAtTheNextBurstAndTheOldAreHandedBack) {
    start();
    const Bytes hello = client_hello("new.example.com", 600);
    Conn pending = conn(40060, 443);
    handshake(pending);
    client_data(pending, Bytes(hello.begin(), hello.begin() + 200));  // collecting at the swap

    match::MatchSpec next = spec_;
    next.services[0].sni = {"new\\.example\\.com"};  // api: another pattern
    next.triggers[0].pattern = "brand-new-word";
    std::vector<pipeline::MatchMailbox*> boxes = {&worker_->match_mailbox()};
    ASSERT_TRUE(swap_.post(boxes, match::MatchDatabases::compile(next), 4096, 1));
    EXPECT_FALSE(swap_.poll());  // the worker has not run a burst since
    EXPECT_FALSE(swap_.post(boxes, match::MatchDatabases::compile(next), 4096, 2));

    client_data(pending, Bytes(hello.begin() + 200, hello.end()));  // this burst swaps first
    EXPECT_TRUE(swap_.poll());  // the old set came back and was freed
    EXPECT_FALSE(swap_.in_flight());

    Conn old_name = conn(40061, 443);
    handshake(old_name);
    client_data(old_name, client_hello("api.example.com", 10));
    client_data(old_name, text("brand-new-word"));
    server_reset(pending);
    server_reset(old_name);
    const auto ev = finish_events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].service, 1);  // decided after the swap, from the buffered hello
    EXPECT_EQ(name_of(ev[0]), "new.example.com");
    EXPECT_EQ(ev[1].service, 3);  // the old pattern is gone
    EXPECT_EQ(ev[1].trigger, 0);  // the new trigger pattern
    EXPECT_EQ(stats_->match_scan_errors.load(), 0u);
}

TEST_F(FlowMatchTest, WithoutPatternsNothingIsExaminedOrCounted) {
    spec_ = {};
    start();
    Conn c = conn(40070, 443);
    handshake(c);
    client_data(c, client_hello("api.example.com", 10));
    server_reset(c);
    const auto ev = finish_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].service, 3);
    EXPECT_EQ(ev[0].name_kind, 0);
    EXPECT_EQ(ev[0].trigger, events::kNoTrigger);
    for (size_t m = 0; m < match::kIdentMethodCount; ++m)
        EXPECT_EQ(stats_->service_identified[m].load(), 0u);
}

}  // namespace
