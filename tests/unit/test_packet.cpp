#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "packet/packet.hpp"
#include "packet_builder.hpp"

using namespace rstmon;
using namespace rstmon::test;
using packet::LinkType;
using packet::Malformed;
using packet::ParseStatus;

namespace {
packet::ParseResult parse(const std::vector<uint8_t>& f, LinkType l = LinkType::ethernet) {
    packet::TcpSegment s;
    return packet::parse(l, f.data(), f.size(), s);
}
void expect_malformed(const std::vector<uint8_t>& f, Malformed m, LinkType l = LinkType::ethernet) {
    const auto r = parse(f, l);
    ASSERT_EQ(r.status, ParseStatus::malformed);
    EXPECT_EQ(packet::malformed_name(r.malformed), packet::malformed_name(m));
}
constexpr size_t kEth = 14, kIp4 = 20;
}  // namespace

TEST(Parser, Ipv4TcpWithOptions) {
    SegSpec s;
    s.options = {2, 4, 0x05, 0xb4,  // MSS 1460
                 1, 3, 3, 7,        // NOP, window scale 7
                 4, 2,              // SACK permitted
                 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};  // timestamps 1, 2
    s.payload = {'G', 'E', 'T'};
    s.flags = packet::tcpflag::syn | packet::tcpflag::ack;
    s.seq = 0xfffffff0;
    s.ack = 77;
    const auto f = frame(s);  // kept: seg.payload points into it
    const auto seg = parse_ok(f);
    EXPECT_EQ(seg.family, 4);
    EXPECT_EQ(packet::to_string(seg.src, 4), "10.0.0.1");
    EXPECT_EQ(packet::to_string(seg.dst, 4), "10.0.0.2");
    EXPECT_EQ(seg.sport, 40000);
    EXPECT_EQ(seg.dport, 80);
    EXPECT_EQ(seg.seq, 0xfffffff0u);
    EXPECT_EQ(seg.ack, 77u);
    EXPECT_EQ(seg.mss, 1460);
    EXPECT_EQ(seg.wscale, 7);
    EXPECT_TRUE(seg.sack_permitted);
    EXPECT_TRUE(seg.has_ts);
    EXPECT_EQ(seg.tsval, 1u);
    EXPECT_EQ(seg.tsecr, 2u);
    EXPECT_EQ(seg.payload_len, 3u);
    EXPECT_EQ(seg.payload_caplen, 3u);
    EXPECT_EQ(std::memcmp(seg.payload, "GET", 3), 0);
    EXPECT_EQ(seg.seq_len(), 4u);  // SYN + 3 bytes
    EXPECT_FALSE(seg.sliced);
}

TEST(Parser, Ipv6Tcp) {
    SegSpec s;
    s.src = "fd00::1";
    s.dst = "fd00::2";
    s.ttl = 61;
    const auto seg = parse_ok(frame(s));
    EXPECT_EQ(seg.family, 6);
    EXPECT_EQ(packet::to_string(seg.src, 6), "fd00::1");
    EXPECT_EQ(seg.ttl, 61);
}

TEST(Parser, Ipv6ExtensionHeadersAreWalked) {
    SegSpec s;
    s.src = "fd00::1";
    s.dst = "fd00::2";
    auto f = frame(s);
    // Insert hop-by-hop (8 bytes) and an atomic fragment header before TCP.
    const size_t ip = kEth;
    std::vector<uint8_t> hbh = {44, 0, 1, 4, 0, 0, 0, 0};          // next = fragment
    std::vector<uint8_t> frag = {6, 0, 0, 0, 0, 0, 0, 1};          // next = TCP, offset 0, M=0
    f.insert(f.begin() + ip + 40, frag.begin(), frag.end());
    f.insert(f.begin() + ip + 40, hbh.begin(), hbh.end());
    f[ip + 6] = 0;  // next header = hop-by-hop
    const uint16_t plen = static_cast<uint16_t>((f[ip + 4] << 8 | f[ip + 5]) + 16);
    f[ip + 4] = plen >> 8;
    f[ip + 5] = plen & 0xff;
    const auto seg = parse_ok(f);
    EXPECT_EQ(seg.sport, 40000);
}

TEST(Parser, Ipv6FragmentIsIgnored) {
    SegSpec s;
    s.src = "fd00::1";
    s.dst = "fd00::2";
    auto f = frame(s);
    std::vector<uint8_t> frag = {6, 0, 0, 0x11, 0, 0, 0, 1};  // offset 2, M=1
    f.insert(f.begin() + kEth + 40, frag.begin(), frag.end());
    f[kEth + 6] = 44;
    f[kEth + 5] = static_cast<uint8_t>(f[kEth + 5] + 8);
    const auto r = parse(f);
    ASSERT_EQ(r.status, ParseStatus::ignored);
    EXPECT_EQ(r.ignored, packet::Ignored::ip_fragment);
}

TEST(Parser, Ipv6ExtensionChainOverrunIsMalformed) {
    SegSpec s;
    s.src = "fd00::1";
    s.dst = "fd00::2";
    auto f = frame(s);
    f[kEth + 6] = 0;           // hop-by-hop where TCP is
    f[kEth + 40 + 1] = 200;    // claims (200+1)*8 bytes
    expect_malformed(f, Malformed::bad_ipv6_ext_header);
}

TEST(Parser, VlanAndQinQ) {
    SegSpec s;
    s.vlans = {100};
    EXPECT_EQ(parse_ok(frame(s)).vlan, 100);
    s.vlans = {200, 300};
    EXPECT_EQ(parse_ok(frame(s)).vlan, 200);
    s.vlans = {1, 2, 3, 4, 5};
    expect_malformed(frame(s), Malformed::vlan_stack_too_deep);
}

TEST(Parser, Ipv4FragmentsAndNonTcpAreIgnored) {
    SegSpec s;
    auto f = frame(s);
    f[kEth + 6] = 0x20;  // MF
    auto r = parse(f);
    ASSERT_EQ(r.status, ParseStatus::ignored);
    EXPECT_EQ(r.ignored, packet::Ignored::ip_fragment);
    f = frame(s);
    f[kEth + 9] = 17;  // UDP
    r = parse(f);
    ASSERT_EQ(r.status, ParseStatus::ignored);
    EXPECT_EQ(r.ignored, packet::Ignored::not_tcp);
    f = frame(s);
    f[12] = 0x08;
    f[13] = 0x06;  // ARP
    r = parse(f);
    ASSERT_EQ(r.status, ParseStatus::ignored);
    EXPECT_EQ(r.ignored, packet::Ignored::not_ip);
}

TEST(Parser, MalformedReasons) {
    SegSpec s;
    const auto good = frame(s);
    expect_malformed({good.begin(), good.begin() + 10}, Malformed::truncated_l2);
    expect_malformed({good.begin(), good.begin() + kEth + 10}, Malformed::truncated_ip);
    expect_malformed({good.begin(), good.begin() + kEth + kIp4 + 10}, Malformed::truncated_tcp);

    auto f = good;
    f[kEth] = 0x44;  // IHL 4 words
    expect_malformed(f, Malformed::bad_ipv4_ihl);
    f = good;
    f[kEth] = 0x4f;  // IHL 60 bytes, frame shorter
    f.resize(kEth + 40);
    expect_malformed(f, Malformed::bad_ipv4_ihl);
    f = good;
    f[kEth] = 0x65;  // says IPv6 inside an IPv4 ethertype
    expect_malformed(f, Malformed::bad_ip_version);
    f = good;
    f[kEth + 2] = 0;
    f[kEth + 3] = 10;  // total length 10 < IHL
    expect_malformed(f, Malformed::bad_ip_length);
    f = good;
    f[kEth + kIp4 + 12] = 0x40;  // data offset 4 words
    expect_malformed(f, Malformed::bad_tcp_offset);
    f = good;
    f[kEth + kIp4 + 12] = 0xf0;  // data offset 60 > segment
    expect_malformed(f, Malformed::bad_tcp_offset);

    SegSpec o;
    o.options = {2, 40, 0, 0};  // MSS option claiming 40 bytes
    expect_malformed(frame(o), Malformed::bad_tcp_option);
    o.options = {1, 1, 1, 8};  // timestamp kind with no length byte left
    expect_malformed(frame(o), Malformed::bad_tcp_option);
    o.options = {3, 0, 0, 0};  // length 0 would loop forever
    expect_malformed(frame(o), Malformed::bad_tcp_option);
}

TEST(Parser, EthernetPaddingIsNotPayload) {
    SegSpec s;
    s.flags = packet::tcpflag::rst;
    auto f = frame(s);
    f.resize(60, 0);  // padded to the Ethernet minimum
    EXPECT_EQ(parse_ok(f).payload_len, 0u);
}

TEST(Parser, ZeroIpv4LengthFromTsoCaptureUsesTheFrame) {
    SegSpec s;
    s.payload.assign(3000, 'x');  // larger than any MTU: a host-side TSO capture
    auto f = frame(s);
    f[kEth + 2] = 0;
    f[kEth + 3] = 0;
    const auto seg = parse_ok(f);
    EXPECT_EQ(seg.payload_len, 3000u);
    EXPECT_FALSE(seg.sliced);
}

TEST(Parser, SlicedFrameKeepsIpLength) {
    SegSpec s;
    s.payload.assign(1000, 'x');
    auto f = frame(s);
    f.resize(kEth + kIp4 + 20 + 10);  // snaplen cut after 10 payload bytes
    const auto seg = parse_ok(f);
    EXPECT_TRUE(seg.sliced);
    EXPECT_EQ(seg.payload_len, 1000u);
    EXPECT_EQ(seg.payload_caplen, 10u);
}

TEST(Parser, OtherLinkTypes) {
    SegSpec s;
    const auto ip = ip_packet(s);
    EXPECT_EQ(parse_ok(ip, LinkType::raw_ip).sport, 40000);

    std::vector<uint8_t> sll(16, 0);
    sll[14] = 0x08;
    sll[15] = 0x00;
    sll.insert(sll.end(), ip.begin(), ip.end());
    EXPECT_EQ(parse_ok(sll, LinkType::linux_sll).sport, 40000);

    std::vector<uint8_t> sll2(20, 0);
    sll2[0] = 0x08;
    sll2[1] = 0x00;
    sll2.insert(sll2.end(), ip.begin(), ip.end());
    EXPECT_EQ(parse_ok(sll2, LinkType::linux_sll2).sport, 40000);

    std::vector<uint8_t> null_le = {2, 0, 0, 0};
    null_le.insert(null_le.end(), ip.begin(), ip.end());
    EXPECT_EQ(parse_ok(null_le, LinkType::bsd_loopback_host).sport, 40000);
    std::vector<uint8_t> loop_be = {0, 0, 0, 2};
    loop_be.insert(loop_be.end(), ip.begin(), ip.end());
    EXPECT_EQ(parse_ok(loop_be, LinkType::bsd_loopback_net).sport, 40000);

    SegSpec s6;
    s6.src = "fd00::1";
    s6.dst = "fd00::2";
    const auto ip6 = ip_packet(s6);
    std::vector<uint8_t> null6 = {30, 0, 0, 0};  // AF_INET6 on macOS, little-endian host
    null6.insert(null6.end(), ip6.begin(), ip6.end());
    EXPECT_EQ(parse_ok(null6, LinkType::bsd_loopback_host).family, 6);

    packet::LinkType lt;
    EXPECT_TRUE(packet::link_type_from_dlt(1, lt));
    EXPECT_TRUE(packet::link_type_from_dlt(276, lt));
    EXPECT_EQ(lt, LinkType::linux_sll2);
    EXPECT_FALSE(packet::link_type_from_dlt(105, lt));  // 802.11
}

// Any byte string: never a crash, never a read out of bounds (run under ASan/valgrind too).
TEST(Parser, RandomBytesNeverCrash) {
    std::mt19937 rng(12345);
    SegSpec s;
    s.options = {2, 4, 5, 0xb4, 1, 3, 3, 7};
    s.payload.assign(40, 'a');
    const auto base = frame(s);
    const LinkType links[] = {LinkType::ethernet, LinkType::linux_sll, LinkType::linux_sll2,
                              LinkType::raw_ip, LinkType::bsd_loopback_host};
    size_t tcp = 0;
    for (int i = 0; i < 200000; ++i) {
        std::vector<uint8_t> f = base;
        const int flips = 1 + static_cast<int>(rng() % 6);
        for (int k = 0; k < flips; ++k) f[rng() % f.size()] = static_cast<uint8_t>(rng());
        f.resize(rng() % (f.size() + 1));
        // Exact-size heap copy so a sanitizer catches any overread.
        std::unique_ptr<uint8_t[]> buf(new uint8_t[f.size() + 1]);
        std::memcpy(buf.get(), f.data(), f.size());
        packet::TcpSegment seg;
        const auto r = packet::parse(links[i % 5], buf.get(), f.size(), seg);
        if (r.status == ParseStatus::tcp) {
            ++tcp;
            ASSERT_LE(seg.payload_caplen, seg.payload_len);
            ASSERT_GE(seg.payload, buf.get());
            ASSERT_LE(seg.payload + seg.payload_caplen, buf.get() + f.size());
        }
    }
    EXPECT_GT(tcp, 0u);
}
