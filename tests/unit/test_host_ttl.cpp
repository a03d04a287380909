// The host TTL memory of the dispatch stage (flow/host_ttl.hpp): what it learns, from what, and
// what it forgets.
#include <gtest/gtest.h>

#include "flow/host_ttl.hpp"
#include "packet_builder.hpp"

using namespace rstmon;
using namespace rstmon::test;

namespace {

constexpr uint64_t kMs = 1000000ull;

packet::TcpSegment seg(const char* src, uint8_t ttl, uint8_t flags) {
    SegSpec s;
    s.src = src;
    s.ttl = ttl;
    s.flags = flags;
    return parse_ok(frame(s));
}

}  // namespace

TEST(HostTtl, RstGetsTheTtlItsSourceHadBefore) {
    flow::HostTtlTable t;
    EXPECT_EQ(t.observe(seg("10.0.0.9", 60, packet::tcpflag::rst), 0), 0);  // unknown yet
    EXPECT_EQ(t.observe(seg("10.0.0.9", 60, packet::tcpflag::syn | packet::tcpflag::ack), kMs), 0);
    EXPECT_EQ(t.observe(seg("10.0.0.9", 254, packet::tcpflag::rst), 2 * kMs), 60);
    // The RST taught nothing: a forger's TTL never becomes the host's.
    EXPECT_EQ(t.lookup(seg("10.0.0.9", 0, 0).src), 60);
    EXPECT_EQ(t.lookup(seg("10.0.0.8", 0, 0).src), 0);
    // Mid-connection segments teach nothing (cost); a FIN does.
    t.observe(seg("10.0.0.7", 50, packet::tcpflag::ack), 3 * kMs);
    EXPECT_EQ(t.lookup(seg("10.0.0.7", 0, 0).src), 0);
    t.observe(seg("10.0.0.7", 50, packet::tcpflag::fin | packet::tcpflag::ack), 4 * kMs);
    EXPECT_EQ(t.lookup(seg("10.0.0.7", 0, 0).src), 50);
}

TEST(HostTtl, CopyBehindARouterDoesNotLowerIt) {
    flow::HostTtlTable t;
    t.observe(seg("10.0.0.9", 60, packet::tcpflag::syn), 0);
    t.observe(seg("10.0.0.9", 59, packet::tcpflag::syn), 10000);  // the SPAN copy, 10 us later
    EXPECT_EQ(t.lookup(seg("10.0.0.9", 0, 0).src), 60);
    // Once the higher TTL is not seen for a minute, the route is taken to have changed.
    t.observe(seg("10.0.0.9", 57, packet::tcpflag::syn), 61000 * kMs);
    EXPECT_EQ(t.lookup(seg("10.0.0.9", 0, 0).src), 57);
    t.observe(seg("10.0.0.9", 64, packet::tcpflag::syn), 61001 * kMs);  // higher: at once
    EXPECT_EQ(t.lookup(seg("10.0.0.9", 0, 0).src), 64);
}

TEST(HostTtl, BusyHostSurvivesAStreamOfNewOnes) {
    flow::HostTtlTable t;  // 8192 sets of 8
    for (uint32_t i = 0; i < 300000; ++i) {  // a new client address every microsecond
        const uint64_t now = i * 1000ull;  // 1 us apart
        if (i % 200 == 0) t.observe(seg("172.16.0.1", 60, packet::tcpflag::syn | packet::tcpflag::ack), now);
        const std::string c = "10." + std::to_string(i >> 16 & 255) + "." +
                              std::to_string(i >> 8 & 255) + "." + std::to_string(i & 255);
        t.observe(seg(c.c_str(), 64, packet::tcpflag::syn), now);
        ASSERT_EQ(t.lookup(seg("172.16.0.1", 0, 0).src), 60) << i;
    }
}
