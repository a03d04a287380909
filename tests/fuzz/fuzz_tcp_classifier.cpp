// libFuzzer target: the TCP tracker (lib/tcp) and the RST classifier (lib/classify), driven the
// way the pipeline worker drives them, by a sequence of segments on one flow decoded from the
// input. Segments are built as parsed views (no frames): the parser has its own target.
//
// Input layout (see README.md; tests/fuzz/make_seeds.py writes it):
//   header, 11 bytes
//     h0   retransmission_run = 1 + (h0 & 7), keepalive_probes = (h0 >> 3) & 3,
//          ttl_tolerance = (h0 >> 5) & 7
//     h1   idle_threshold (h1 & 3), linger (h1 >> 2 & 3), connect_late (h1 >> 4 & 3) from the
//          tables below; client hint (h1 >> 6): 1 = side 0, 2 = side 1, else none
//     h2   TTL the RST sender's host used in other flows (0 = unknown)
//     h3.. ISN of side 0, ISN of side 1 (big-endian u32 each)
//   then one 10-byte record per segment
//     r0   bit 0 side; bits 1-2 seq mode; bits 3-4 ack mode; bit 5 timestamps;
//          bit 6 SYN options (wscale 7, MSS, SACK-permitted); bit 7 TTL from r9
//     r1   TCP flags
//     r2-3 seq operand, r4-5 ack operand (big-endian u16; modes below)
//     r6   window = r6 * 257;  r7 payload length (< 0xe0: bytes, else (r7 - 0xdf) * 1460)
//     r8   time since the previous segment: (r8 & 31) << 3 * (r8 >> 5) milliseconds
//     r9   TTL when r0 bit 7, else a signed nudge of the echoed timestamp (PAWS)
// Seq modes: 0 own ISN + op, 1 own next seq + (int16)op, 2 the peer's last ack + (int16)op,
// 3 own ISN + (op << 16). Ack modes: 0 peer ISN + op, 1 peer's next seq + (int16)op, 2 own last
// ack + (int16)op, 3 peer ISN + (op << 16). Relative modes reach the exact values the classifier
// compares against; absolute ones replay hand-written conversations (and libFuzzer's comparison
// tracing finds the rest).
//
// RSTMON_FUZZ_TRACE=1 prints every RST's verdict and every episode's final cause (how the seed
// corpus is checked to reach all 18 causes, and how a crash input is read).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "classify/classifier.hpp"
#include "tcp/connection.hpp"

using namespace rstmon;
using classify::Cause;
using classify::Stage;
using packet::tcpflag::ack;
using packet::tcpflag::fin;
using packet::tcpflag::rst;
using packet::tcpflag::syn;

namespace {

#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            std::fprintf(stderr, "fuzz_tcp_classifier: invariant failed: %s (%s:%d)\n", #cond, \
                         __FILE__, __LINE__);                                                  \
            std::abort();                                                                      \
        }                                                                                      \
    } while (0)

constexpr size_t kHeader = 11, kRecord = 10;
constexpr uint64_t kSec = 1000000000ull, kMsNs = 1000000ull;
constexpr uint64_t kIdle[4] = {240 * kSec, 1 * kSec, 30 * kSec, 100 * kMsNs};
constexpr uint64_t kLinger[4] = {2 * kSec, 0, 100 * kMsNs, 60 * kSec};
constexpr uint64_t kConnectLate[4] = {1 * kSec, 10 * kMsNs, 100 * kMsNs, 600 * kSec};

uint16_t rd16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t rd32(const uint8_t* p) {
    return static_cast<uint32_t>(rd16(p)) << 16 | rd16(p + 2);
}

bool trace_enabled() {
    static const bool on = std::getenv("RSTMON_FUZZ_TRACE") != nullptr;
    return on;
}

// Mirrors what pipeline::Worker does with one flow record: start, restart on a new SYN after a
// close, RST episodes (linger, race evidence), the episode's final cause. Time is milliseconds
// since the connection (generation) started, as the worker's FlowRecord::ms gives it.
class FlowDriver {
public:
    FlowDriver(const classify::Thresholds& th, uint8_t host_ttl, tcp::Side hint,
               const uint32_t isn[2])
        : th_(th), host_ttl_(host_ttl), hint_(hint), isn_{isn[0], isn[1]} {}

    void advance(uint64_t ms) { abs_ms_ += ms; }

    packet::TcpSegment build(const uint8_t* r) const {
        const tcp::Side side = r[0] & 1;
        const tcp::Side peer = tcp::other(side);
        const unsigned seq_mode = (r[0] >> 1) & 3, ack_mode = (r[0] >> 3) & 3;
        const uint16_t sop = rd16(r + 2), aop = rd16(r + 4);
        const auto rel = [](uint16_t op) {
            return static_cast<uint32_t>(static_cast<int16_t>(op));
        };
        packet::TcpSegment s;
        s.family = 4;
        s.src.b[0] = 10;
        s.src.b[3] = static_cast<uint8_t>(1 + side);  // side 0 = 10.0.0.1, the key's low end
        s.dst.b[0] = 10;
        s.dst.b[3] = static_cast<uint8_t>(1 + peer);
        s.sport = side == 0 ? 40000 : 80;
        s.dport = side == 0 ? 80 : 40000;
        s.flags = r[1];
        const tcp::Direction* d = started_ ? &conn_.dir[side] : nullptr;
        const tcp::Direction* p = started_ ? &conn_.dir[peer] : nullptr;
        switch (seq_mode) {
            case 0:
                s.seq = isn_[side] + sop;
                break;
            case 1:
                s.seq = (d && d->seq_known ? d->snd_nxt : isn_[side] + (s.has(syn) ? 0u : 1u)) +
                        rel(sop);
                break;
            case 2:
                s.seq = (p && p->ack_known ? p->last_ack : isn_[side] + 1) + rel(sop);
                break;
            default:
                s.seq = isn_[side] + (static_cast<uint32_t>(sop) << 16);
                break;
        }
        switch (ack_mode) {
            case 0:
                s.ack = isn_[peer] + aop;
                break;
            case 1:
                s.ack = (p && p->seq_known ? p->snd_nxt : isn_[peer] + 1) + rel(aop);
                break;
            case 2:
                s.ack = (d && d->ack_known ? d->last_ack : 0) + rel(aop);
                break;
            default:
                s.ack = isn_[peer] + (static_cast<uint32_t>(aop) << 16);
                break;
        }
        s.window = static_cast<uint16_t>(r[6] * 257u);
        s.payload_len = r[7] < 0xe0 ? r[7] : (r[7] - 0xdfu) * 1460u;
        s.payload_caplen = 0;  // the tracker and classifier never read payload bytes
        s.payload = nullptr;
        const bool explicit_ttl = r[0] & 0x80;
        s.ttl = explicit_ttl ? r[9] : (side == 0 ? 64 : 63);
        s.ip_id = static_cast<uint16_t>(seq_counter_ + side);
        if (r[0] & 0x40) {
            s.wscale = 7;
            s.mss = 1460;
            s.sack_permitted = true;
        }
        if (r[0] & 0x20) {
            s.has_ts = true;
            // Never 0: the tracker reads a zero tsval of the client's SYN as "no timestamp".
            s.tsval = static_cast<uint32_t>(abs_ms_) + (side ? 0x40000000u : 0x1000u);
            const uint32_t nudge =
                explicit_ttl ? 0 : static_cast<uint32_t>(static_cast<int8_t>(r[9]));
            s.tsecr = last_tsval_[peer] + nudge;
        }
        return s;
    }

    void segment(const packet::TcpSegment& s, tcp::Side side) {
        ++seq_counter_;
        if (s.has_ts) last_tsval_[side] = s.tsval;
        if (s.has(rst))
            on_rst(s, side);
        else
            on_segment(s, side);
        if (started_) check_connection();
    }

    void finish() {
        if (started_ && conn_.episode.active) close_episode();
    }

private:
    tcp::Ms now() const {
        const uint64_t ms = abs_ms_ - start_ms_;
        return ms > UINT32_MAX ? UINT32_MAX : static_cast<tcp::Ms>(ms);
    }

    void restart(const packet::TcpSegment& s, tcp::Side side, bool reused) {
        if (conn_.episode.active) close_episode();
        conn_.start(s, side, reused);
        start_ms_ = abs_ms_;
        rsts_ = 0;
        min_stage_ = Stage::post_syn;
    }

    // Worker::restart_after_reset: traffic after the reset episode ended is another connection
    // whose start was not seen; the roles carry over.
    void restart_after_reset(const packet::TcpSegment& s, tcp::Side side) {
        if (!conn_.episode.active || !conn_.any_rst() || now() < conn_.episode.end_ms) return;
        const tcp::Side client = conn_.client;
        restart(s, side, false);
        if (conn_.client == tcp::kNoSide) conn_.client = client;
    }

    void on_segment(const packet::TcpSegment& s, tcp::Side side) {
        if (!started_) {
            conn_.start(s, side);
            if (conn_.client == tcp::kNoSide) conn_.client = hint_;
            started_ = true;
            start_ms_ = abs_ms_;
        } else if (s.has(syn) && !s.has(ack) && (conn_.any_fin() || conn_.any_rst())) {
            restart(s, side, conn_.any_fin());
        } else if (conn_.episode.active) {
            restart_after_reset(s, side);
        }
        if (conn_.episode.active && now() < conn_.episode.end_ms) race(s, side);
        conn_.update(s, side, now());
        FUZZ_CHECK(conn_.dir[side].spoke && conn_.dir[side].seq_known);
        FUZZ_CHECK(conn_.last_side == side);
        FUZZ_CHECK(conn_.dir[side].last_ms == now());
        if (s.has(fin)) FUZZ_CHECK(conn_.dir[side].fin);
    }

    void race(const packet::TcpSegment& s, tcp::Side side) {
        const auto current = static_cast<Cause>(conn_.episode.cause);
        const Cause next = classify::on_episode_segment(conn_, side, s, current);
        // Race evidence can only expose a forgery: a cause either stays or becomes injected,
        // never for a refused bogus segment, and never for the peer's own answers but one: its
        // bare RST at (or beyond) its snd_nxt, silent since a first RST from another hop
        // distance than the sender's, which a refusal or no label yet becomes (the real sender
        // reached it, having received everything: classifier.cpp, receiver_answers_sender).
        FUZZ_CHECK(next == current || next == Cause::injected);
        if (current == Cause::invalid_segment) FUZZ_CHECK(next == current);
        const tcp::Episode& e = conn_.episode;
        if (side != e.side && next != current)
            FUZZ_CHECK(s.has(rst) && !s.has(ack) && e.ttl_differs &&
                       !e.same_stack && !e.peer_spoke &&
                       (current == Cause::middlebox_reject || current == Cause::unclassified));
        conn_.episode.cause = static_cast<uint8_t>(next);
    }

    void on_rst(const packet::TcpSegment& s, tcp::Side side) {
        if (started_ && conn_.episode.active) restart_after_reset(s, side);
        const tcp::Connection* c = started_ ? &conn_ : nullptr;
        const uint8_t host_ttl = started_ ? host_ttl_ : 0;
        const classify::Verdict v = classify::classify(c, side, s, th_, host_ttl, hint_);
        check_verdict(v, c, side);
        // A pure function of its inputs: asked again, it answers the same.
        const classify::Verdict again = classify::classify(c, side, s, th_, host_ttl, hint_);
        FUZZ_CHECK(again.cause == v.cause && again.stage == v.stage && again.sender == v.sender &&
                   again.validity == v.validity);
        if (trace_enabled())
            std::printf("rst side=%u verdict=%s stage=%s sender=%s validity=%s\n", side,
                        classify::name(v.cause).data(), classify::name(v.stage).data(),
                        classify::name(v.sender).data(), classify::name(v.validity).data());
        if (!started_) return;  // untracked: final at once, no episode

        tcp::Episode& e = conn_.episode;
        if (e.active && now() < e.end_ms) {
            race(s, side);
        } else {
            if (e.active) close_episode();
            const uint64_t linger_ms = th_.linger_ns / 1000000ull;
            e = tcp::Episode{};
            e.active = 1;
            const uint64_t end = static_cast<uint64_t>(now()) + linger_ms;
            e.end_ms = end > UINT32_MAX ? UINT32_MAX : static_cast<tcp::Ms>(end);
            e.seq = s.seq;
            e.side = side;
            e.cause = static_cast<uint8_t>(v.cause);
        }
        conn_.note_rst(s, side);
        if (rsts_ < UINT8_MAX) ++rsts_;
        FUZZ_CHECK(conn_.dir[side].rst && conn_.any_rst());
    }

    void close_episode() {
        FUZZ_CHECK(conn_.episode.cause < classify::kCauseCount);
        if (trace_enabled())
            std::printf("episode=%s\n",
                        classify::name(static_cast<Cause>(conn_.episode.cause)).data());
        conn_.episode.active = 0;
    }

    void check_verdict(const classify::Verdict& v, const tcp::Connection* c, tcp::Side side) {
        FUZZ_CHECK(static_cast<size_t>(v.cause) < classify::kCauseCount);
        FUZZ_CHECK(static_cast<size_t>(v.stage) < classify::kStageCount);
        FUZZ_CHECK(static_cast<size_t>(v.sender) < classify::kSenderCount);
        FUZZ_CHECK(static_cast<size_t>(v.validity) < classify::kValidityCount);
        // The roles: unknown exactly when neither the handshake nor the ports told them.
        const tcp::Side client = c && c->client != tcp::kNoSide ? c->client : hint_;
        if (client == tcp::kNoSide)
            FUZZ_CHECK(v.sender == classify::Sender::unknown);
        else
            FUZZ_CHECK(v.sender ==
                       (side == client ? classify::Sender::client : classify::Sender::server));
        if (c == nullptr) {
            FUZZ_CHECK(v.cause == Cause::no_state && v.stage == Stage::no_state &&
                       v.validity == classify::Validity::unverifiable);
            return;
        }
        // no_state is the cause exactly for flows not seen from their start.
        FUZZ_CHECK((v.stage == Stage::no_state) == (c->origin != tcp::Origin::handshake));
        FUZZ_CHECK((v.cause == Cause::no_state) == (v.stage == Stage::no_state));
        FUZZ_CHECK(v.stage == classify::stage_of(*c));
        // Injection needs race evidence, which only exists after the RST: never a first verdict.
        FUZZ_CHECK(v.cause != Cause::injected);
        // Handshake causes happen before the handshake completed, from the side CAUSES.md names.
        switch (v.cause) {
            case Cause::port_closed:
                FUZZ_CHECK(!c->established && !c->synack && v.sender == classify::Sender::server);
                break;
            case Cause::scan_probe:
            case Cause::connect_timeout:
                FUZZ_CHECK(!c->established && c->synack && v.sender == classify::Sender::client);
                break;
            case Cause::time_wait_reuse:
                FUZZ_CHECK(!c->established && c->reused && v.sender == classify::Sender::client);
                break;
            case Cause::listen_overflow:
                FUZZ_CHECK(c->established && v.sender == classify::Sender::server);
                break;
            case Cause::data_after_close:
            case Cause::orphan_abort:
                FUZZ_CHECK(c->dir[side].fin && v.stage == Stage::closing);
                break;
            default:
                break;
        }
    }

    void check_connection() {
        // Every flag stage_of reads is sticky within one connection, so its stage only moves
        // forward (in the enum's order) until the 4-tuple starts a new connection.
        const Stage st = classify::stage_of(conn_);
        FUZZ_CHECK(static_cast<size_t>(st) < classify::kStageCount);
        FUZZ_CHECK(st >= min_stage_);
        min_stage_ = st;
        FUZZ_CHECK(conn_.rst_count == rsts_);
        FUZZ_CHECK(conn_.client == tcp::kNoSide || conn_.client <= 1);
        FUZZ_CHECK(conn_.episode.cause < classify::kCauseCount);
        if (conn_.origin == tcp::Origin::handshake) FUZZ_CHECK(conn_.client != tcp::kNoSide);
        if (conn_.established) FUZZ_CHECK(conn_.synack);
    }

    classify::Thresholds th_;
    uint8_t host_ttl_;
    tcp::Side hint_;
    uint32_t isn_[2];
    tcp::Connection conn_;
    bool started_ = false;
    uint64_t abs_ms_ = 0, start_ms_ = 0;
    uint32_t last_tsval_[2] = {0, 0};
    uint32_t seq_counter_ = 0;
    uint8_t rsts_ = 0;
    Stage min_stage_ = Stage::post_syn;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < kHeader) return 0;
    classify::Thresholds th;
    th.retransmission_run = static_cast<uint8_t>(1 + (data[0] & 7));
    th.keepalive_probes = static_cast<uint8_t>((data[0] >> 3) & 3);
    th.ttl_tolerance = static_cast<uint8_t>((data[0] >> 5) & 7);
    th.idle_threshold_ns = kIdle[data[1] & 3];
    th.linger_ns = kLinger[(data[1] >> 2) & 3];
    th.connect_late_ns = kConnectLate[(data[1] >> 4) & 3];
    const unsigned h = data[1] >> 6;
    const tcp::Side hint = h == 1 ? 0 : h == 2 ? 1 : tcp::kNoSide;
    const uint32_t isn[2] = {rd32(data + 3), rd32(data + 7)};
    FlowDriver flow(th, data[2], hint, isn);

    // Long inputs only repeat what shorter ones reach and slow the search: 512 segments at most.
    const size_t n = std::min<size_t>((size - kHeader) / kRecord, 512);
    for (size_t i = 0; i < n; ++i) {
        const uint8_t* r = data + kHeader + i * kRecord;
        const uint8_t t = r[8];
        flow.advance(static_cast<uint64_t>(t & 31) << (3 * (t >> 5)));
        flow.segment(flow.build(r), r[0] & 1);
    }
    flow.finish();
    return 0;
}
