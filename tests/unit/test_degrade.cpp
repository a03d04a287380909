// Lossy and one-sided captures: what the tracker infers from segments the capture missed, and
// which causes the classifier withholds (unclassified) rather than guess when the evidence they
// need was lost. Shapes from tests/scenarios/degrade.py runs (1% and 5% of frames dropped).
#include <gtest/gtest.h>

#include "classify/classifier.hpp"
#include "events/evidence.hpp"
#include "flow/flow_key.hpp"
#include "packet_builder.hpp"

using namespace rstmon;
using namespace rstmon::test;
using namespace rstmon::packet::tcpflag;
using classify::Cause;

namespace {

// Client 10.0.0.1:40000 <-> server 10.0.0.2:80 on a client-side SPAN (client TTL 64, server 63),
// fed in the pipeline's order (RST: classify, open or extend the episode, note; else: race
// evidence, then update). `wait` lets time pass; an RST's silence is the time since the flow's
// previous segment, as the pipeline passes it; handshake answer delays as the pipeline sets them.
class Flow {
public:
    Flow() {
        spec_[kS].src = spec_[kC].dst;
        spec_[kS].dst = spec_[kC].src;
        spec_[kS].sport = spec_[kC].dport;
        spec_[kS].dport = spec_[kC].sport;
        spec_[kS].ttl = 63;
        spec_[kC].ip_id = 0x1000;
        spec_[kS].ip_id = 0x5000;
        th_.retransmission_run = 3;
    }
    Cause client(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
        return feed(kC, flags, seq, ack, payload);
    }
    Cause server(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
        return feed(kS, flags, seq, ack, payload);
    }
    void lost(int who) { ++spec_[who].ip_id; }  // a segment the capture missed
    // Something on the path speaking for the server: its own TTL and IP ID.
    Cause forged_server(uint8_t flags, uint32_t seq, uint32_t ack) {
        const SegSpec real = spec_[kS];
        spec_[kS].ttl = 64;
        spec_[kS].ip_id = 0x9999;
        const Cause c = feed(kS, flags, seq, ack, 0);
        spec_[kS] = real;
        return c;
    }
    void wait_us(uint64_t us) { now_ns_ += us * 1000; }
    // The client kernel's reset without a connection counter (Linux: IPv4 ID 0).
    Cause client_kernel_rst(uint32_t seq) {
        const uint16_t id = spec_[kC].ip_id;
        spec_[kC].ip_id = 0;
        const Cause c = feed(kC, rst, seq, 0, 0);
        spec_[kC].ip_id = id;
        return c;
    }
    void handshake() {
        client(syn, 1000, 0);
        wait_us(30);
        server(syn | ack, 5000, 1001);
        wait_us(20);
        client(ack, 1001, 5001);
    }
    Cause episode() const { return static_cast<Cause>(conn_.episode.cause); }
    const tcp::Connection& conn() const { return conn_; }
    static constexpr int kC = 0, kS = 1;

private:
    Cause feed(int who, uint8_t flags, uint32_t seq, uint32_t ack, size_t payload) {
        SegSpec s = spec_[who];
        ++spec_[who].ip_id;
        s.flags = flags;
        s.seq = seq;
        s.ack = ack;
        s.payload.assign(payload, 'x');
        const packet::TcpSegment seg = parse_ok(frame(s));
        flow::FlowKey key;
        const tcp::Side side = flow::make_key(seg, key);
        if (!started_) {
            conn_.start(seg, side);
            started_ = true;
        }
        const tcp::Ms now = static_cast<tcp::Ms>(now_ns_ / 1000000);
        const uint64_t silence = now_ns_ - last_ns_;
        const uint64_t prev = last_ns_;
        last_ns_ = now_ns_;
        tcp::Episode& e = conn_.episode;
        const bool in_episode = e.active && now < e.end_ms;
        if (seg.has(rst)) {
            const auto v = classify::classify(&conn_, side, seg, th_, 0, tcp::kNoSide, silence);
            if (in_episode) {
                e.cause = static_cast<uint8_t>(
                    classify::on_episode_segment(conn_, side, seg, static_cast<Cause>(e.cause)));
            } else {
                e = tcp::Episode{};
                e.active = 1;
                e.end_ms = now + 2000;
                e.seq = seg.seq;
                e.side = side;
                e.cause = static_cast<uint8_t>(v.cause);
            }
            conn_.note_rst(seg, side);
            return v.cause;
        }
        if (in_episode)
            e.cause = static_cast<uint8_t>(
                classify::on_episode_segment(conn_, side, seg, static_cast<Cause>(e.cause)));
        const bool handshaking = !conn_.established;
        conn_.update(seg, side, now);
        if (handshaking && (conn_.established || (conn_.synack && seg.has(syn))) &&
            conn_.dir[side].answer == 0)
            conn_.dir[side].answer = tcp::answer_code((now_ns_ - prev) / 1000);
        return Cause::unclassified;
    }

    SegSpec spec_[2];
    tcp::Connection conn_;
    classify::Thresholds th_;
    uint64_t now_ns_ = 1000000000, last_ns_ = 1000000000;
    bool started_ = false;
};

constexpr uint64_t kMsUs = 1000;

}  // namespace

// The server's response was lost; the client acknowledged it. Not "an ACK of data never sent":
// the server's sequence space moves on, with a hole that may hold a FIN.
TEST(Degrade, AnAckOfUnseenDataIsAHoleNotInvalid) {
    Flow f;
    f.handshake();
    f.client(ack | psh, 1001, 5001, 60);
    f.lost(Flow::kS);                   // response 5001..5368
    f.client(ack, 1061, 5368);
    EXPECT_TRUE(f.conn().dir[1].hole);
    EXPECT_EQ(f.conn().dir[1].snd_nxt, 5368u);
    f.wait_us(400 * kMsUs);
    f.client(ack | psh, 1061, 5368, 70);
    EXPECT_EQ(f.server(rst, 5368, 0), Cause::unclassified);  // stale, or a lost FIN: unknown
}

TEST(Degrade, AHoleFollowedByNewDataIsNoFin) {
    Flow f;
    f.handshake();
    f.client(ack | psh, 1001, 5001, 60);
    f.lost(Flow::kS);
    f.client(ack, 1061, 5368);
    f.server(ack | psh, 5368, 1061, 10);
    EXPECT_FALSE(f.conn().dir[1].hole);
    f.client(ack, 1061, 5378);
    f.wait_us(400 * kMsUs);
    f.client(ack | psh, 1061, 5378, 70);
    EXPECT_EQ(f.server(rst, 5378, 0), Cause::stale_connection);
}

// A retransmission run shortened by lost frames: not the confident stale_connection it used to
// read as; a full run is still retransmission_timeout, no run and nothing unacknowledged stale.
TEST(Degrade, AShortenedRetransmissionRunIsNoStaleConnection) {
    for (int seen = 0; seen <= 4; ++seen) {
        Flow f;
        f.handshake();
        f.client(ack | psh, 1001, 5001, 60);
        f.server(ack | psh, 5001, 1061, 367);
        f.client(ack, 1061, 5368);
        f.client(ack | psh, 1061, 5368, 59);  // into a blackhole
        for (int r = 0; r < 4; ++r) {
            f.wait_us(200 * kMsUs);
            if (r < seen)
                f.client(ack | psh, 1061, 5368, 59);
            else
                f.lost(Flow::kC);
        }
        f.wait_us(600 * kMsUs);
        f.server(ack | psh, 5368, 1061, 20);
        const Cause want = seen >= 3 ? Cause::retransmission_timeout : Cause::unclassified;
        EXPECT_EQ(f.client(rst, 1061, 0), want) << seen << " retransmissions seen";
    }
}

// The SYN-ACK was lost: the client's ACK says the handshake happened; the server's first data is
// no "SYN answered by a bare ACK" (invalid_segment before).
TEST(Degrade, AClientAckImpliesTheSynAckTheCaptureMissed) {
    Flow f;
    f.client(syn, 1000, 0);
    f.lost(Flow::kS);
    f.client(ack, 1001, 5001);
    EXPECT_TRUE(f.conn().synack);
    EXPECT_TRUE(f.conn().established);
    EXPECT_FALSE(f.conn().syn_answered_by_ack);
    f.client(ack | psh, 1001, 5001, 64);
    f.server(ack | psh, 5001, 1065, 367);
    EXPECT_FALSE(f.conn().dir[1].hole);
    EXPECT_EQ(f.client(rst | ack, 1065, 5368), Cause::unread_data_close);
}

// Keepalive probes are known by their shape (seq = snd_nxt - 1, no byte) even when the peer's
// ACK of the last data was lost.
TEST(Degrade, KeepaliveProbesWithoutThePeersLastAck) {
    Flow f;
    f.handshake();
    f.client(ack | psh, 1001, 5001, 64);
    f.server(ack | psh, 5001, 1065, 367);
    f.lost(Flow::kC);  // the client's ACK of 5368
    f.wait_us(1000 * kMsUs);
    f.server(ack, 5367, 1065);
    f.wait_us(1000 * kMsUs);
    f.server(ack, 5367, 1065);
    f.wait_us(1000 * kMsUs);
    EXPECT_EQ(f.server(rst | ack, 5368, 1065), Cause::keepalive_timeout);
}

// Both probes lost: the server's IPv4 ID moved on by 3 in the silence before its abort: it sent
// what the capture missed. No linger_abort.
TEST(Degrade, AnAbortAfterUnseenSegmentsOfItsSenderIsNoPlainLinger) {
    Flow f;
    f.handshake();
    f.client(ack | psh, 1001, 5001, 64);
    f.server(ack | psh, 5001, 1065, 367);
    f.client(ack, 1065, 5368);
    f.wait_us(1000 * kMsUs);
    f.lost(Flow::kS);
    f.wait_us(1000 * kMsUs);
    f.lost(Flow::kS);
    f.wait_us(1000 * kMsUs);
    EXPECT_EQ(f.server(rst | ack, 5368, 1065), Cause::unclassified);

    Flow w;  // a host-wide IP ID counter (Windows): its steps say nothing about this flow
    w.handshake();
    w.client(ack | psh, 1001, 5001, 64);
    for (int i = 0; i < 9; ++i) w.lost(Flow::kS);  // the host's packets of other flows
    w.server(ack | psh, 5001, 1065, 367);
    w.client(ack, 1065, 5368);
    w.wait_us(3000 * kMsUs);
    w.lost(Flow::kS);
    w.lost(Flow::kS);
    EXPECT_FALSE(w.conn().ids_consecutive & 2);
    EXPECT_EQ(w.server(rst | ack, 5368, 1065), Cause::linger_abort);

    Flow l;  // its own counter, one segment lost early (the handshake's ACK): still its own
    l.handshake();
    l.lost(Flow::kS);
    l.server(ack | psh, 5001, 1001, 367);
    l.client(ack, 1001, 5368);
    l.wait_us(1000 * kMsUs);
    l.lost(Flow::kS);
    l.wait_us(1000 * kMsUs);
    l.lost(Flow::kS);
    l.wait_us(1000 * kMsUs);
    EXPECT_TRUE(l.conn().ids_consecutive & 2);
    EXPECT_EQ(l.server(rst | ack, 5368, 1001), Cause::unclassified);

    Flow q;  // small steps again and again: a quiet host's shared counter, not lost segments
    q.handshake();
    q.lost(Flow::kS);
    q.server(ack | psh, 5001, 1001, 367);
    q.lost(Flow::kS);
    q.server(ack | psh, 5368, 1001, 10);
    EXPECT_FALSE(q.conn().ids_consecutive & 2);

    Flow g;  // the same abort with nothing missed: a plain abortive close
    g.handshake();
    g.client(ack | psh, 1001, 5001, 64);
    g.server(ack | psh, 5001, 1065, 367);
    g.client(ack, 1065, 5368);
    g.wait_us(3000 * kMsUs);
    EXPECT_EQ(g.server(rst | ack, 5368, 1065), Cause::linger_abort);
}

// Listen overflow whose triggering ACK (the answer to the retransmitted SYN-ACK) was lost.
TEST(Degrade, ListenOverflowWithTheDuplicateAckLost) {
    Flow f;
    f.handshake();
    f.wait_us(1000 * kMsUs);
    f.server(syn | ack, 5000, 1001);  // SYN_RECV never took the first ACK
    f.lost(Flow::kC);
    f.wait_us(20);
    EXPECT_EQ(f.server(rst, 5001, 0), Cause::listen_overflow);
}

// The client's data after the server's FIN was lost: the server's bare RST came 3 ms after the
// client's last segment seen, far later than the server answers (its SYN-ACK took 30 us). Not
// an answer to that segment: no orphan_abort. Promptly after it: orphan_abort.
TEST(Degrade, ABareRstLongAfterThePeersLastSegmentAnswersAnUnseenOne) {
    for (const bool prompt : {true, false}) {
        Flow f;
        f.handshake();
        f.client(ack | psh, 1001, 5001, 60);
        f.server(ack | psh, 5001, 1061, 367);
        f.server(ack | fin, 5368, 1061);
        f.wait_us(40 * kMsUs);
        f.client(ack, 1061, 5369);
        if (!prompt) {
            f.wait_us(3 * kMsUs);
            f.lost(Flow::kC);  // data after the FIN
        }
        f.wait_us(40);
        EXPECT_EQ(f.server(rst, 5369, 0), prompt ? Cause::orphan_abort : Cause::unclassified);
    }
}

// An injected RST when the real server's answer after it was lost: the server had acknowledged
// the client's request before the RST at another TTL, so nothing was left to refuse for it: no
// middlebox_reject, no label until the real server is heard.
TEST(Degrade, ATtlShiftedRstAfterTheEndpointAckedEverythingIsNoRefusal) {
    Flow f;
    f.handshake();
    f.client(ack | psh, 1001, 5001, 70);
    f.server(ack, 5001, 1071);
    EXPECT_EQ(f.forged_server(rst, 5001, 0), Cause::unclassified);
    f.server(ack, 5001, 1071);  // the real server, heard again at its own TTL: a race
    EXPECT_EQ(f.episode(), Cause::injected);

    Flow g;  // a refusal of the request itself: the server never acknowledged it
    g.handshake();
    g.client(ack | psh, 1001, 5001, 70);
    EXPECT_EQ(g.forged_server(rst, 5001, 0), Cause::middlebox_reject);
}

// A server SYN-ACK retransmission after a bare RST that answered nothing of the handshake is no
// handshake race (the first SYN-ACK lost): only an RST+ACK to the client's SYN makes one.
TEST(Degrade, ASynAckAfterAnUnrelatedRstIsNoHandshakeRace) {
    Flow f;
    f.client(syn, 1000, 0);
    f.lost(Flow::kS);                     // the SYN-ACK
    f.client(ack, 1001, 777777);          // a bogus ACK (crafted)
    EXPECT_NE(f.server(rst, 777777, 0), Cause::injected);
    f.wait_us(1000 * kMsUs);
    f.server(syn | ack, 5000, 1001);      // its SYN-ACK retransmission
    EXPECT_NE(f.episode(), Cause::injected);
}

// Segments of a new connection on the 4-tuple whose SYN the capture missed are no race evidence
// for the old connection's RST: their sequence numbers lie far beyond its window.
TEST(Degrade, ANewIncarnationIsNoRaceEvidence) {
    Flow f;
    f.handshake();
    f.client(ack | psh, 1001, 5001, 60);
    f.server(ack | psh, 5001, 1061, 367);
    f.client(ack, 1061, 5368);
    EXPECT_EQ(f.client(rst | ack, 1061, 5368), Cause::unread_data_close);
    f.lost(Flow::kC);                             // its new SYN
    f.lost(Flow::kS);                             // the SYN-ACK
    f.client(ack, 1061 + 140000, 5368 + 140000);  // ISNs 140 k on, as Linux picks them
    f.client(ack | psh, 1061 + 140000, 5368 + 140000, 61);
    EXPECT_EQ(f.episode(), Cause::unread_data_close);
}

TEST(Degrade, OneSidedFlows) {
    Flow f;  // the server's side never seen
    f.client(syn, 1000, 0);
    f.lost(Flow::kS);
    f.client(ack, 1001, 5001);
    f.client(ack | psh, 1001, 5001, 10);
    EXPECT_FALSE(f.conn().one_sided());  // 3 segments
    f.client(ack | psh, 1011, 5001, 10);
    EXPECT_TRUE(f.conn().one_sided());
    // ... and its RSTs get no cause that rests on the silent side.
    EXPECT_EQ(f.client(rst | ack, 1021, 5001), Cause::unclassified);

    Flow syns;  // an unanswered handshake is not one-sided
    for (int i = 0; i < 5; ++i) syns.client(syn, 1000, 0);
    EXPECT_FALSE(syns.conn().one_sided());

    Flow both;
    both.handshake();
    for (int i = 0; i < 6; ++i) both.client(ack | psh, 1001 + 10 * i, 5001, 10);
    EXPECT_FALSE(both.conn().one_sided());
}

// The event says which evidence the capture lacked.
TEST(Degrade, EventsNameTheMissingEvidence) {
    const auto bit = [](events::Missing m) { return 1u << static_cast<unsigned>(m); };
    const auto missing = [](const tcp::Connection& c, tcp::Side side) {
        events::RstEvent e;
        classify::Verdict v;
        v.sender = classify::Sender::client;
        v.validity = classify::Validity::exact;
        events::fill_evidence(e, &c, side, 0, v);
        return e.missing;
    };
    Flow one_sided;
    one_sided.client(syn, 1000, 0);
    one_sided.client(ack, 1001, 5001);  // the SYN-ACK missed: the server's state is inferred
    EXPECT_EQ(missing(one_sided.conn(), 0),
              bit(events::Missing::peer) | bit(events::Missing::capture_loss));

    Flow lossy;
    lossy.handshake();
    lossy.client(ack | psh, 1001, 5001, 60);
    lossy.lost(Flow::kS);
    lossy.client(ack, 1061, 5368);
    EXPECT_EQ(missing(lossy.conn(), 1), bit(events::Missing::capture_loss));

    Flow clean;
    clean.handshake();
    EXPECT_EQ(missing(clean.conn(), 0), 0u);
}

// The real server's answer after a forged RST was lost on its way to the monitor, but the client
// answered it: a bare RST at the client's own snd_nxt, which only a segment acknowledging all the
// client sent (the trigger included) can draw. A middlebox's refusal leaves the trigger unacked.
TEST(Degrade, TheReceiversAnswerToTheRealSenderIsRaceEvidence) {
    Flow f;
    f.handshake();
    f.client(ack | psh, 1001, 5001, 70);  // the trigger
    EXPECT_EQ(f.forged_server(rst, 5001, 0), Cause::middlebox_reject);
    f.lost(Flow::kS);                     // the real server's ACK of 1071
    f.client(rst, 1071, 0);               // the client, reset, answers it
    EXPECT_EQ(f.episode(), Cause::injected);

    Flow g;  // a refusal: the server never got the trigger; it later speaks acknowledging less
    g.handshake();
    g.client(ack | psh, 1001, 5001, 70);
    EXPECT_EQ(g.forged_server(rst, 5001, 0), Cause::middlebox_reject);
    g.lost(Flow::kS);                     // a server segment acknowledging 1001 only
    g.client(rst, 1001, 0);
    EXPECT_EQ(g.episode(), Cause::middlebox_reject);
}

// The client refused a SYN-ACK the capture lost (bad ack or timestamp: a crafted one), and the
// retransmitted SYN was lost too: its connection lives on and the server's real SYN-ACK, the
// client's ACK and data follow. That is no race evidence (it was read as injected).
TEST(Degrade, AClientRefusingAnUnseenSynAckLivesOn) {
    Flow f;
    f.client(syn, 1000, 0);
    f.wait_us(10000);
    f.client_kernel_rst(1001);
    f.wait_us(1000000);
    f.server(syn | ack, 5000, 1001);
    f.client(ack, 1001, 5001);
    f.client(ack | psh, 1001, 5001, 50);
    f.server(ack, 5001, 1051);
    EXPECT_NE(f.episode(), Cause::injected);
}

