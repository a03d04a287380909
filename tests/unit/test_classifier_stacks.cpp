// Other TCP stacks must not read as attacks: how BSD, Windows and embedded stacks close and abort,
// rebuilt from the public captures (tests/corpus/STACKS.md), against the race patterns that must
// still read as `injected` (Weaver, Sommer, Paxson, NDSS 2009).
#include <gtest/gtest.h>

#include "flow/flow_key.hpp"
#include "packet_builder.hpp"

#include "classify/classifier.hpp"

using namespace rstmon;
using namespace rstmon::test;
using namespace rstmon::packet::tcpflag;
using classify::Cause;
using classify::Validity;

namespace {

// Client 10.0.0.1:40000 <-> server 10.0.0.2:80 (or IPv6) seen on a client-side SPAN: client TTL
// 64, server 63. Each side numbers its IPv4 packets from its own counter, as most stacks do.
// Segments go through the tracker, the classifier and the RST episode in the order
// lib/pipeline/worker.cpp uses: an RST is classified, then opens the episode or is weighed as
// race evidence inside the open one, then noted; any other segment is weighed as race evidence
// before it updates the connection.
class Episodes {
public:
    explicit Episodes(bool v6 = false) {
        if (v6) {
            spec_[kC].src = "fd00::1";
            spec_[kC].dst = "fd00::2";
        }
        spec_[kS].src = spec_[kC].dst;
        spec_[kS].dst = spec_[kC].src;
        spec_[kS].sport = spec_[kC].dport;
        spec_[kS].dport = spec_[kC].sport;
        spec_[kS].ttl = 63;
        spec_[kC].ip_id = 0x1000;
        spec_[kS].ip_id = 0x5000;
    }

    classify::Verdict client(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
        return feed(kC, flags, seq, ack, payload);
    }
    classify::Verdict server(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload = 0) {
        return feed(kS, flags, seq, ack, payload);
    }
    // Something else on the path speaking for the server: its own TTL and IP ID.
    classify::Verdict forged_server(uint8_t flags, uint32_t seq, uint32_t ack, uint8_t ttl,
                                    uint16_t ip_id) {
        SegSpec s = spec_[kS];
        s.ttl = ttl;
        s.ip_id = ip_id;
        return feed_spec(s, kS, flags, seq, ack, 0);
    }
    void handshake() {  // client ISN 1000, server ISN 5000
        client(syn, 1000, 0);
        server(syn | ack, 5000, 1001);
        client(ack, 1001, 5001);
    }
    void wait(tcp::Ms ms) { now_ += ms; }
    void set_server_ttl(uint8_t ttl) { spec_[kS].ttl = ttl; }  // e.g. a route change
    // The cause every RST of the open episode is counted with when it ends.
    Cause episode() const { return static_cast<Cause>(conn_.episode.cause); }
    const tcp::Connection& conn() const { return conn_; }

private:
    static constexpr int kC = 0, kS = 1;

    classify::Verdict feed(int who, uint8_t flags, uint32_t seq, uint32_t ack, size_t payload) {
        const classify::Verdict v = feed_spec(spec_[who], who, flags, seq, ack, payload);
        ++spec_[who].ip_id;
        return v;
    }

    classify::Verdict feed_spec(SegSpec s, int, uint8_t flags, uint32_t seq, uint32_t ack,
                                size_t payload) {
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
        tcp::Episode& e = conn_.episode;
        const bool in_episode = e.active && now_ < e.end_ms;
        classify::Verdict v;
        if (seg.has(rst)) {
            v = classify::classify(&conn_, side, seg, th_);
            if (in_episode) {
                e.cause = static_cast<uint8_t>(classify::on_episode_segment(
                    conn_, side, seg, static_cast<Cause>(e.cause)));
            } else {
                e = tcp::Episode{};
                e.active = 1;
                e.end_ms = now_ + static_cast<tcp::Ms>(th_.linger_ns / 1000000ull);
                e.seq = seg.seq;
                e.side = side;
                e.cause = static_cast<uint8_t>(v.cause);
            }
            conn_.note_rst(seg, side);
            return v;
        }
        if (in_episode)
            e.cause = static_cast<uint8_t>(classify::on_episode_segment(
                conn_, side, seg, static_cast<Cause>(e.cause)));
        conn_.update(seg, side, now_);
        return v;
    }

    SegSpec spec_[2];
    tcp::Connection conn_;
    classify::Thresholds th_;
    tcp::Ms now_ = 0;
    bool started_ = false;
};

}  // namespace

// ---- Benign closes of other stacks: never `injected` ------------------------------------------

// Embedded UPnP client (sv_output-eve-ftp-data): request, then FIN, while the server's reply and
// FIN are on their way (the client's FIN acknowledges none of it). The reply arrives after the
// close: RST at the FIN's seq (= the reply's ack), then RST at seq + 1 answering the server's ACK
// of the FIN. One RST per later peer segment.
TEST(OtherStacks, EmbeddedCloseAnswersEachLaterSegmentWithAnRst) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 722);
    c.server(ack | psh | fin, 5001, 1723, 125);
    c.client(ack | fin, 1723, 5001);  // crossed the reply
    c.server(ack, 5127, 1724);
    const auto first = c.client(rst, 1723, 0);
    EXPECT_EQ(first.cause, Cause::data_after_close);
    EXPECT_EQ(first.validity, Validity::out_of_window);  // RFC 5961 would challenge it
    c.client(rst, 1724, 0);
    EXPECT_EQ(c.episode(), Cause::data_after_close);
}

// BSD (zeek_tls_ssl.v3): data and FIN sent, then each later server segment answered by an RST
// whose seq is that segment's ack: 5990, 5990 again, then 6014 once the server acknowledged the
// FIN. The seq moves by the client's own data, never past what it sent.
TEST(OtherStacks, BsdRstSeqFollowsThePeersAck) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 300);
    c.client(ack | psh, 1101, 5301, 23);
    c.client(ack | fin, 1124, 5301);
    c.server(ack | psh, 5301, 1101, 23);  // its ack predates the client's last data
    EXPECT_EQ(c.client(rst, 1101, 0).cause, Cause::data_after_close);
    c.server(ack | fin, 5324, 1101);
    c.client(rst, 1101, 0);
    c.server(ack, 5325, 1125);
    c.client(rst, 1125, 0);
    EXPECT_EQ(c.episode(), Cause::data_after_close);
}

// Windows (sv_smtp-bug-5989): the client's FIN, then the server's reply: RST+ACK at snd_nxt; the
// server's FIN (acknowledging only up to the client's FIN) gets a bare RST at seq - 1.
TEST(OtherStacks, WindowsRstAckThenBareRstAtSeqMinusOne) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 6);
    c.client(ack | fin, 1007, 5001);
    c.server(ack | psh, 5001, 1007, 32);
    const auto first = c.client(rst | ack, 1008, 5033);
    EXPECT_EQ(first.cause, Cause::data_after_close);
    EXPECT_EQ(first.validity, Validity::exact);
    c.server(ack | fin, 5033, 1007);
    const auto second = c.client(rst, 1007, 0);
    EXPECT_EQ(second.validity, Validity::out_of_window);
    EXPECT_EQ(c.episode(), Cause::data_after_close);
}

// Windows VNC client (zeek_rfb_vnc-scanner): its FIN crossed 45 bytes of server data; RST+ACK at
// snd_nxt, then a bare RST at seq - 1 for each server segment still arriving.
TEST(OtherStacks, WindowsBareRstsAtSeqMinusOneForEachLateSegment) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 29);
    c.server(ack | psh, 5001, 1030, 4);
    c.server(ack | psh, 5005, 1030, 41);
    c.client(ack | fin, 1030, 5005);  // acknowledges the first 4 bytes only
    EXPECT_EQ(c.client(rst | ack, 1031, 5046).cause, Cause::data_after_close);
    c.server(ack | fin, 5046, 1030);
    c.client(rst, 1030, 0);
    c.client(rst, 1030, 0);
    EXPECT_EQ(c.episode(), Cause::data_after_close);
}

// A FIN that acknowledged everything the peer sent: nothing crossed it, so the RST that follows
// without new data is still an orphan abort, not data after close.
TEST(OtherStacks, FinAcknowledgingAllPeerDataLeavesOrphanAbort) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 300);
    c.client(ack | fin, 1101, 5301);
    c.server(ack, 5301, 1102);
    EXPECT_EQ(c.client(rst | ack, 1102, 5301).cause, Cause::orphan_abort);
}

// The peer re-sends data the closed side never acknowledged (zeek_tls_ssl.v3, port 58870): it
// reaches that side after its close just the same.
TEST(OtherStacks, RetransmittedDataAfterFinIsDataAfterClose) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 23);
    c.client(ack | fin, 1024, 5001);
    c.server(ack, 5024, 1025);  // its 23-byte alert went by unseen (and unacknowledged)
    c.wait(3000);
    c.server(ack | psh, 5001, 1025, 23);  // re-sent: no new sequence space for the monitor
    EXPECT_EQ(c.client(rst, 1025, 0).cause, Cause::data_after_close);
}

// RFC 793's ABORT: <SEQ=SND.NXT><CTL=RST>, no ACK bit (Windows, sv_ssl_version_negated and
// sv_rdp-protocol). The same abortive closes as Linux's RST+ACK.
TEST(OtherStacks, BareRstAtSndNxtIsAnAbortiveClose) {
    {
        Episodes c;  // answered request, then the abort: linger_abort
        c.handshake();
        c.client(ack | psh, 1001, 5001, 100);
        c.server(ack | psh | fin, 5001, 1101, 300);
        c.client(ack, 1101, 5302);
        c.client(ack | psh, 1101, 5302, 37);  // TLS alert
        const auto v = c.client(rst, 1138, 0);
        EXPECT_EQ(v.cause, Cause::linger_abort);
        EXPECT_EQ(v.validity, Validity::exact);
    }
    {
        Episodes c;  // request never answered: unread_data_close
        c.handshake();
        c.client(ack | psh, 1001, 5001, 100);
        c.server(ack, 5001, 1101);
        EXPECT_EQ(c.server(rst, 5001, 0).cause, Cause::unread_data_close);
    }
}

// BSD and Windows give up retransmitting with an RST+ACK at snd_nxt (zeek_http_206_example_b).
TEST(OtherStacks, RstAfterRetransmissionRunIsRetransmissionTimeout) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack, 5001, 1101, 1400);
    c.server(ack, 6401, 1101, 1400);
    for (int i = 0; i < 4; ++i) {
        c.wait(15000);
        c.server(ack, 5001, 1101, 1400);
    }
    EXPECT_EQ(c.server(rst | ack, 7801, 1101).cause, Cause::retransmission_timeout);
}

// An RST bit on a segment whose TTL and IP ID continue the sender's own (sv_bug-76: RST+PSH with
// in-sequence data, the server keeps sending): one IP stack, no race.
TEST(OtherStacks, RstFromTheSendersOwnStackIsNoRace) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 120);
    c.server(ack, 5001, 1121, 1391);
    c.server(rst | psh, 6392, 1121, 1391);
    c.server(ack | psh, 7783, 1121, 1391);
    EXPECT_NE(c.episode(), Cause::injected);
}

// What a live endpoint may still send after its own RST without it being a race: a pure ACK at
// the RST's own TTL (sent before it, reordered by the capture), a FIN alone, data below the RST.
TEST(OtherStacks, ReorderedOrOldSegmentsAfterAnRstAreNoRace) {
    Episodes c(true);  // IPv6: no IP ID to tie the RST to the server's stack
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 300);
    EXPECT_EQ(c.server(rst | ack, 5301, 1101).cause, Cause::linger_abort);
    c.server(ack, 5301, 1101);
    c.server(ack | fin, 5301, 1101);
    c.server(ack | psh, 5001, 1101, 300);  // a copy of old data
    EXPECT_EQ(c.episode(), Cause::linger_abort);
}

// A route change just before the abort: the RST and everything after it one hop further. The
// RST's TTL differs from the server's earlier segments, but not from its later ones.
TEST(OtherStacks, RouteChangeMovesTheRstAndLaterSegmentsAlike) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 300);
    c.set_server_ttl(62);
    c.server(rst | ack, 5301, 1101);
    c.server(ack, 5301, 1101);
    c.server(ack, 5301, 1101);
    // The TTL step alone reads as a middlebox's RST (thresholds.ttl_tolerance absorbs such
    // steps); what matters here is that it never becomes a race.
    EXPECT_EQ(c.episode(), Cause::middlebox_reject);
}

// ---- Real races: still `injected` ------------------------------------------------------------

// An injector at the server's own hop distance (no TTL hint): the real server's answer arrives
// after the forged RST, new data at the RST's seq.
TEST(Injected, DataFromTheSenderAtOrBeyondItsRst) {
    for (bool v6 : {false, true}) {
        Episodes c(v6);
        c.handshake();
        c.client(ack | psh, 1001, 5001, 100);
        c.server(ack, 5001, 1101);
        c.forged_server(rst | ack, 5001, 1101, 63, 0x9999);  // random IP ID
        EXPECT_NE(c.episode(), Cause::injected);
        c.server(ack | psh, 5001, 1101, 300);
        EXPECT_EQ(c.episode(), Cause::injected) << (v6 ? "IPv6" : "IPv4");
    }
}

// A forged RST at another TTL, then the endpoint's own ACK at its usual TTL: two senders.
TEST(Injected, EndpointAtItsOwnTtlAfterAnRstFromElsewhere) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    EXPECT_EQ(c.forged_server(rst, 5001, 0, 64, 0x1234).cause, Cause::middlebox_reject);
    c.server(ack, 5001, 1101);  // the real server's (challenge) ACK
    EXPECT_EQ(c.episode(), Cause::injected);
}

// GFW style burst: base, +1460, +4380 within microseconds, at the server's own TTL.
TEST(Injected, RstBurstWithSegmentSizedSeqJumps) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.forged_server(rst, 5001, 0, 63, 0x0101);
    EXPECT_NE(c.episode(), Cause::injected);
    c.forged_server(rst, 5001 + 1460, 0, 63, 0x2202);
    EXPECT_EQ(c.episode(), Cause::injected);
    c.forged_server(rst, 5001 + 4380, 0, 63, 0x3303);
    EXPECT_EQ(c.episode(), Cause::injected);
}

// A second RST inside the sender's own sequence space is never a jump, one past it neither.
TEST(Injected, RstAtSeqPlusMinusOneIsNoJump) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 300);
    c.server(rst | ack, 5301, 1101);
    c.server(rst, 5300, 0);
    c.server(rst, 5302, 0);
    EXPECT_EQ(c.episode(), Cause::linger_abort);
    c.server(rst, 5303, 0);  // two past anything the server could use
    EXPECT_EQ(c.episode(), Cause::injected);
}

// The handshake-stage race: an RST refusing the client's SYN, then the server's genuine SYN-ACK.
TEST(Injected, RstToSynThenGenuineSynAck) {
    for (uint8_t ttl : {64, 63}) {
        Episodes c;
        c.client(syn, 1000, 0);
        // Nothing from the server yet to compare the TTL with: it reads as a refusal ...
        EXPECT_EQ(c.forged_server(rst | ack, 0, 1001, ttl, 0x4242).cause, Cause::port_closed);
        c.server(syn | ack, 5000, 1001);  // ... until the server answers the SYN after all
        EXPECT_EQ(c.episode(), Cause::injected) << "TTL " << int(ttl);
    }
}

// The client's own answers to the forged RST are aftermath, not evidence either way.
TEST(Injected, PeerSegmentsAreAftermath) {
    Episodes c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    EXPECT_EQ(c.forged_server(rst | ack, 5001, 1101, 64, 0x7777).cause,
              Cause::middlebox_reject);
    c.client(ack | psh, 1101, 5001, 50);  // at the client's own TTL, after an RST at another
    c.client(rst, 1151, 0);
    EXPECT_EQ(c.episode(), Cause::middlebox_reject);
}
