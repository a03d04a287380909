// Evidence in RST events, forensic captures (written by the real writer thread, read back with
// libpcap), the top summary feed and learned idle timeouts, and the event ring's overflow: the
// worker on a real rte_hash flow table (EAL from eal_env.cpp), fed with frames built byte by byte.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <rte_memory.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <deque>
#include <filesystem>

#include "events/evidence.hpp"
#include "forensics/writer.hpp"
#include "packet_builder.hpp"
#include "pipeline/worker.hpp"
#include "top/feed.hpp"

using namespace rstmon;
using namespace rstmon::test;
using namespace rstmon::packet::tcpflag;
using classify::Cause;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMs = 1000000ull, kS = 1000000000ull;

struct PcapFrame {
    uint64_t ts_ns;
    uint32_t wire_len;
    std::vector<uint8_t> data;
};

std::vector<PcapFrame> read_pcap(const std::string& path, int* dlt = nullptr) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    EXPECT_NE(p, nullptr) << path << ": " << err;
    std::vector<PcapFrame> out;
    if (p == nullptr) return out;
    if (dlt) *dlt = pcap_datalink(p);
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1)
        out.push_back({static_cast<uint64_t>(h->ts.tv_sec) * kS + static_cast<uint64_t>(h->ts.tv_usec),
                       h->len, std::vector<uint8_t>(d, d + h->caplen)});
    pcap_close(p);
    return out;
}

class EvidenceTest : public ::testing::Test {
protected:
    // Builds the worker; call after adjusting cfg_/fsettings_ (forensics on when `dir_` is set).
    void start(uint32_t event_ring = 1024, bool lossless = true) {
        static int n = 0;
        const std::string id = std::to_string(n++);
        table_ = std::make_unique<flow::FlowTable>("ef_flows" + id, 4096, SOCKET_ID_ANY, timeouts_);
        ring_ = rte_ring_create_elem(("ef_ev" + id).c_str(), sizeof(events::RstEvent), event_ring,
                                     SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(ring_, nullptr);
        cfg_.events = ring_;
        cfg_.events_lossless = lossless;
        cfg_.events_per_second = 0;
        cfg_.thresholds.linger_ns = 2000 * kMs;
        services_.fill(0);
        services_[80] = 1;
        cfg_.services = &services_;
        if (!dir_.empty()) {
            std::array<int, metrics::kMaxPorts> dlt;
            dlt.fill(DLT_EN10MB);
            fsettings_.enabled = true;
            fsettings_.dir = dir_;
            forensics_ = std::make_unique<forensics::Forensics>(fsettings_, 1, table_->capacity(),
                                                                dlt, 1700000000.0);
            forensics_->start();
            cfg_.forensics = forensics_.get();
        }
        if (top_) {
            feed_ = std::make_unique<top::Feed>(1, 1024, true);
            cfg_.top = feed_.get();
        }
        stats_ = std::make_unique<metrics::LcoreStats>();
        worker_ = std::make_unique<pipeline::Worker>(cfg_, *table_, *stats_);
        c2s_.ttl = 64;
        s2c_.src = c2s_.dst;
        s2c_.dst = c2s_.src;
        s2c_.sport = c2s_.dport;
        s2c_.dport = c2s_.sport;
        s2c_.ttl = 63;  // the server is one hop behind the monitor
    }
    void SetUp() override {
        static int n = 0;
        dir_.clear();
        tmp_ = fs::temp_directory_path() / ("rstmon-ef-" + std::to_string(getpid()) + "-" +
                                            std::to_string(n++));
    }
    void TearDown() override {
        worker_.reset();
        forensics_.reset();
        feed_.reset();
        table_.reset();
        rte_ring_free(ring_);
        std::error_code ec;
        fs::remove_all(tmp_, ec);
    }

    const std::vector<uint8_t>& send(SegSpec s, uint8_t flags, uint32_t seq, uint32_t ack,
                                     size_t payload = 0) {
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
        return frames_.back();
    }
    const std::vector<uint8_t>& client(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
        return send(c2s_, flags, seq, ack, payload);
    }
    const std::vector<uint8_t>& server(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0,
                                       uint8_t ttl = 63) {
        SegSpec s = s2c_;
        s.ttl = ttl;
        return send(s, flags, seq, ack, payload);
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
    std::string file_of(const events::RstEvent& e) const {
        return events::pcap_file_name(forensics_->prefix(), e.worker, e.pcap_file);
    }

    flow::FlowTimeouts timeouts_;
    pipeline::WorkerConfig cfg_;
    pipeline::ServiceMap services_;
    forensics::Settings fsettings_;
    std::string dir_;
    bool top_ = false;
    fs::path tmp_;
    std::unique_ptr<flow::FlowTable> table_;
    std::unique_ptr<metrics::LcoreStats> stats_;
    std::unique_ptr<forensics::Forensics> forensics_;
    std::unique_ptr<top::Feed> feed_;
    std::unique_ptr<pipeline::Worker> worker_;
    rte_ring* ring_ = nullptr;
    std::deque<std::vector<uint8_t>> frames_;
    SegSpec c2s_, s2c_;
    uint64_t now_ = 1700000000ull * kS;
};

// A full hand-off ring drops and counts; the worker goes on (and the RST counters count all).
TEST_F(EvidenceTest, FullEventRingDropsAndCountsWithoutBlocking) {
    start(/*event_ring=*/64, /*lossless=*/false);  // holds 63
    for (uint16_t i = 0; i < 100; ++i) {
        SegSpec lone = s2c_;
        lone.dport = static_cast<uint16_t>(41000 + i);
        send(lone, rst, 7000 + i, 0);  // no flow: final at once
    }
    EXPECT_EQ(stats_->rst_packets.load(), 100u);
    EXPECT_EQ(rte_ring_count(ring_), 63u);
    EXPECT_EQ(stats_->events_dropped.load(), 37u);
    uint64_t counted = 0;
    for (auto& st : stats_->rst[static_cast<size_t>(Cause::no_state)])
        for (auto& se : st)
            for (auto& sv : se) counted += sv.load();
    EXPECT_EQ(counted, 100u);
}

// A middlebox that forgot an idle flow answers for the server: one hop closer, after the gap.
TEST_F(EvidenceTest, IdleTimeoutEventCarriesHopDeltaGapAndBytes) {
    start();
    handshake();
    client(ack | psh, 1001, 5001, 100);
    server(ack | psh, 5001, 1101, 200);
    client(ack, 1101, 5201);
    now_ += 300 * kS;
    client(ack | psh, 1101, 5201, 10);
    now_ += 1 * kMs;
    server(rst, 5201, 0, 0, /*ttl=*/64);  // made by the router (TTL 64), not the server (63)
    worker_->finish(false);
    const auto ev = events();
    ASSERT_EQ(ev.size(), 1u);
    const events::RstEvent& e = ev[0];
    EXPECT_EQ(e.cause, Cause::idle_timeout);
    EXPECT_EQ(e.flow_ttl, 63);
    EXPECT_EQ(e.ttl, 64);
    EXPECT_EQ(events::hops_from_ttl(e.ttl), 0);
    EXPECT_EQ(events::hop_delta(e.ttl, e.flow_ttl), 1);
    EXPECT_EQ(e.src_bytes, 200u);  // the server's payload
    EXPECT_EQ(e.dst_bytes, 110u);  // the client's, the segment after the gap included
    EXPECT_GE(e.idle_ns, 300 * kS);
    EXPECT_EQ(e.missing, 0);
    EXPECT_EQ(e.payload_caplen, 0);  // events.include_payload is off
}

TEST_F(EvidenceTest, RetransmissionRunIsInTheEvidence) {
    start();
    handshake();
    client(ack | psh, 1001, 5001, 100);
    for (int i = 0; i < 4; ++i) {  // the client retransmits; the server never acknowledges
        now_ += 200 * kMs;
        client(ack | psh, 1001, 5001, 100);
    }
    now_ += 2 * kS;
    server(ack | psh, 5001, 1001, 20);  // the server speaks again
    client(rst, 1001, 0);               // the client gave up: no socket
    worker_->finish(false);
    const auto ev = events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].cause, Cause::retransmission_timeout);
    EXPECT_EQ(ev[0].rexmit_run, 4);
    EXPECT_EQ(ev[0].peer_rexmit_run, 0);
}

TEST_F(EvidenceTest, UnansweredKeepaliveProbesAreInTheEvidence) {
    start();
    handshake();
    client(ack | psh, 1001, 5001, 100);
    server(ack, 5001, 1101);
    for (int i = 0; i < 2; ++i) {  // probes: seq = snd_una - 1, nothing answers
        now_ += 1 * kS;
        client(ack, 1100, 5001);
    }
    now_ += 1 * kS;
    client(rst | ack, 1101, 5001);
    worker_->finish(false);
    const auto ev = events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].cause, Cause::keepalive_timeout);
    EXPECT_EQ(ev[0].ka_probes, 2);
    EXPECT_EQ(ev[0].src_bytes, 100u);
    EXPECT_EQ(ev[0].dst_bytes, 0u);
}

TEST_F(EvidenceTest, LoneRstSaysWhatWasMissingAndKeepsPayloadOnlyWhenAsked) {
    cfg_.include_payload = true;
    start();
    SegSpec s = s2c_;
    s.flags = rst | ack;
    s.payload = {'b', 'y', 'e'};
    frames_.push_back(frame(s));
    pipeline::Frame f;
    f.data = frames_.back().data();
    f.len = f.wire_len = static_cast<uint32_t>(frames_.back().size());
    f.ts_ns = now_;
    worker_->process(&f, 1);
    const auto ev = events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].cause, Cause::no_state);
    const auto bit = [](events::Missing m) { return 1u << static_cast<unsigned>(m); };
    EXPECT_TRUE(ev[0].missing & bit(events::Missing::flow));
    EXPECT_TRUE(ev[0].missing & bit(events::Missing::sender_ttl));  // the host never spoke
    EXPECT_TRUE(ev[0].missing & bit(events::Missing::sequence));
    EXPECT_FALSE(ev[0].missing & bit(events::Missing::roles));  // port 80 marks the server
    ASSERT_EQ(ev[0].payload_caplen, 3);
    EXPECT_EQ(std::string(ev[0].payload, ev[0].payload + 3), "bye");
}

// Survived gaps bound a middlebox's idle timeout from below, idle_timeout resets from above.
TEST_F(EvidenceTest, SurvivedAndResetGapsReachTheLearnedTimeout) {
    top_ = true;
    cfg_.learn_min_gap_ns = 10 * kS;
    start();
    handshake();
    client(ack | psh, 1001, 5001, 100);
    server(ack | psh, 5001, 1101, 100);
    now_ += 5 * kS;                      // shorter than min_gap: not reported
    client(ack | psh, 1101, 5101, 10);
    server(ack, 5101, 1111);
    now_ += 200 * kS;                    // survived: the server answered after the gap
    client(ack | psh, 1111, 5101, 10);
    server(ack, 5101, 1121);
    now_ += 400 * kS;                    // then forgotten by the middlebox
    client(ack | psh, 1121, 5101, 10);
    server(rst, 5101, 0, 0, 64);
    worker_->finish(false);
    top::TopSummary t(16, {"other", "http"});
    EXPECT_EQ(feed_->drain(t), 2u);  // one survived gap, one RST
    const auto learned = t.learned();
    ASSERT_EQ(learned.size(), 2u);
    EXPECT_EQ(learned[1].survived, 1u);
    EXPECT_EQ(learned[1].survived_max_ns, 200 * kS);
    EXPECT_EQ(learned[1].resets, 1u);
    EXPECT_EQ(learned[1].reset_min_ns, 400 * kS + 0);
    const auto j = t.to_json(10);
    EXPECT_EQ(j["all"]["rst"], 1);
    EXPECT_EQ(j["all"]["servers"][0]["key"], "10.0.0.2:80");
    EXPECT_EQ(j["learned_idle_timeouts"][0]["service"], "http");
    EXPECT_EQ(j["learned_idle_timeouts"][0]["text"],
              "connections to `http` idle >= 400.0 s are reset; idle 200.0 s survived: a "
              "middlebox times them out after between 200.0 and 400.0 s");
}

TEST_F(EvidenceTest, FullSummaryRingDropsAndCountsLive) {
    start();
    top::Feed feed(1, 64, /*lossless=*/false);
    top::Record r;
    for (int i = 0; i < 100; ++i) feed.push(0, r);
    EXPECT_EQ(feed.dropped(), 37u);
    top::TopSummary t(4, {"other"});
    EXPECT_EQ(feed.drain(t), 63u);
}

// The flow's last K frames, the RST and what follows in its episode, in the file and at the
// frame numbers the event names, byte for byte.
TEST_F(EvidenceTest, CaptureHoldsTheLastKFramesTheRstAndItsEpisode) {
    dir_ = tmp_.string();
    for (auto& c : fsettings_.causes) c = true;
    fsettings_.packets_before = 3;
    fsettings_.packets_after = 8;
    fsettings_.snaplen = 256;
    start();
    handshake();
    std::vector<std::vector<uint8_t>> want;
    client(ack | psh, 1001, 5001, 100);
    want.push_back(server(ack | psh, 5001, 1101, 50));
    want.push_back(client(ack | psh, 1101, 5051, 100));
    want.push_back(server(ack, 5051, 1201));
    now_ += 10 * kMs;
    want.push_back(server(rst | ack, 5051, 1201));  // the client's request left unread
    now_ += 1 * kMs;
    want.push_back(client(ack | psh, 1201, 5051, 10));  // the episode's aftermath
    now_ += 3 * kS;
    client(ack | psh, 1211, 5051, 10);  // after the episode: not in the capture
    worker_->finish(false);
    forensics_->stop();
    const auto ev = events();
    ASSERT_GE(ev.size(), 1u);
    const events::RstEvent& e = ev[0];
    EXPECT_EQ(e.cause, Cause::unread_data_close);
    ASSERT_NE(e.pcap_file, 0u);
    EXPECT_EQ(e.pcap_file, 1u);
    EXPECT_EQ(e.pcap_first, 1u);
    EXPECT_EQ(e.pcap_packets, 5u);
    EXPECT_EQ(e.pcap_rst, 3u);
    int dlt = -1;
    const auto got = read_pcap(file_of(e), &dlt);
    EXPECT_EQ(dlt, DLT_EN10MB);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].data, want[i]) << "frame " << i + 1;
        EXPECT_EQ(got[i].wire_len, want[i].size());
    }
    EXPECT_EQ(got[3].ts_ns, e.ts_ns);  // the RST, to the nanosecond
    EXPECT_EQ(forensics_->stats().captures.load(), 1u);
}

TEST_F(EvidenceTest, OnlyConfiguredCausesAreWrittenAndSnaplenCuts) {
    dir_ = tmp_.string();
    fsettings_.causes[static_cast<size_t>(Cause::port_closed)] = true;
    fsettings_.snaplen = 40;
    start();
    client(syn, 1000, 0);
    server(rst | ack, 0, 1001);  // port_closed: captured
    SegSpec c2 = c2s_, s2 = s2c_;
    c2.sport = s2.dport = 40001;
    send(c2, syn, 3000, 0);
    send(s2, syn | ack, 9000, 3001);
    send(c2, ack, 3001, 9001);
    send(s2, ack | psh, 9001, 3001, 100);
    send(s2, rst | ack, 9101, 3001);  // linger_abort: not captured
    worker_->finish(false);
    forensics_->stop();
    const auto ev = events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].cause, Cause::port_closed);
    EXPECT_EQ(ev[0].pcap_file, 1u);
    EXPECT_EQ(ev[0].pcap_packets, 2u);  // the SYN and the RST
    EXPECT_EQ(ev[1].cause, Cause::linger_abort);
    EXPECT_EQ(ev[1].pcap_file, 0u);
    const auto got = read_pcap(file_of(ev[0]));
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].data.size(), 40u);  // cut at snaplen
    EXPECT_EQ(got[0].wire_len, frames_[0].size());  // the original length is kept
}

TEST_F(EvidenceTest, BusySlotsAreCountedAndFilesRotateUnderTheTotalCap) {
    dir_ = tmp_.string();
    for (auto& c : fsettings_.causes) c = true;
    fsettings_.in_flight = 2;
    fsettings_.packets_before = 1;
    fsettings_.snaplen = 128;
    fsettings_.max_file_size = 300;    // one capture (2 frames of ~80 bytes + headers) per file
    fsettings_.max_total_size = 700;  // the oldest files go
    fsettings_.lossless = true;       // wait for buffers the writer still holds (as offline)
    start();
    // Three refused connections inside one episode window: the third finds both slots busy.
    for (uint16_t i = 0; i < 3; ++i) {
        SegSpec c = c2s_, s = s2c_;
        c.sport = s.dport = static_cast<uint16_t>(42000 + i);
        send(c, syn, 1000, 0);
        send(s, rst | ack, 0, 1001);
    }
    EXPECT_EQ(forensics_->recorder(0)->stats().no_slot.load(), 1u);
    worker_->finish(false);
    // More, one at a time: slots come back from the writer, files rotate.
    for (uint16_t i = 0; i < 6; ++i) {
        now_ += 3 * kS;
        SegSpec c = c2s_, s = s2c_;
        c.sport = s.dport = static_cast<uint16_t>(43000 + i);
        send(c, syn, 1000, 0);
        send(s, rst | ack, 0, 1001);
        worker_->finish(false);
        const auto ev = events();
        ASSERT_EQ(ev.size(), i == 0 ? 4u : 1u);
        const events::RstEvent& e = ev.back();
        EXPECT_EQ(e.pcap_file, 3u + i) << "each capture fills a file of its own";
        EXPECT_EQ(e.pcap_first, 1u);
    }
    forensics_->stop();
    size_t files = 0, bytes = 0;
    for (const auto& de : fs::directory_iterator(tmp_)) {
        files++;
        bytes += fs::file_size(de.path());
    }
    EXPECT_GT(forensics_->stats().files_removed.load(), 0u);
    EXPECT_LE(bytes, 700u);
    EXPECT_EQ(files + forensics_->stats().files_removed.load(), 8u);  // 2 + 6 captures written
    // The newest file is there and holds the last capture.
    EXPECT_EQ(read_pcap(events::pcap_file_name(forensics_->prefix(), 0, 8)).size(), 2u);
}

}  // namespace
