#include <gtest/gtest.h>

#include "flow/flow_key.hpp"
#include "packet_builder.hpp"

using namespace rstmon;
using namespace rstmon::test;

TEST(FlowKey, BothDirectionsShareOneKey) {
    SegSpec a;
    SegSpec b;
    b.src = a.dst;
    b.dst = a.src;
    b.sport = a.dport;
    b.dport = a.sport;
    flow::FlowKey ka, kb;
    const auto sa = flow::make_key(parse_ok(frame(a)), ka);
    const auto sb = flow::make_key(parse_ok(frame(b)), kb);
    EXPECT_EQ(std::memcmp(&ka, &kb, sizeof ka), 0);
    EXPECT_NE(sa, sb);
    EXPECT_EQ(flow::symmetric_hash(ka), flow::symmetric_hash(kb));
}

TEST(FlowKey, SameAddressesDifferentPortsAreDistinct) {
    SegSpec a, b;
    b.sport = 40001;
    flow::FlowKey ka, kb;
    flow::make_key(parse_ok(frame(a)), ka);
    flow::make_key(parse_ok(frame(b)), kb);
    EXPECT_NE(std::memcmp(&ka, &kb, sizeof ka), 0);
}

TEST(FlowKey, SameHostBothEndsOrdersByPort) {
    SegSpec a;
    a.src = a.dst = "127.0.0.1";
    a.sport = 5000;
    a.dport = 6000;
    SegSpec b = a;
    b.sport = 6000;
    b.dport = 5000;
    flow::FlowKey ka, kb;
    EXPECT_EQ(flow::make_key(parse_ok(frame(a)), ka), 0);
    EXPECT_EQ(flow::make_key(parse_ok(frame(b)), kb), 1);
    EXPECT_EQ(std::memcmp(&ka, &kb, sizeof ka), 0);
}

TEST(FlowKey, Ipv4AndIpv6NeverCollide) {
    SegSpec a, b;
    b.src = "::a00:1";  // same bytes tail as 10.0.0.1 would not matter: family differs
    b.dst = "::a00:2";
    flow::FlowKey ka, kb;
    flow::make_key(parse_ok(frame(a)), ka);
    flow::make_key(parse_ok(frame(b)), kb);
    EXPECT_NE(std::memcmp(&ka, &kb, sizeof ka), 0);
}
