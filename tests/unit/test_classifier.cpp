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
    // 65535 << 4 = 1048560: 500000 ahead is inside the scaled window.
    EXPECT_EQ(c.client(rst, 1001 + 500000, 0)->validity, Validity::in_window);
    Conversation d;
    d.c2s().options = {3, 3, 4};  // only the client offers: no scaling
    d.handshake();
    EXPECT_EQ(d.client(rst, 1001 + 500000, 0)->validity, Validity::out_of_window);
}

TEST(Classifier, AbortWithFinSentIsNotLinger) {
    Conversation c;
    c.handshake();
    c.server(fin | ack, 5001, 1001);
    const auto v = c.server(rst | ack, 5002, 1001);
    EXPECT_EQ(v->cause, Cause::unclassified);  // data_after_close / orphan_abort: not yet
    EXPECT_EQ(v->stage, Stage::closing);
}
