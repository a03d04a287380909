#include <gtest/gtest.h>

#include "flow/flow_key.hpp"
#include "packet_builder.hpp"

#include <cstring>
#include <vector>

using namespace rstmon;
using namespace rstmon::test;

namespace {

// The same connection's segment in the other direction.
SegSpec reversed(const SegSpec& a) {
    SegSpec b = a;
    b.src = a.dst;
    b.dst = a.src;
    b.sport = a.dport;
    b.dport = a.sport;
    return b;
}

}  // namespace

TEST(FlowKey, BothDirectionsShareOneKey) {
    SegSpec a;
    const SegSpec b = reversed(a);
    flow::FlowKey ka, kb;
    const auto sa = flow::make_key(parse_ok(frame(a)), ka);
    const auto sb = flow::make_key(parse_ok(frame(b)), kb);
    EXPECT_EQ(std::memcmp(&ka, &kb, sizeof ka), 0);
    EXPECT_NE(sa, sb);
    EXPECT_EQ(flow::flow_hash(ka), flow::flow_hash(kb));
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

// The flow hash is DPDK's rte_hash_crc (CRC32-C, 8 bytes a step): the same value with and
// without SSE4.2, and the known CRC32-C check value for a whole-words input.
TEST(FlowKey, HashIsCrc32c) {
    // CRC32-C of "12345678" with seed ~0 and final xor: 0x6087809a (RFC 3720 style check).
    const char in[] = "12345678";
    EXPECT_EQ(~flow::flow_hash(in, 8, 0xffffffffu), 0x6087809au);
    uint64_t w = 0x0123456789abcdefull;
    uint32_t soft = flow::kFlowHashSeed;
    for (int i = 0; i < 64; ++i, w >>= 1) {
        const uint32_t bit = (soft ^ static_cast<uint32_t>(w)) & 1u;
        soft = (soft >> 1) ^ (bit ? 0x82f63b78u : 0u);
    }
    EXPECT_EQ(flow::crc32c_u64(flow::kFlowHashSeed, 0x0123456789abcdefull), soft);
}

// Dispatch spreads flows over the workers evenly and keeps both directions together.
TEST(FlowKey, WorkerOfIsEvenAndSymmetric) {
    for (uint32_t n : {2u, 3u, 8u}) {
        std::vector<uint32_t> per(n, 0);
        for (uint32_t i = 0; i < 60000; ++i) {
            SegSpec a;
            a.sport = static_cast<uint16_t>(1024 + i);
            a.dport = static_cast<uint16_t>(80 + i % 7);
            const SegSpec b = reversed(a);
            flow::FlowKey ka, kb;
            flow::make_key(parse_ok(frame(a)), ka);
            flow::make_key(parse_ok(frame(b)), kb);
            const uint32_t w = flow::worker_of(flow::flow_hash(ka), n);
            ASSERT_EQ(w, flow::worker_of(flow::flow_hash(kb), n));
            ASSERT_LT(w, n);
            per[w]++;
        }
        for (uint32_t c : per) EXPECT_NEAR(c, 60000.0 / n, 60000.0 / n * 0.05) << n;
    }
}

// The low endpoint is the one memcmp() sorts first (then the lower port): make_key must pick
// the same side for every pair, whichever byte differs and whether its high bit is set (signed
// compares would flip those), and write the same key bytes as field-by-field assignment.
TEST(FlowKey, LowEndpointIsMemcmpOrder) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    auto next = [&x] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    int low = 0, high = 0, same_addr = 0;
    for (int i = 0; i < 20000; ++i) {
        packet::TcpSegment seg;
        for (size_t k = 0; k < 16; ++k) seg.src.b[k] = static_cast<uint8_t>(next());
        seg.dst = seg.src;
        if (i % 5 != 0) {  // one byte differs (1 in 5: the same address, ports decide)
            const size_t k = next() % 16;
            seg.dst.b[k] = static_cast<uint8_t>(next());
        }
        seg.sport = static_cast<uint16_t>(next());
        seg.dport = static_cast<uint16_t>(next());
        seg.family = (i & 1) ? 4 : 6;
        const int c = std::memcmp(seg.src.b.data(), seg.dst.b.data(), 16);
        const bool src_low = c < 0 || (c == 0 && seg.sport <= seg.dport);
        flow::FlowKey want;
        want.family = seg.family;
        want.lo_addr = src_low ? seg.src : seg.dst;
        want.hi_addr = src_low ? seg.dst : seg.src;
        want.lo_port = src_low ? seg.sport : seg.dport;
        want.hi_port = src_low ? seg.dport : seg.sport;
        flow::FlowKey got;
        std::memset(static_cast<void*>(&got), 0xa5, sizeof got);  // padding must come out zero
        ASSERT_EQ(flow::make_key(seg, got), src_low ? 0 : 1) << i;
        ASSERT_EQ(std::memcmp(&got, &want, sizeof got), 0) << i;
        (c == 0 ? same_addr : src_low ? low : high)++;
    }
    EXPECT_GT(low, 5000);
    EXPECT_GT(high, 5000);
    EXPECT_GT(same_addr, 3000);
}
