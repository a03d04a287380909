#include <gtest/gtest.h>

#include "conversation.hpp"

using namespace rstmon;
using namespace rstmon::test;
using namespace rstmon::packet::tcpflag;

TEST(Tcp, HandshakeSetsRolesAndSequenceState) {
    Conversation c;
    c.handshake();
    const auto& k = c.conn();
    ASSERT_NE(k.client, tcp::kNoSide);
    EXPECT_EQ(k.origin, tcp::Origin::handshake);
    EXPECT_TRUE(k.synack);
    EXPECT_TRUE(k.established);
    const auto& cl = k.dir[k.client];
    const auto& sv = k.dir[k.server()];
    EXPECT_EQ(cl.isn, 1000u);
    EXPECT_EQ(sv.isn, 5000u);
    EXPECT_EQ(cl.snd_nxt, 1001u);
    EXPECT_EQ(sv.snd_nxt, 5001u);
    EXPECT_EQ(cl.max_ack, 5001u);
    EXPECT_EQ(sv.max_ack, 1001u);
}

TEST(Tcp, PayloadAdvancesSndNxtAndRetransmissionsDoNot) {
    Conversation c;
    c.handshake();
    c.client(ack | psh, 1001, 5001, 100);
    c.server(ack | psh, 5001, 1101, 300);
    c.client(ack | psh, 1001, 5301, 100);  // retransmission of the request
    const auto& k = c.conn();
    EXPECT_EQ(k.dir[k.client].snd_nxt, 1101u);
    EXPECT_EQ(k.dir[k.server()].snd_nxt, 5301u);
    EXPECT_EQ(k.last_payload_side, k.server());  // the retransmission is not new payload
}

TEST(Tcp, SequenceWrapAround) {
    Conversation c;
    using namespace packet::tcpflag;
    c.client(syn, 0xfffffff0, 0);
    c.server(syn | ack, 7, 0xfffffff1);
    c.client(ack, 0xfffffff1, 8);
    c.client(ack | psh, 0xfffffff1, 8, 32);  // wraps past zero
    const auto& k = c.conn();
    EXPECT_EQ(k.dir[k.client].snd_nxt, 0x11u);
}

TEST(Tcp, MidstreamPickupHasNoOrigin) {
    Conversation c;
    c.client(ack | psh, 1001, 5001, 10);
    EXPECT_EQ(c.conn().origin, tcp::Origin::midstream);
    EXPECT_EQ(c.conn().client, tcp::kNoSide);
}

TEST(Tcp, SynAckFirstKnowsRolesButNotTheStart) {
    Conversation c;
    c.server(syn | ack, 5000, 1001);
    EXPECT_EQ(c.conn().origin, tcp::Origin::midstream);
    ASSERT_NE(c.conn().client, tcp::kNoSide);
    EXPECT_EQ(c.conn().dir[c.conn().server()].isn, 5000u);
}

TEST(Tcp, FinAndDataAfterPeerFin) {
    Conversation c;
    c.handshake();
    c.server(fin | ack, 5001, 1001);
    c.client(ack | psh, 1001, 5002, 10);
    const auto& k = c.conn();
    EXPECT_TRUE(k.dir[k.server()].fin);
    EXPECT_TRUE(k.dir[k.client].data_after_peer_fin);
    EXPECT_EQ(k.dir[k.server()].snd_nxt, 5002u);  // FIN takes one sequence number
}
