// The per-burst worker on a real rte_hash flow table (EAL from eal_env.cpp), fed with frames built
// byte by byte: RST episodes, race re-labelling, counting once, 4-tuple reuse, outcomes.
#include <gtest/gtest.h>
#include <rte_memory.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <deque>

#include "packet_builder.hpp"
#include "pipeline/worker.hpp"

using namespace rstmon;
using namespace rstmon::test;
using namespace rstmon::packet::tcpflag;
using classify::Cause;

namespace {

constexpr uint64_t kMs = 1000000ull;

class WorkerTest : public ::testing::Test {
protected:
    void SetUp() override {
        static int n = 0;
        const std::string id = std::to_string(n++);
        table_ = std::make_unique<flow::FlowTable>("wt_flows" + id, 4096, SOCKET_ID_ANY, timeouts_);
        ring_ = rte_ring_create_elem(("wt_ev" + id).c_str(), sizeof(events::RstEvent), 1024,
                                     SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(ring_, nullptr);
        cfg_.events = ring_;
        cfg_.events_lossless = true;
        cfg_.thresholds.linger_ns = 2000 * kMs;
        services_.fill(0);
        services_[80] = 1;
        cfg_.services = &services_;
        stats_ = std::make_unique<metrics::LcoreStats>();
        worker_ = std::make_unique<pipeline::Worker>(cfg_, *table_, *stats_);
        c2s_.ttl = 64;
        s2c_.src = c2s_.dst;
        s2c_.dst = c2s_.src;
        s2c_.sport = c2s_.dport;
        s2c_.dport = c2s_.sport;
        s2c_.ttl = 63;
    }
    void TearDown() override {
        worker_.reset();
        table_.reset();
        rte_ring_free(ring_);
    }

    void send(SegSpec s, uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
        s.flags = flags;
        s.seq = seq;
        s.ack = ack;
        s.payload.assign(payload, 'x');
        frames_.push_back(frame(s));
        pipeline::Frame f;
        f.data = frames_.back().data();
        f.len = f.wire_len = static_cast<uint32_t>(frames_.back().size());
        f.ts_ns = now_;
        worker_->process(&f, 1);
    }
    void client(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
        send(c2s_, flags, seq, ack, payload);
    }
    void server(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0, uint8_t ttl = 63) {
        SegSpec s = s2c_;
        s.ttl = ttl;
        send(s, flags, seq, ack, payload);
    }
    void handshake() {
        client(syn, 1000, 0);
        server(syn | ack, 5000, 1001);
        client(ack, 1001, 5001);
    }
    std::vector<events::RstEvent> events() {
        std::vector<events::RstEvent> out;
        events::RstEvent ev[32];
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(ring_, ev, sizeof ev[0], 32, nullptr)) > 0)
            out.insert(out.end(), ev, ev + n);
        return out;
    }
    uint64_t rst_count(Cause c) const {
        uint64_t n = 0;
        for (auto& st : stats_->rst[static_cast<size_t>(c)])
            for (auto& se : st)
                for (auto& sv : se) n += sv.load();
        return n;
    }
    uint64_t outcome(metrics::Outcome o) const {
        return stats_->connections[static_cast<size_t>(o)].load();
    }

    flow::FlowTimeouts timeouts_;
    pipeline::WorkerConfig cfg_;
    pipeline::ServiceMap services_;
    std::unique_ptr<flow::FlowTable> table_;
    std::unique_ptr<metrics::LcoreStats> stats_;
    std::unique_ptr<pipeline::Worker> worker_;
    rte_ring* ring_ = nullptr;
    std::deque<std::vector<uint8_t>> frames_;
    SegSpec c2s_, s2c_;
    uint64_t now_ = 1000000000000ull;
};

TEST_F(WorkerTest, RstIsCountedOnlyWhenItsEpisodeEnds) {
    handshake();
    client(ack | psh, 1001, 5001, 100);
    server(ack | psh, 5001, 1101, 200);
    client(ack, 1101, 5201);
    server(rst | ack, 5201, 1101);
    EXPECT_EQ(stats_->rst_packets.load(), 1u);
    EXPECT_EQ(rst_count(Cause::linger_abort), 0u);  // pending: the episode is open
    EXPECT_TRUE(events().empty());
    now_ += 2001 * kMs;
    worker_->idle(now_);
    EXPECT_EQ(rst_count(Cause::linger_abort), 1u);
    const auto ev = events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].cause, Cause::linger_abort);
    EXPECT_EQ(ev[0].service, 1);  // server port 80 is "http"
    EXPECT_TRUE(ev[0].first);
}

TEST_F(WorkerTest, ForgedRstThenTheRealServerTalksIsInjected) {
    handshake();
    client(ack | psh, 1001, 5001, 100);              // the trigger
    server(rst | ack, 5001, 1101, 0, /*ttl=*/64);    // forged, one hop closer than the server
    now_ += 5 * kMs;
    server(ack | psh, 5001, 1101, 300);              // the real answer races in
    client(rst, 1101, 0);                            // aftermath: the client has no socket now
    worker_->finish(false);
    const auto ev = events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].cause, Cause::injected);
    EXPECT_EQ(ev[0].sender, classify::Sender::server);
    EXPECT_TRUE(ev[0].first);
    EXPECT_EQ(ev[1].cause, Cause::injected);  // counted with the episode's cause
    EXPECT_EQ(ev[1].sender, classify::Sender::client);
    EXPECT_FALSE(ev[1].first);
    EXPECT_EQ(rst_count(Cause::injected), 2u);
    EXPECT_EQ(rst_count(Cause::middlebox_reject), 0u);  // never counted under the first guess
}

TEST_F(WorkerTest, ForgedRstWithoutARaceIsAMiddleboxReject) {
    handshake();
    client(ack | psh, 1001, 5001, 100);
    server(rst | ack, 5001, 1101, 0, 64);
    now_ += 3000 * kMs;
    worker_->idle(now_);
    EXPECT_EQ(rst_count(Cause::middlebox_reject), 1u);
}

TEST_F(WorkerTest, RstBurstWithSequenceJumpsIsInjected) {
    handshake();
    client(ack | psh, 1001, 5001, 100);
    server(rst, 5001, 0);
    server(rst, 5001 + 1460, 0);
    server(rst, 5001 + 4380, 0);
    worker_->finish(false);
    EXPECT_EQ(rst_count(Cause::injected), 3u);
}

TEST_F(WorkerTest, SynOnATupleInTimeWaitIsTimeWaitReuse) {
    handshake();
    client(ack | psh, 1001, 5001, 10);
    server(ack | psh | fin, 5001, 1011, 10);  // the server closes actively: TIME_WAIT there
    client(ack | fin, 1011, 5012);
    server(ack, 5012, 1012);
    now_ += 100 * kMs;
    client(syn, 500, 0);                       // same 4-tuple, lower ISN
    server(ack, 5012, 1012);                   // TIME_WAIT answers with its old ACK
    client(rst, 1012, 0);                      // the client has no socket for it
    worker_->finish(false);
    EXPECT_EQ(rst_count(Cause::time_wait_reuse), 1u);
    EXPECT_EQ(outcome(metrics::Outcome::fin), 1u);  // the first connection ended with FIN
}

TEST_F(WorkerTest, LoneRstIsFinalAtOnceAndGetsRolesFromPorts) {
    client(rst, 77, 0);
    EXPECT_EQ(rst_count(Cause::no_state), 1u);
    const auto ev = events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].sender, classify::Sender::client);  // port 80 is the server's
}

TEST_F(WorkerTest, OutcomesAreCountedWhenFlowsEnd) {
    // 1: refused (RST), 2: never answered (SYN only), 3: FIN close, 4: idle established.
    c2s_.sport = 1001;
    s2c_.dport = 1001;
    client(syn, 1, 0);
    server(rst | ack, 0, 2);
    c2s_.sport = 1002;
    s2c_.dport = 1002;
    client(syn, 1, 0);
    client(syn, 1, 0);
    c2s_.sport = 1003;
    s2c_.dport = 1003;
    handshake();
    client(fin | ack, 1001, 5001);
    server(fin | ack, 5001, 1002);
    c2s_.sport = 1004;
    s2c_.dport = 1004;
    handshake();
    now_ += 7200ull * 1000 * kMs;  // two hours later: every timeout has passed
    worker_->idle(now_);
    worker_->finish(true);
    EXPECT_EQ(outcome(metrics::Outcome::rst), 1u);
    EXPECT_EQ(outcome(metrics::Outcome::handshake_timeout), 1u);
    EXPECT_EQ(outcome(metrics::Outcome::fin), 1u);
    EXPECT_EQ(outcome(metrics::Outcome::idle_expired), 1u);
    EXPECT_EQ(table_->active(), 0u);
}

TEST_F(WorkerTest, AFlowPastItsTimeoutExpiresOnItsNextPacketWhateverTheSweep) {
    client(syn, 1000, 0);
    now_ += 31000 * kMs;  // past the 30 s handshake timeout; the sweep has not reached the slot
    server(syn | ack, 5000, 1001);
    EXPECT_EQ(outcome(metrics::Outcome::handshake_timeout), 1u);
    EXPECT_EQ(table_->stats().expired, 1u);
    EXPECT_EQ(table_->stats().created, 2u);  // the late SYN-ACK starts a new, mid-stream flow
}

TEST_F(WorkerTest, FullPendingQueueFinalizesTheOldestEarly) {
    worker_.reset();
    cfg_.pending_rsts = 2;
    worker_ = std::make_unique<pipeline::Worker>(cfg_, *table_, *stats_);
    for (uint16_t p = 2000; p < 2003; ++p) {
        c2s_.sport = p;
        s2c_.dport = p;
        client(syn, 1000, 0);
        server(rst | ack, 0, 1001);
    }
    EXPECT_EQ(stats_->rst_finalized_early.load(), 1u);
    EXPECT_EQ(rst_count(Cause::port_closed), 1u);
    worker_->finish(false);
    EXPECT_EQ(rst_count(Cause::port_closed), 3u);
}

}  // namespace
