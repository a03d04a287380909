#include <gtest/gtest.h>

#include "conversation.hpp"

using namespace rstmon;
using namespace rstmon::test;
using namespace rstmon::packet::tcpflag;
using classify::Cause;
using classify::Sender;
using classify::Stage;
using classify::Validity;

TEST(Taxonomy, NamesAreUniqueAndRoundTrip) {
    EXPECT_EQ(classify::kCauseCount, 18u);
    for (size_t i = 0; i < classify::kCauseCount; ++i) {
        const auto c = static_cast<Cause>(i);
        ASSERT_EQ(classify::cause_from_name(classify::name(c)), c);
        EXPECT_FALSE(classify::kCauses[i].help.empty());
    }
    EXPECT_FALSE(classify::cause_from_name("nope").has_value());
    EXPECT_EQ(classify::name(Stage::post_psh), "post_psh");
    EXPECT_EQ(classify::name(Validity::out_of_window), "out_of_window");
}

TEST(Classifier, PortClosed) {
    for (bool v6 : {false, true}) {
        Conversation c(v6);
        c.client(syn, 1000, 0);
        const auto v = c.server(rst | ack, 0, 1001);
        ASSERT_TRUE(v);
        EXPECT_EQ(v->cause, Cause::port_closed);
        EXPECT_EQ(v->stage, Stage::post_syn);
        EXPECT_EQ(v->sender, Sender::server);
        EXPECT_EQ(v->validity, Validity::exact);
    }
}

TEST(Classifier, RstWithWrongAckToSynIsNotPortClosed) {
    Conversation c;
    c.client(syn, 1000, 0);
    const auto v = c.server(rst | ack, 0, 999);
    EXPECT_NE(v->cause, Cause::port_closed);
    EXPECT_EQ(v->validity, Validity::out_of_window);
}

TEST(Classifier, LingerAbortAfterAnsweredRequest) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 300);
    c.client(ack, 1101, 5301);
    const auto v = c.server(rst | ack, 5301, 1101);
    EXPECT_EQ(v->cause, Cause::linger_abort);
    EXPECT_EQ(v->stage, Stage::later_in_flow);
    EXPECT_EQ(v->sender, Sender::server);
    EXPECT_EQ(v->validity, Validity::exact);
}

TEST(Classifier, UnreadDataCloseAfterUnansweredRequest) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 300);
    c.client(ack | psh, 1101, 5301, 100);  // pipelined second request, never read
    const auto v = c.server(rst | ack, 5301, 1201);
    EXPECT_EQ(v->cause, Cause::unread_data_close);
    EXPECT_EQ(v->sender, Sender::server);
}

TEST(Classifier, StagesFollowTheConnection) {
    {
        Conversation c;
        c.client(syn, 1000, 0);
        c.server(syn | ack, 5000, 1001);
        EXPECT_EQ(c.client(rst, 1001, 0)->stage, Stage::post_synack);
    }
    {
        Conversation c;
        c.handshake();
        EXPECT_EQ(c.client(rst | ack, 1001, 5001)->stage, Stage::post_ack);
    }
    {
        Conversation c;
        c.handshake();
        c.client(ack | psh, 1001, 5001, 10);
        EXPECT_EQ(c.server(rst, 5001, 0)->stage, Stage::post_psh);
    }
    {
        Conversation c;
        c.handshake();
        c.client(fin | ack, 1001, 5001);
        EXPECT_EQ(c.server(rst, 5001, 0)->stage, Stage::closing);
    }
}

TEST(Classifier, NoStateWhenStartNotSeen) {
    Conversation c;
    c.client(ack | psh, 1001, 5001, 10);
    const auto v = c.server(rst | ack, 5001, 1011);
    EXPECT_EQ(v->cause, Cause::no_state);
    EXPECT_EQ(v->stage, Stage::no_state);
    EXPECT_EQ(v->sender, Sender::unknown);
    // Sequence state exists from the client's ack: the RST is judged all the same.
    EXPECT_EQ(v->validity, Validity::exact);
}

TEST(Classifier, LoneRstIsNoStateUnverifiable) {
    Conversation c;
    const auto v = c.client(rst, 1, 0);
    ASSERT_FALSE(c.tracked());
    EXPECT_EQ(v->cause, Cause::no_state);
    EXPECT_EQ(v->validity, Validity::unverifiable);
}

TEST(Classifier, ValidityInAndOutOfWindow) {
    Conversation c;
    c.handshake();  // server window 65535, no scaling
    EXPECT_EQ(c.client(rst, 1001 + 1000, 0)->validity, Validity::in_window);
    EXPECT_EQ(c.client(rst, 1001 + 70000, 0)->validity, Validity::out_of_window);
    EXPECT_EQ(c.client(rst, 1000, 0)->validity, Validity::out_of_window);  // behind rcv_nxt
}

TEST(Classifier, WindowScaleAppliesOnlyWhenBothOffer) {
    Conversation c;
    c.c2s().options = {3, 3, 4};  // client offers wscale 4
    c.s2c().options = {3, 3, 4};  // server offers wscale 4
    c.handshake();
    // A SYN's window is never scaled (RFC 7323): the SYN-ACK's 65535 is 65535 bytes.
    EXPECT_EQ(c.client(rst, 1001 + 500000, 0)->validity, Validity::out_of_window);
    c.server(ack, 5001, 1001);
    // 65535 << 4 = 1048560: 500000 ahead is inside the scaled window.
    EXPECT_EQ(c.client(rst, 1001 + 500000, 0)->validity, Validity::in_window);
    Conversation d;
    d.c2s().options = {3, 3, 4};  // only the client offers: no scaling
    d.handshake();
    d.server(ack, 5001, 1001);
    EXPECT_EQ(d.client(rst, 1001 + 500000, 0)->validity, Validity::out_of_window);
}

// One test per cause: the passive signature of CAUSES.md, built segment by segment.

TEST(Cause, MiddleboxRejectAtSyn) {
    Conversation c;
    c.set_host_ttl(63);  // the server's packets arrive with 63 in other flows
    c.client(syn, 1000, 0);
    const auto v = c.server(rst | ack, 0, 1001, 0, /*ttl=*/64);  // a firewall one hop closer
    EXPECT_EQ(v->cause, Cause::middlebox_reject);
    EXPECT_EQ(v->stage, Stage::post_syn);
}

TEST(Cause, PortClosedWhenTtlMatchesTheHost) {
    Conversation c;
    c.set_host_ttl(63);
    c.client(syn, 1000, 0);
    EXPECT_EQ(c.server(rst | ack, 0, 1001, 0, 63)->cause, Cause::port_closed);
}

TEST(Cause, MiddleboxRejectMidFlow) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 200);
    c.client(ack | psh, 1101, 5201, 100);  // carries the forbidden word
    const auto v = c.server(rst | ack, 5201, 1201, 0, 64);
    EXPECT_EQ(v->cause, Cause::middlebox_reject);
}

TEST(Cause, IdleTimeoutFromAMiddlebox) {
    Conversation c;
    c.thresholds().idle_threshold_ns = 3000000000ull;  // 3 s
    c.handshake();
    c.client(ack | psh, 1001, 5001, 10);
    c.server(ack | psh, 5001, 1011, 10);
    c.wait(5000);
    c.client(ack | psh, 1011, 5011, 10);  // first packet after the idle gap
    const auto v = c.server(rst, 5011, 0, 0, 64);  // conntrack forgot: router's reset
    EXPECT_EQ(v->cause, Cause::idle_timeout);
}

TEST(Cause, ConnectTimeoutAfterLateSynAck) {
    Conversation c;
    c.client(syn, 1000, 0);
    c.wait(1000);
    c.client(syn, 1000, 0);  // SYN retransmitted
    c.wait(2000);
    c.server(syn | ack, 5000, 1001);  // finally, after the client gave up
    const auto v = c.client(rst, 1001, 0);
    EXPECT_EQ(v->cause, Cause::connect_timeout);
    EXPECT_EQ(v->stage, Stage::post_synack);
    EXPECT_EQ(v->sender, Sender::client);
}

TEST(Cause, ConnectTimeoutFromLatenessAlone) {
    Conversation c;
    c.client(syn, 1000, 0);
    c.wait(1500);
    c.server(syn | ack, 5000, 1001);
    EXPECT_EQ(c.client(rst, 1001, 0)->cause, Cause::connect_timeout);
}

TEST(Cause, ScanProbe) {
    Conversation c;
    c.client(syn, 1000, 0);
    c.wait(1);
    c.server(syn | ack, 5000, 1001);
    EXPECT_EQ(c.client(rst, 1001, 0)->cause, Cause::scan_probe);
}

TEST(Cause, ListenOverflow) {
    Conversation c;
    c.handshake();
    const auto v = c.server(rst, 5001, 0);  // bare RST answering the handshake's ACK
    EXPECT_EQ(v->cause, Cause::listen_overflow);
    EXPECT_EQ(v->stage, Stage::post_ack);
}

TEST(Cause, DataAfterClose) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh | fin, 5001, 1101, 200);  // answer and close
    c.client(ack | psh, 1101, 5202, 50);         // the client writes again
    const auto v = c.server(rst, 5202, 0);
    EXPECT_EQ(v->cause, Cause::data_after_close);
    EXPECT_EQ(v->stage, Stage::closing);
}

TEST(Cause, OrphanAbort) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh | fin, 5001, 1101, 200);
    c.client(ack, 1101, 5202);                    // FIN acknowledged, nothing more sent
    EXPECT_EQ(c.server(rst | ack, 5202, 1101)->cause, Cause::orphan_abort);
}

TEST(Cause, KeepaliveTimeout) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 10);
    c.server(ack, 5001, 1011);
    c.wait(1000);
    c.client(ack, 1010, 5001);  // probe: seq = snd_una - 1
    c.wait(1000);
    c.client(ack, 1010, 5001);  // unanswered
    const auto v = c.client(rst | ack, 1011, 5001);
    EXPECT_EQ(v->cause, Cause::keepalive_timeout);
    EXPECT_EQ(c.conn().dir[c.conn().client].ka_probes, 2);
}

TEST(Cause, AnsweredKeepalivesAreNotATimeout) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 10);
    c.server(ack, 5001, 1011);
    c.client(ack, 1010, 5001);  // probe
    c.server(ack, 5001, 1011);  // answered
    EXPECT_EQ(c.conn().dir[c.conn().client].ka_probes, 0);
}

TEST(Cause, RetransmissionTimeout) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    for (int i = 0; i < 4; ++i) c.client(ack | psh, 1001, 5001, 100);  // no ACK comes back
    c.wait(10000);
    c.server(ack | psh, 5001, 1001, 20);  // the path heals, the server speaks
    const auto v = c.client(rst, 1001, 0);  // the client's socket is long gone
    EXPECT_EQ(v->cause, Cause::retransmission_timeout);
}

TEST(Cause, StaleConnection) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 100);
    c.client(ack, 1101, 5101);
    c.wait(2000);
    c.client(ack | psh, 1101, 5101, 10);  // the server rebooted meanwhile
    EXPECT_EQ(c.server(rst, 5101, 0)->cause, Cause::stale_connection);
}

TEST(Cause, TimeWaitReuseNeedsARecentClose) {
    Conversation c;
    c.client(syn, 900, 0);
    c.server(ack, 7777, 1234);  // a TIME_WAIT socket's ACK, not a SYN-ACK
    auto v = c.client(rst, 1234, 0);
    EXPECT_EQ(v->cause, Cause::invalid_segment);  // without a recent close: just invalid

    tcp::Connection reused;
    packet::TcpSegment s;
    s.flags = syn;
    reused.start(s, 0, /*reused=*/true);
    EXPECT_TRUE(reused.reused);
}

TEST(Cause, InvalidSegmentAckOfUnsentData) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 10);
    c.server(ack, 5001, 1011);
    c.client(ack, 1011, 9999999);  // acknowledges data the server never sent
    EXPECT_EQ(c.server(rst, 9999999, 0)->cause, Cause::invalid_segment);
}

TEST(Cause, RaceEvidenceMakesAnEpisodeInjected) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    // The first forged RST looks like a middlebox's (other TTL) ...
    EXPECT_EQ(c.server(rst | ack, 5001, 1101, 0, 64)->cause, Cause::middlebox_reject);
    tcp::Connection k = c.conn();
    const tcp::Side server = k.server();
    k.episode.active = 1;
    k.episode.side = server;
    k.episode.seq = 5001;
    packet::TcpSegment data;
    data.flags = ack | psh;
    data.seq = 5001;  // new data at the RST's seq
    data.payload_len = 100;
    // ... but the real server still answers: someone else sent that RST.
    EXPECT_EQ(classify::on_episode_segment(k, server, data, Cause::middlebox_reject),
              Cause::injected);
    // The client's own answers are aftermath, not evidence.
    EXPECT_EQ(classify::on_episode_segment(k, k.client, data, Cause::middlebox_reject),
              Cause::middlebox_reject);
    // A second RST from the same side with a jumping seq: a forged burst.
    packet::TcpSegment r2;
    r2.flags = rst;
    r2.seq = 5001 + 1460;
    EXPECT_EQ(classify::on_episode_segment(k, server, r2, Cause::linger_abort), Cause::injected);
    r2.seq = 5001;
    EXPECT_EQ(classify::on_episode_segment(k, server, r2, Cause::linger_abort), Cause::linger_abort);
}

TEST(Cause, OrphanAbortIsNotLinger) {
    Conversation c;
    c.handshake();
    c.server(fin | ack, 5001, 1001);
    const auto v = c.server(rst | ack, 5002, 1001);
    EXPECT_EQ(v->cause, Cause::orphan_abort);
    EXPECT_EQ(v->stage, Stage::closing);
}

TEST(Cause, InvalidSynAckWrongAck) {
    Conversation c;
    c.client(syn, 1000, 0);
    c.server(syn | ack, 5000, 4242);  // acknowledges an ISN the client never used
    EXPECT_EQ(c.client(rst, 4242, 0)->cause, Cause::invalid_segment);
}

TEST(Cause, InvalidSynAckPawsTimestamp) {
    Conversation c;
    c.c2s().options = {8, 10, 0x00, 0x07, 0xa1, 0x20, 0, 0, 0, 0};  // SYN tsval 500000
    c.client(syn, 1000, 0);
    c.s2c().options = {8, 10, 0, 0, 0, 7, 0, 0, 0, 99};   // SYN-ACK echoes 99: 500 s ago
    c.server(syn | ack, 5000, 1001);
    EXPECT_EQ(c.client(rst, 1001, 0)->cause, Cause::invalid_segment);
}

// An echo a little older than the SYN seen may be of an earlier SYN the capture missed (then a
// connect timeout or a scan) or from the past (invalid): no label.
TEST(Cause, SynAckEchoingAnUnseenSynIsNoEvidence) {
    Conversation c;
    c.c2s().options = {8, 10, 0x00, 0x07, 0xa1, 0x20, 0, 0, 0, 0};  // SYN tsval 500000
    c.client(syn, 1000, 0);
    c.s2c().options = {8, 10, 0, 0, 0, 7, 0, 0x07, 0x9d, 0x38};  // echoes 499000: 1 s before
    c.server(syn | ack, 5000, 1001);
    EXPECT_EQ(c.client(rst, 1001, 0)->cause, Cause::unclassified);
}

TEST(Cause, InvalidConflictingSynIntoSynRecv) {
    Conversation c;
    c.client(syn, 1000, 0);
    c.server(syn | ack, 5000, 1001);
    c.client(syn, 1500, 0);  // another ISN on the half-open connection
    EXPECT_EQ(c.server(rst | ack, 0, 1501)->cause, Cause::invalid_segment);
}

TEST(Cause, InvalidHandshakeAck) {
    Conversation c;
    c.client(syn, 1000, 0);
    c.server(syn | ack, 5000, 1001);
    c.client(ack, 1001, 777777);  // does not acknowledge the SYN-ACK
    EXPECT_FALSE(c.conn().established);
    EXPECT_EQ(c.server(rst, 777777, 0)->cause, Cause::invalid_segment);
}

TEST(Cause, RefusedBogusSegmentIsNotReLabelledByLaterTalk) {
    tcp::Connection k;
    k.episode.active = 1;
    k.episode.side = 1;
    packet::TcpSegment synack;
    synack.flags = syn | ack;
    EXPECT_EQ(classify::on_episode_segment(k, 1, synack, Cause::invalid_segment),
              Cause::invalid_segment);
}
