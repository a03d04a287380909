// SPAN duplicates (flow/dedup.hpp): which frames are copies of one segment, the window, and what
// the filter must never swallow (retransmissions).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "flow/dedup.hpp"
#include "packet_builder.hpp"

namespace rstmon {
namespace {

using flow::DuplicateFilter;
using flow::segment_signature;
using packet::tcpflag::ack;
using packet::tcpflag::psh;
using packet::tcpflag::rst;

constexpr uint64_t kUs = 1000, kMs = 1000000;

test::SegSpec data_segment() {
    test::SegSpec s;
    s.flags = ack | psh;
    s.seq = 5000;
    s.ack = 9000;
    s.ip_id = 4242;
    s.payload = {'G', 'E', 'T', ' ', '/'};
    return s;
}

// The frame with its TCP checksum field set (the builder leaves it 0).
std::vector<uint8_t> with_checksum(std::vector<uint8_t> f, uint16_t csum, size_t ip_header = 20) {
    const size_t at = 14 + ip_header + 16;
    f[at] = static_cast<uint8_t>(csum >> 8);
    f[at + 1] = static_cast<uint8_t>(csum);
    return f;
}

TEST(Dedup, ParserKeepsTheTcpChecksum) {
    const auto seg = test::parse_ok(with_checksum(test::frame(data_segment()), 0xbeef));
    EXPECT_EQ(seg.checksum, 0xbeef);
    test::SegSpec v6 = data_segment();
    v6.src = "2001:db8::1";
    v6.dst = "2001:db8::2";
    EXPECT_EQ(test::parse_ok(with_checksum(test::frame(v6), 0x1234, 40)).checksum, 0x1234);
}

TEST(Dedup, RoutedCopyIsTheSameSegment) {
    // Mirrored before and after a router: TTL one less and new MAC addresses, same segment.
    auto before = with_checksum(test::frame(data_segment()), 0xbeef);
    test::SegSpec routed = data_segment();
    routed.ttl = 63;
    auto after = with_checksum(test::frame(routed), 0xbeef);
    for (int i = 0; i < 12; ++i) after[i] ^= 0x5a;  // other MAC addresses
    const auto a = test::parse_ok(before), b = test::parse_ok(after);
    ASSERT_NE(a.ttl, b.ttl);
    EXPECT_EQ(segment_signature(a), segment_signature(b));

    DuplicateFilter f(2 * kMs, 1024);
    EXPECT_FALSE(f.is_copy(a, 1000 * kMs));
    EXPECT_TRUE(f.is_copy(b, 1000 * kMs + 30 * kUs));
}

TEST(Dedup, EveryFieldOfTheDefinitionTellsSegmentsApart) {
    const auto base = test::parse_ok(with_checksum(test::frame(data_segment()), 0xbeef));
    const uint64_t sig = segment_signature(base);
    auto differs = [&](auto change) {
        packet::TcpSegment s = base;
        change(s);
        return segment_signature(s) != sig;
    };
    EXPECT_TRUE(differs([](auto& s) { s.ip_id++; }));       // IPv4: a new datagram
    EXPECT_TRUE(differs([](auto& s) { s.seq++; }));
    EXPECT_TRUE(differs([](auto& s) { s.ack++; }));
    EXPECT_TRUE(differs([](auto& s) { s.flags |= rst; }));
    EXPECT_TRUE(differs([](auto& s) { s.payload_len++; }));
    EXPECT_TRUE(differs([](auto& s) { s.checksum++; }));    // window, options, payload bytes
    EXPECT_TRUE(differs([](auto& s) { s.sport++; }));
    EXPECT_TRUE(differs([](auto& s) { s.dport++; }));
    EXPECT_TRUE(differs([](auto& s) { s.src.b[3]++; }));
    EXPECT_TRUE(differs([](auto& s) { s.dst.b[15]++; }));   // IPv6 low bytes count too
    EXPECT_TRUE(differs([](auto& s) { std::swap(s.src, s.dst); }));  // the other direction
    EXPECT_FALSE(differs([](auto& s) { s.ttl--; }));
    EXPECT_FALSE(differs([](auto& s) { s.vlan = 7; }));     // a mirror may add a tag
}

TEST(Dedup, RetransmissionsAreNotCopies) {
    const auto orig = test::parse_ok(with_checksum(test::frame(data_segment()), 0xbeef));
    DuplicateFilter f(2 * kMs, 1024);
    EXPECT_FALSE(f.is_copy(orig, 1000 * kMs));
    // The sender's stack gives a retransmission a new IP ID, even 100 us later.
    packet::TcpSegment rexmit = orig;
    rexmit.ip_id++;
    EXPECT_FALSE(f.is_copy(rexmit, 1000 * kMs + 100 * kUs));
    // The same datagram again after the window (a stack reusing IDs, or IPv6): a retransmission.
    EXPECT_FALSE(f.is_copy(orig, 1000 * kMs + 2 * kMs + 2 * kUs));
}

TEST(Dedup, WindowRunsFromTheFirstSightingBothWays) {
    const auto seg = test::parse_ok(test::frame(data_segment()));
    DuplicateFilter f(2 * kMs, 1024);
    const uint64_t t0 = 5000 * kMs;
    EXPECT_FALSE(f.is_copy(seg, t0));
    EXPECT_TRUE(f.is_copy(seg, t0 + 2 * kMs - 2 * kUs));  // inside (1 us ticks, rounded up)
    EXPECT_TRUE(f.is_copy(seg, t0 - 300 * kUs));          // a second port delivering late
    EXPECT_TRUE(f.is_copy(seg, t0 + 1 * kMs));            // a third copy: still the first's
    EXPECT_FALSE(f.is_copy(seg, t0 + 3 * kMs));           // past it: remembered afresh
    EXPECT_TRUE(f.is_copy(seg, t0 + 4 * kMs));
}

// Without an IP ID (IPv6, IPv4 ID 0) the rest of the definition has to do: an endpoint's byte
// for byte repeat inside the window is taken for a copy (counted once; one RST episode anyway).
TEST(Dedup, WithoutAnIpIdTheRestOfTheDefinitionDecides) {
    test::SegSpec r;
    r.flags = rst;
    r.seq = 7000;
    r.ip_id = 0;
    r.src = "2001:db8::1";
    r.dst = "2001:db8::2";
    const auto reset = test::parse_ok(test::frame(r));
    DuplicateFilter f(2 * kMs, 1024);
    const uint64_t t = 3000 * kMs;
    EXPECT_FALSE(f.is_copy(reset, t));
    EXPECT_TRUE(f.is_copy(reset, t + 14 * kUs));
    packet::TcpSegment next = reset;
    next.seq += 1;  // anything else differing: another segment
    EXPECT_FALSE(f.is_copy(next, t + 20 * kUs));
    EXPECT_FALSE(f.is_copy(reset, t + 3 * kMs));  // past the window: a repeat
}

TEST(Dedup, WindowZeroIsOff) {
    DuplicateFilter f(0, 65536);
    EXPECT_FALSE(f.enabled());
    EXPECT_EQ(f.bytes(), 0u);
    EXPECT_TRUE(DuplicateFilter(1, 64).enabled());  // 1 ns still rounds up to one tick
}

TEST(Dedup, SizeIsAPowerOfTwoOfEightWaySets) {
    EXPECT_EQ(DuplicateFilter(2 * kMs, 64).bytes(), 8u * 64u);
    EXPECT_EQ(DuplicateFilter(2 * kMs, 65).bytes(), 16u * 64u);
    EXPECT_EQ(DuplicateFilter(2 * kMs, 65536).bytes(), 512u * 1024u);
}

TEST(Dedup, EightNewerSegmentsInOneSetPushACopyOut) {
    // One set (8 entries): the set is first-in first-out.
    DuplicateFilter f(2 * kMs, 8);
    packet::TcpSegment s = test::parse_ok(test::frame(data_segment()));
    const uint64_t t = 7000 * kMs;
    EXPECT_FALSE(f.is_copy(s, t));
    for (int i = 1; i <= 7; ++i) {
        packet::TcpSegment o = s;
        o.seq += static_cast<uint32_t>(i * 1000);
        EXPECT_FALSE(f.is_copy(o, t + i * kUs));
    }
    EXPECT_TRUE(f.is_copy(s, t + 10 * kUs));  // seven newer: still there
    packet::TcpSegment o = s;
    o.seq += 9000;
    EXPECT_FALSE(f.is_copy(o, t + 20 * kUs));
    EXPECT_FALSE(f.is_copy(s, t + 30 * kUs));  // eight newer: forgotten, counted as new
}

TEST(Dedup, ManyFlowsAtOnceKeepTheirCopies) {
    // Copies 500 us after their originals with 5000 other segments in between, in a filter of
    // the default size: the analysis in dedup.hpp says about 1 in a million are missed.
    DuplicateFilter f(2 * kMs, 65536);
    test::SegSpec spec = data_segment();
    std::vector<packet::TcpSegment> segs;
    for (uint32_t i = 0; i < 20000; ++i) {
        packet::TcpSegment s = test::parse_ok(test::frame(spec));
        s.sport = static_cast<uint16_t>(1024 + i % 50000);
        s.seq = 1000 + i * 1460;
        s.ip_id = static_cast<uint16_t>(i);
        segs.push_back(s);
    }
    const uint64_t t0 = 9000 * kMs;
    uint32_t missed = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
        const uint64_t t = t0 + i * 100;  // 10 Mpps
        EXPECT_FALSE(f.is_copy(segs[i], t));
        if (i >= 5000) missed += !f.is_copy(segs[i - 5000], t);
    }
    std::printf("copies missed: %u of 15000\n", missed);
    EXPECT_LE(missed, 1u) << "copies missed out of 15000";
}

}  // namespace

// The signature indexes the filter's sets with its low bits and tags entries with its high 32:
// segments that differ in one field (consecutive sequence numbers, neighbouring ports or
// addresses, as real traffic does) must spread over the sets and never share a signature.
TEST(Dedup, SignaturesOfNeighbouringSegmentsSpreadAndDiffer) {
    const auto base = test::parse_ok(with_checksum(test::frame(data_segment()), 0xbeef));
    constexpr uint32_t kSets = 8192, kEach = 50000;
    std::vector<uint64_t> sigs;
    for (int field = 0; field < 4; ++field)
        for (uint32_t i = 0; i < kEach; ++i) {
            packet::TcpSegment s = base;
            switch (field) {
                case 0: s.seq += i; break;
                case 1: s.sport = static_cast<uint16_t>(s.sport + i); s.ip_id = static_cast<uint16_t>(i >> 16); break;
                case 2: s.src.b[2] = static_cast<uint8_t>(i >> 8); s.src.b[3] = static_cast<uint8_t>(i); s.ack += i >> 16; break;
                case 3: s.payload_len += i; break;
            }
            sigs.push_back(segment_signature(s));
        }
    for (int field = 0; field < 4; ++field) {  // (i = 0 is the base segment in each)
        std::vector<uint64_t> sorted(sigs.begin() + field * kEach,
                                     sigs.begin() + (field + 1) * kEach);
        std::sort(sorted.begin(), sorted.end());
        EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << field;
    }
    // Sets: 200k signatures over 8192 sets, about 24 each; a chi-square far above its
    // 8191 degrees of freedom would mean crowded sets (copies missed).
    for (int field = 0; field < 4; ++field) {
        std::vector<uint32_t> per_set(kSets);
        for (uint32_t i = 0; i < kEach; ++i) per_set[sigs[field * kEach + i] & (kSets - 1)]++;
        const double expect = static_cast<double>(kEach) / kSets;
        double chi = 0;
        for (uint32_t n : per_set) chi += (n - expect) * (n - expect) / expect;
        EXPECT_LT(chi, kSets * 1.1) << "field " << field;
        EXPECT_GT(chi, kSets * 0.9) << "field " << field;  // (too even is no hash either)
    }
}

}  // namespace rstmon
