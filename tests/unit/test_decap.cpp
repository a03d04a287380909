// Tunnelled mirror feeds: every encapsulation the parser opens, with and without its optional
// fields, cut at every byte, with wrong versions and unknown protocols, and with the decap
// settings changed. The inner frames come from packet_builder; the outer layers are built here
// byte by byte from the RFCs / the ERSPAN draft, so the parser is not checked against itself.
#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "packet/packet.hpp"
#include "packet_builder.hpp"

using namespace rstmon;
using namespace rstmon::test;
using packet::DecapConfig;
using packet::Encap;
using packet::Ignored;
using packet::LinkType;
using packet::Malformed;
using packet::ParseResult;
using packet::ParseStatus;
using Bytes = std::vector<uint8_t>;

namespace {

void put16(Bytes& v, uint16_t x) {
    v.push_back(static_cast<uint8_t>(x >> 8));
    v.push_back(static_cast<uint8_t>(x));
}
void put32(Bytes& v, uint32_t x) {
    put16(v, static_cast<uint16_t>(x >> 16));
    put16(v, static_cast<uint16_t>(x));
}
Bytes cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

constexpr uint16_t kIpv4 = 0x0800, kIpv6 = 0x86dd, kTeb = 0x6558, kMpls = 0x8847;
constexpr uint16_t kErspan2 = 0x88be, kErspan3 = 0x22eb;

// Outer Ethernet (the mirror transport's MACs), optionally 802.1Q-tagged.
Bytes eth(uint16_t type, const Bytes& payload, uint16_t vlan = 0) {
    Bytes f = {0x0a, 0, 0, 0, 0, 0xb, 0x0a, 0, 0, 0, 0, 0xa};
    if (vlan) {
        put16(f, 0x8100);
        put16(f, vlan);
    }
    put16(f, type);
    return cat(f, payload);
}

// Outer IPv4 from 192.0.2.1 to 192.0.2.2 (the sensor), total length from the payload.
Bytes ipv4(uint8_t proto, const Bytes& payload, uint16_t frag = 0x4000) {
    Bytes h = {0x45, 0};
    put16(h, static_cast<uint16_t>(20 + payload.size()));
    put16(h, 0x1234);
    put16(h, frag);
    h.push_back(255);
    h.push_back(proto);
    put16(h, 0);
    for (uint8_t b : {192, 0, 2, 1, 192, 0, 2, 2}) h.push_back(b);
    return cat(h, payload);
}

Bytes ipv6(uint8_t next, const Bytes& payload) {
    Bytes h;
    put32(h, 0x60000000);
    put16(h, static_cast<uint16_t>(payload.size()));
    h.push_back(next);
    h.push_back(255);
    for (int i = 0; i < 2; ++i) {
        h.insert(h.end(), {0x20, 0x01, 0x0d, 0xb8});
        h.insert(h.end(), 11, 0);
        h.push_back(static_cast<uint8_t>(i + 1));
    }
    return cat(h, payload);
}

Bytes udp(uint16_t dport, const Bytes& payload, int len_adjust = 0) {
    Bytes h;
    put16(h, 49152);
    put16(h, dport);
    put16(h, static_cast<uint16_t>(8 + static_cast<int>(payload.size()) + len_adjust));
    put16(h, 0);
    return cat(h, payload);
}

struct GreOpts {
    bool csum = false, key = false, seq = false;
    uint32_t key_value = 0;
    uint16_t version = 0;
    bool routing = false;
};
Bytes gre(uint16_t proto, const Bytes& payload, const GreOpts& o = {}) {
    Bytes h;
    put16(h, static_cast<uint16_t>((o.csum ? 0x8000 : 0) | (o.routing ? 0x4000 : 0) |
                                   (o.key ? 0x2000 : 0) | (o.seq ? 0x1000 : 0) | o.version));
    put16(h, proto);
    if (o.csum || o.routing) put32(h, 0xbeef0000);
    if (o.key) put32(h, o.key_value);
    if (o.seq) put32(h, 77);
    return cat(h, payload);
}

// ERSPAN type II: ver 1, VLAN, COS 0, En, T 0, session; reserved, index.
Bytes erspan2_hdr(uint16_t session, uint16_t vlan = 0, uint8_t version = 1) {
    Bytes h;
    put16(h, static_cast<uint16_t>(version << 12 | vlan));
    put16(h, static_cast<uint16_t>((2u << 11) | session));  // En = 802.1Q encapsulated
    put32(h, 0x00012345);
    return h;
}

// ERSPAN type III: ver 2, VLAN, session; timestamp; SGT; P/FT/HW/D/Gra/O (+ 8-byte subheader).
Bytes erspan3_hdr(uint16_t session, uint16_t vlan, bool platform, uint8_t frame_type = 0,
                  uint8_t version = 2) {
    Bytes h;
    put16(h, static_cast<uint16_t>(version << 12 | vlan));
    put16(h, session);
    put32(h, 0xdeadbeef);  // timestamp
    put16(h, 0x0042);      // SGT
    put16(h, static_cast<uint16_t>(frame_type << 10 | 0x3 << 4 | (platform ? 1 : 0)));
    if (platform) {
        put32(h, 0x0c000000);  // platform id 3
        put32(h, 0x11223344);
    }
    return h;
}

Bytes vxlan(uint32_t vni, const Bytes& inner, uint8_t flags = 0x08) {
    Bytes h = {flags, 0, 0, 0};
    put32(h, vni << 8);
    return cat(h, inner);
}

Bytes geneve(uint32_t vni, uint16_t proto, const Bytes& inner, uint8_t opt_words = 0,
             bool oam = false, uint8_t version = 0) {
    Bytes h = {static_cast<uint8_t>(version << 6 | opt_words),
               static_cast<uint8_t>(oam ? 0x80 : 0)};
    put16(h, proto);
    put32(h, vni << 8);
    for (int i = 0; i < opt_words; ++i) put32(h, i == 0 ? 0x01020301u : 0xabcdef00u);
    return cat(h, inner);
}

// MPLS label stack: `n` labels, bottom-of-stack on the last unless `no_bottom`.
Bytes mpls(int n, const Bytes& payload, bool no_bottom = false) {
    Bytes h;
    for (int i = 0; i < n; ++i)
        put32(h,
              static_cast<uint32_t>(16 + i) << 12 | (i == n - 1 && !no_bottom ? 0x100u : 0u) | 64);
    return cat(h, payload);
}

// The traffic that was mirrored: a RST with options and payload, over IPv4 or IPv6.
SegSpec inner_spec(bool v6 = false) {
    SegSpec s;
    if (v6) {
        s.src = "fd00::10";
        s.dst = "fd00::20";
    } else {
        s.src = "10.1.2.3";
        s.dst = "10.4.5.6";
    }
    s.sport = 51000;
    s.dport = 443;
    s.seq = 0x11223344;
    s.ack = 0x55667788;
    s.flags = packet::tcpflag::rst | packet::tcpflag::ack;
    s.window = 123;
    s.ttl = 57;
    s.ip_id = 0x4321;
    s.options = {1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8};  // NOP NOP timestamps 9/8
    s.payload = {'b', 'y', 'e'};
    return s;
}

ParseResult parse(const Bytes& f, packet::TcpSegment& seg, const DecapConfig& cfg = {},
                  LinkType link = LinkType::ethernet) {
    // Exact-size heap copy: a read past the frame is a sanitizer error, not luck.
    std::unique_ptr<uint8_t[]> buf(new uint8_t[f.size() ? f.size() : 1]);
    if (!f.empty()) std::memcpy(buf.get(), f.data(), f.size());
    ParseResult r = packet::parse(link, buf.get(), f.size(), seg, cfg);
    if (r.status == ParseStatus::tcp) {
        EXPECT_LE(seg.payload_caplen, seg.payload_len);
        EXPECT_GE(seg.payload, buf.get());
        EXPECT_LE(seg.payload + seg.payload_caplen, buf.get() + f.size());
        seg.payload = nullptr;  // the buffer goes away
    }
    return r;
}
ParseResult parse(const Bytes& f, const DecapConfig& cfg = {}) {
    packet::TcpSegment seg;
    return parse(f, seg, cfg);
}

std::string describe(const ParseResult& r) {
    switch (r.status) {
        case ParseStatus::tcp:
            return "tcp";
        case ParseStatus::ignored:
            return "ignored/" + std::string(packet::ignored_name(r.ignored));
        case ParseStatus::malformed:
            return "malformed/" + std::string(packet::malformed_name(r.malformed));
    }
    return "?";
}
std::string malformed(Malformed m) {
    return "malformed/" + std::string(packet::malformed_name(m));
}
std::string ignored(Ignored i) {
    return "ignored/" + std::string(packet::ignored_name(i));
}

// The fields the tracker, classifier and events read, as a comparable tuple.
std::string fields(const packet::TcpSegment& s) {
    return packet::to_string(s.src, s.family) + ":" + std::to_string(s.sport) + ">" +
           packet::to_string(s.dst, s.family) + ":" + std::to_string(s.dport) +
           " fam=" + std::to_string(s.family) + " flags=" + std::to_string(s.flags) +
           " seq=" + std::to_string(s.seq) + " ack=" + std::to_string(s.ack) +
           " win=" + std::to_string(s.window) + " ttl=" + std::to_string(s.ttl) +
           " id=" + std::to_string(s.ip_id) + " len=" + std::to_string(s.payload_len) + "/" +
           std::to_string(s.payload_caplen) + " ts=" + std::to_string(s.has_ts) + "," +
           std::to_string(s.tsval) + "," + std::to_string(s.tsecr) +
           " sliced=" + std::to_string(s.sliced);
}

struct Case {
    std::string name;
    Bytes frame;
    size_t inner_at;  // where the mirrored frame (Ethernet, or IP for IP-carrying tunnels) starts
    Bytes inner;      // that frame, to compare against
    bool inner_is_ip;
    Encap encap;
    uint8_t tunnels;
    bool has_session;
    uint32_t session;
    uint16_t vlan;  // what TcpSegment::vlan must say
};

// `outer` ends with `inner` (an Ethernet frame or an IP packet): the case records where it starts.
Case make_case(std::string name, const Bytes& inner, bool inner_is_ip, const Bytes& outer,
               Encap encap, uint8_t tunnels, bool has_session, uint32_t session,
               uint16_t vlan = 0) {
    return {std::move(name),
            outer,
            outer.size() - inner.size(),
            inner,
            inner_is_ip,
            encap,
            tunnels,
            has_session,
            session,
            vlan};
}

std::vector<Case> all_cases() {
    std::vector<Case> cs;
    for (const bool v6in : {false, true}) {
        const std::string in = v6in ? "/in6" : "/in4";
        const SegSpec spec = inner_spec(v6in);
        const Bytes fr = frame(spec);
        const Bytes ip = ip_packet(spec);
        SegSpec tagged = spec;
        tagged.vlans = {321};
        const Bytes fr_tagged = frame(tagged);
        const uint16_t ipt = v6in ? kIpv6 : kIpv4;
        for (const bool v6out : {false, true}) {
            const std::string out = v6out ? "v6" : "v4";
            auto L3 = [&](uint8_t proto, const Bytes& p) {
                return eth(v6out ? kIpv6 : kIpv4, v6out ? ipv6(proto, p) : ipv4(proto, p));
            };
            const std::string sfx = "/" + out + in;
            cs.push_back(
                make_case("erspan2" + sfx, fr, false,
                          L3(47, gre(kErspan2, cat(erspan2_hdr(700, 55), fr), {.seq = true})),
                          Encap::erspan2, 1, true, 700, 55));
            cs.push_back(make_case("erspan2-noseq" + sfx, fr, false,
                                   L3(47, gre(kErspan2, cat(erspan2_hdr(1023, 0), fr))),
                                   Encap::erspan2, 1, true, 1023));
            cs.push_back(make_case("erspan2-key-tagged" + sfx, fr_tagged, false,
                                   L3(47, gre(kErspan2, cat(erspan2_hdr(5, 55), fr_tagged),
                                              {.key = true, .seq = true, .key_value = 9})),
                                   Encap::erspan2, 1, true, 5, 321));
            cs.push_back(make_case("erspan1" + sfx, fr, false, L3(47, gre(kErspan2, fr)),
                                   Encap::erspan1, 1, false, 0));
            cs.push_back(
                make_case("erspan3" + sfx, fr, false,
                          L3(47, gre(kErspan3, cat(erspan3_hdr(17, 99, false), fr), {.seq = true})),
                          Encap::erspan3, 1, true, 17, 99));
            cs.push_back(
                make_case("erspan3-platform" + sfx, fr, false,
                          L3(47, gre(kErspan3, cat(erspan3_hdr(1000, 0, true), fr), {.seq = true})),
                          Encap::erspan3, 1, true, 1000));
            cs.push_back(make_case("erspan3-ip" + sfx, ip, true,
                                   L3(47, gre(kErspan3, cat(erspan3_hdr(3, 12, false, 2), ip))),
                                   Encap::erspan3, 1, true, 3, 12));
            cs.push_back(make_case("gre-teb" + sfx, fr, false, L3(47, gre(kTeb, fr)), Encap::gre, 1,
                                   false, 0));
            cs.push_back(make_case(
                "gre-teb-csum-key-seq" + sfx, fr, false,
                L3(47, gre(kTeb, fr,
                           {.csum = true, .key = true, .seq = true, .key_value = 0xfeedf00d})),
                Encap::gre, 1, true, 0xfeedf00d));
            cs.push_back(make_case("gre-ip" + sfx, ip, true,
                                   L3(47, gre(ipt, ip, {.key = true, .key_value = 4})), Encap::gre,
                                   1, true, 4));
            cs.push_back(make_case("gre-csum-ip" + sfx, ip, true,
                                   L3(47, gre(ipt, ip, {.csum = true})), Encap::gre, 1, false, 0));
            cs.push_back(make_case("gre-mpls-ip" + sfx, ip, true, L3(47, gre(kMpls, mpls(2, ip))),
                                   Encap::gre, 1, false, 0));
            cs.push_back(make_case("vxlan" + sfx, fr, false, L3(17, udp(4789, vxlan(0xabcdef, fr))),
                                   Encap::vxlan, 1, true, 0xabcdef));
            cs.push_back(make_case("vxlan-tagged" + sfx, fr_tagged, false,
                                   L3(17, udp(4789, vxlan(42, fr_tagged))), Encap::vxlan, 1, true,
                                   42, 321));
            cs.push_back(make_case("geneve" + sfx, fr, false,
                                   L3(17, udp(6081, geneve(7, kTeb, fr))), Encap::geneve, 1, true,
                                   7));
            cs.push_back(make_case("geneve-options" + sfx, fr, false,
                                   L3(17, udp(6081, geneve(0xffffff, kTeb, fr, 3))), Encap::geneve,
                                   1, true, 0xffffff));
            cs.push_back(make_case("geneve-ip" + sfx, ip, true,
                                   L3(17, udp(6081, geneve(8, ipt, ip, 1))), Encap::geneve, 1, true,
                                   8));
        }
        // Outer side only: MPLS labels, an outer VLAN the inner frame must not inherit.
        cs.push_back(
            make_case("mpls-ip" + in, ip, true, eth(kMpls, mpls(3, ip)), Encap::mpls, 0, false, 0));
        cs.push_back(make_case("mpls-pw-ethernet" + in, fr, false,
                               eth(kMpls, mpls(1, cat(Bytes{0, 0, 0, 5}, fr))), Encap::mpls, 1,
                               false, 0));
        cs.push_back(make_case("vlan-mpls-vxlan" + in, fr, false,
                               eth(kMpls, mpls(2, ipv4(17, udp(4789, vxlan(99, fr)))), 77),
                               Encap::vxlan, 1, true, 99));
        cs.push_back(make_case(
            "vlan-erspan2" + in, fr, false,
            eth(kIpv4, ipv4(47, gre(kErspan2, cat(erspan2_hdr(8), fr), {.seq = true})), 77),
            Encap::erspan2, 1, true, 8));
        // Two tunnels: the mirror encapsulation names the feed, whichever side it is on.
        cs.push_back(make_case("vxlan-in-gre" + in, fr, false,
                               eth(kIpv4, ipv4(47, gre(kIpv4, ipv4(17, udp(4789, vxlan(5, fr)))))),
                               Encap::vxlan, 2, true, 5));
        cs.push_back(make_case(
            "erspan2-over-gre-transport" + in, fr, false,
            eth(kIpv4, ipv4(47, gre(kIpv6, ipv6(47, gre(kErspan2, cat(erspan2_hdr(12), fr),
                                                        {.seq = true}))))),
            Encap::erspan2, 2, true, 12));
        cs.push_back(make_case(
            "erspan3-carrying-vxlan-overlay" + in, fr, false,
            eth(kIpv4,
                ipv4(47, gre(kErspan3, cat(erspan3_hdr(9, 0, false),
                                           eth(kIpv4, ipv4(17, udp(4789, vxlan(600, fr)))))))),
            Encap::erspan3, 2, true, 9));
    }
    return cs;
}

}  // namespace

// Each encapsulation yields exactly the segment the bare inner frame yields.
TEST(Decap, EveryEncapsulationYieldsTheInnerSegment) {
    const auto cases = all_cases();
    ASSERT_GE(cases.size(), 80u);
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        packet::TcpSegment want, got;
        const ParseResult plain =
            parse(c.inner, want, {}, c.inner_is_ip ? LinkType::raw_ip : LinkType::ethernet);
        ASSERT_EQ(plain.status, ParseStatus::tcp);
        EXPECT_EQ(plain.encap, Encap::none);
        EXPECT_EQ(plain.tunnels, 0);
        const ParseResult r = parse(c.frame, got);
        ASSERT_EQ(describe(r), "tcp");
        EXPECT_EQ(fields(got), fields(want));
        EXPECT_EQ(got.ttl, 57);  // the inner header's, not the transport's 255
        EXPECT_EQ(packet::encap_name(r.encap), packet::encap_name(c.encap));
        EXPECT_EQ(r.tunnels, c.tunnels);
        EXPECT_EQ(r.has_session, c.has_session);
        EXPECT_EQ(r.session, c.session);
        EXPECT_EQ(got.vlan, c.vlan);
    }
}

// Cut anywhere before the end of the inner TCP header: counted, never TCP, never out of bounds.
// Cut inside the inner payload: TCP, marked sliced, with only the captured bytes.
TEST(Decap, TruncatedAtEveryOffset) {
    const std::set<std::string> allowed = {
        malformed(Malformed::truncated_l2),
        malformed(Malformed::truncated_ip),
        malformed(Malformed::truncated_tunnel),
        malformed(Malformed::truncated_tcp),
        ignored(Ignored::not_tcp),  // a UDP header cut before its destination port
        ignored(Ignored::not_ip),   // ERSPAN II without sequence number, read as type I
    };
    size_t cuts = 0;
    for (const Case& c : all_cases()) {
        SCOPED_TRACE(c.name);
        const size_t tcp_end = c.frame.size() - 3;  // every inner segment carries 3 bytes
        for (size_t cut = 0; cut < c.frame.size(); ++cut) {
            SCOPED_TRACE("cut at " + std::to_string(cut));
            const Bytes f(c.frame.begin(), c.frame.begin() + static_cast<long>(cut));
            packet::TcpSegment seg;
            const ParseResult r = parse(f, seg);
            ++cuts;
            if (cut < tcp_end) {
                EXPECT_TRUE(allowed.count(describe(r))) << describe(r);
                // The transport was whole: what failed was the tunnel or the frame it carries.
                if (cut >= c.inner_at && c.name.find("noseq") == std::string::npos &&
                    c.tunnels > 0) {
                    EXPECT_EQ(describe(r).rfind("malformed/truncated_", 0), 0u) << describe(r);
                }
            } else {
                ASSERT_EQ(describe(r), "tcp");
                EXPECT_TRUE(seg.sliced);
                EXPECT_EQ(seg.payload_len, 3u);
                EXPECT_EQ(seg.payload_caplen, cut - tcp_end);
            }
        }
    }
    EXPECT_GT(cuts, 10000u);
}

TEST(Decap, WrongVersionsAndFlagsAreMalformed) {
    const SegSpec spec = inner_spec();
    const Bytes fr = frame(spec);
    auto over_gre = [](const Bytes& g) { return eth(kIpv4, ipv4(47, g)); };
    // Option length field alone, options absent.
    auto geneve_optlen = [](uint8_t words, const Bytes& inner) {
        Bytes g = geneve(1, kTeb, inner);
        g[0] = words;
        return g;
    };
    auto over_udp = [](uint16_t port, const Bytes& u, int adj = 0) {
        return eth(kIpv4, ipv4(17, udp(port, u, adj)));
    };
    struct {
        const char* name;
        Bytes frame;
        std::string want;
    } cases[] = {
        {"GRE version 2", over_gre(gre(kTeb, fr, {.version = 2})), malformed(Malformed::bad_gre)},
        {"GRE version 7", over_gre(gre(kTeb, fr, {.version = 7})), malformed(Malformed::bad_gre)},
        {"GRE routing flag", over_gre(gre(kTeb, fr, {.routing = true})),
         malformed(Malformed::bad_gre)},
        {"GRE version 1 (PPTP) is a VPN", over_gre(gre(0x880b, fr, {.key = true, .version = 1})),
         ignored(Ignored::not_tcp)},
        {"ERSPAN II header with version 2",
         over_gre(gre(kErspan2, cat(erspan2_hdr(1, 0, 2), fr), {.seq = true})),
         malformed(Malformed::bad_erspan)},
        {"ERSPAN III header with version 1",
         over_gre(gre(kErspan3, cat(erspan3_hdr(1, 0, false, 0, 1), fr))),
         malformed(Malformed::bad_erspan)},
        // Without GRE sequence number, only a version-1 header is taken for type II: this is
        // a type I frame whose (non-IP) ethertype is read at offset 12.
        {"GRE 0x88BE without sequence, version-2 header",
         over_gre(gre(kErspan2, cat(erspan2_hdr(1, 0, 2), fr))), ignored(Ignored::not_ip)},
        {"ERSPAN III frame type 5", over_gre(gre(kErspan3, cat(erspan3_hdr(1, 0, false, 5), fr))),
         ignored(Ignored::not_ip)},
        {"GRE IPv4 carrying version 6", over_gre(gre(kIpv4, ip_packet(inner_spec(true)))),
         malformed(Malformed::bad_ip_version)},
        {"VXLAN without the I flag", over_udp(4789, vxlan(1, fr, 0x00)),
         malformed(Malformed::bad_vxlan)},
        {"VXLAN-GBP flags with I", over_udp(4789, vxlan(1, fr, 0x88)), "tcp"},
        {"Geneve version 1", over_udp(6081, geneve(1, kTeb, fr, 0, false, 1)),
         malformed(Malformed::bad_geneve)},
        {"Geneve options beyond the datagram", over_udp(6081, geneve_optlen(63, fr)),
         malformed(Malformed::bad_geneve)},
        {"Geneve control (OAM) packet", over_udp(6081, geneve(1, kTeb, fr, 0, true)),
         ignored(Ignored::tunnel_not_followed)},
        {"Geneve carrying ARP", over_udp(6081, geneve(1, 0x0806, Bytes(28, 0))),
         ignored(Ignored::not_ip)},
        {"UDP length 8 (no room for VXLAN)",
         over_udp(4789, vxlan(1, fr), -static_cast<int>(fr.size()) - 8),
         malformed(Malformed::bad_tunnel_length)},
        {"UDP length beyond the IP payload", over_udp(4789, vxlan(1, fr), 1),
         malformed(Malformed::bad_tunnel_length)},
        {"9 MPLS labels, no bottom", eth(kMpls, mpls(9, ip_packet(spec), true)),
         malformed(Malformed::bad_mpls)},
        {"MPLS pseudowire without control word", eth(kMpls, mpls(1, Bytes{0x8c, 1, 2, 3, 4, 5, 6})),
         ignored(Ignored::not_ip)},
        {"inner Ethernet cut at 10 bytes",
         over_udp(4789, vxlan(1, Bytes(fr.begin(), fr.begin() + 10))),
         malformed(Malformed::truncated_tunnel)},
        {"inner VLAN tag cut", over_udp(4789, vxlan(1, eth(0x8100, Bytes{0, 1}))),
         malformed(Malformed::truncated_tunnel)},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(describe(parse(c.frame)), c.want);
    }
    // A UDP length shorter than the IP payload bounds the inner frame: trailing bytes are not it.
    Bytes padded = eth(kIpv4, ipv4(17, cat(udp(4789, vxlan(1, fr)), Bytes(6, 0xee))));
    packet::TcpSegment seg;
    ASSERT_EQ(describe(parse(padded, seg)), "tcp");
    EXPECT_EQ(seg.payload_caplen, 3u);
    EXPECT_FALSE(seg.sliced);
    // ... and bytes after the datagram are not the inner packet's, even when it claims them.
    Bytes longer = fr;
    longer[14 + 3] = static_cast<uint8_t>(longer[14 + 3] + 6);  // inner IPv4 total length + 6
    padded = eth(kIpv4, ipv4(17, cat(udp(4789, vxlan(1, longer)), Bytes(6, 0xee))));
    ASSERT_EQ(describe(parse(padded, seg)), "tcp");
    EXPECT_EQ(seg.payload_len, 9u);
    EXPECT_EQ(seg.payload_caplen, 3u);
    EXPECT_TRUE(seg.sliced);
}

// GRE that is not a mirror (keepalives, PPP, WCCP, ...) and UDP on other ports stay as they were.
TEST(Decap, NonMirrorGreAndUdpStayIgnored) {
    const Bytes fr = frame(inner_spec());
    for (const uint16_t proto : {0x0000, 0x880b, 0x883e, 0x8137, 0x0806}) {
        SCOPED_TRACE(proto);
        const ParseResult r = parse(eth(kIpv4, ipv4(47, gre(proto, fr, {.key = true}))));
        EXPECT_EQ(describe(r), ignored(Ignored::not_tcp));
        EXPECT_EQ(r.encap, Encap::none);
        EXPECT_EQ(r.tunnels, 0);
    }
    for (const uint16_t port : {53, 4790, 8472, 6080, 0}) {
        SCOPED_TRACE(port);
        EXPECT_EQ(describe(parse(eth(kIpv4, ipv4(17, udp(port, vxlan(1, fr)))))),
                  ignored(Ignored::not_tcp));
        EXPECT_EQ(describe(parse(eth(kIpv6, ipv6(17, udp(port, vxlan(1, fr)))))),
                  ignored(Ignored::not_tcp));
    }
    // A fragmented tunnel packet cannot be opened.
    EXPECT_EQ(describe(parse(eth(kIpv4, ipv4(17, udp(4789, vxlan(1, fr)), 0x2000)))),
              ignored(Ignored::ip_fragment));
}

TEST(Decap, PortsAndLimitsAreConfigurable) {
    const Bytes fr = frame(inner_spec());
    const Bytes on8472 = eth(kIpv4, ipv4(17, udp(8472, vxlan(3, fr))));
    const Bytes on4789 = eth(kIpv4, ipv4(17, udp(4789, vxlan(3, fr))));
    const Bytes gen7000 = eth(kIpv4, ipv4(17, udp(7000, geneve(4, kTeb, fr))));
    const Bytes over_gre =
        eth(kIpv4, ipv4(47, gre(kErspan2, cat(erspan2_hdr(1), fr), {.seq = true})));

    EXPECT_EQ(describe(parse(on8472)), ignored(Ignored::not_tcp));
    DecapConfig cfg;
    cfg.vxlan_ports = {8472, 4789};
    ParseResult r = parse(on8472, cfg);
    EXPECT_EQ(describe(r), "tcp");
    EXPECT_EQ(r.encap, Encap::vxlan);
    EXPECT_EQ(r.session, 3u);
    EXPECT_EQ(describe(parse(on4789, cfg)), "tcp");
    cfg.vxlan_ports = {8472};
    EXPECT_EQ(describe(parse(on4789, cfg)), ignored(Ignored::not_tcp));

    EXPECT_EQ(describe(parse(gen7000)), ignored(Ignored::not_tcp));
    cfg.geneve_ports = {0, 0, 0, 7000};
    r = parse(gen7000, cfg);
    EXPECT_EQ(describe(r), "tcp");
    EXPECT_EQ(r.encap, Encap::geneve);
    // A port in both lists is VXLAN (the lead's config check should refuse the overlap).
    cfg.vxlan_ports = {7000};
    EXPECT_EQ(describe(parse(gen7000, cfg)), malformed(Malformed::bad_vxlan));

    DecapConfig no_gre;
    no_gre.gre = false;
    EXPECT_EQ(describe(parse(over_gre, no_gre)), ignored(Ignored::not_tcp));
    EXPECT_EQ(describe(parse(on4789, no_gre)), "tcp");

    DecapConfig none;
    none.max_tunnels = 0;
    r = parse(over_gre, none);
    EXPECT_EQ(describe(r), ignored(Ignored::tunnel_not_followed));
    EXPECT_EQ(r.tunnels, 0);
    // MPLS labels are no tunnel: still peeled.
    EXPECT_EQ(describe(parse(eth(kMpls, mpls(2, ip_packet(inner_spec()))), none)), "tcp");
}

// Two tunnels are followed by default; a third is counted, not followed.
TEST(Decap, NestingIsBounded) {
    const Bytes fr = frame(inner_spec());
    const Bytes two =
        eth(kIpv4, ipv4(17, udp(4789, vxlan(1, eth(kIpv4, ipv4(17, udp(4789, vxlan(2, fr))))))));
    const Bytes three = eth(
        kIpv4,
        ipv4(47,
             gre(kIpv4,
                 ipv4(17,
                      udp(4789, vxlan(1, eth(kIpv4, ipv4(17, udp(6081, geneve(2, kTeb, fr))))))))));
    ParseResult r = parse(two);
    EXPECT_EQ(describe(r), "tcp");
    EXPECT_EQ(r.tunnels, 2);
    EXPECT_EQ(r.session, 1u);  // the outer VXLAN: the mirror, the inner one the tenant overlay
    r = parse(three);
    EXPECT_EQ(describe(r), ignored(Ignored::tunnel_not_followed));
    EXPECT_EQ(r.tunnels, 2);
    EXPECT_EQ(r.encap, Encap::vxlan);
    DecapConfig deeper;
    deeper.max_tunnels = 3;
    r = parse(three, deeper);
    EXPECT_EQ(describe(r), "tcp");
    EXPECT_EQ(r.tunnels, 3);

    // Pseudowires inside tunnels inside pseudowires: each counts, the walk ends.
    Bytes f = fr;
    for (int i = 0; i < 40; ++i) f = eth(kMpls, mpls(1, cat(Bytes{0, 0, 0, 0}, f)));
    EXPECT_EQ(describe(parse(f)), ignored(Ignored::tunnel_not_followed));
    DecapConfig most;
    most.max_tunnels = 255;
    EXPECT_EQ(describe(parse(f, most)), "tcp");
}

TEST(Decap, SessionIdsAndVlans) {
    const Bytes fr = frame(inner_spec());
    SegSpec qinq = inner_spec();
    qinq.vlans = {10, 20};
    // ERSPAN session ids are 10 bits: the COS/En/T bits around them are not part of it.
    Bytes h = erspan2_hdr(0x3ff, 4095);
    h[2] |= 0xfc;
    ParseResult r;
    packet::TcpSegment seg;
    r = parse(eth(kIpv4, ipv4(47, gre(kErspan2, cat(h, fr), {.seq = true}))), seg);
    ASSERT_EQ(describe(r), "tcp");
    EXPECT_EQ(r.session, 0x3ffu);
    EXPECT_EQ(seg.vlan, 4095);
    // The frame's own outermost tag wins over the ERSPAN header's VLAN.
    r = parse(
        eth(kIpv4, ipv4(47, gre(kErspan2, cat(erspan2_hdr(1, 7), frame(qinq)), {.seq = true}))),
        seg);
    ASSERT_EQ(describe(r), "tcp");
    EXPECT_EQ(seg.vlan, 10);
    // VXLAN/Geneve VNIs are 24 bits; the reserved byte after them is not part of it.
    Bytes v = vxlan(0x123456, fr);
    v[7] = 0xff;
    r = parse(eth(kIpv4, ipv4(17, udp(4789, v)), 900), seg);
    ASSERT_EQ(describe(r), "tcp");
    EXPECT_EQ(r.session, 0x123456u);
    EXPECT_EQ(seg.vlan, 0);  // the transport's VLAN 900 is not the traffic's
    r = parse(eth(kIpv4, ipv4(47, gre(kIpv4, ip_packet(inner_spec()))), 900), seg);
    ASSERT_EQ(describe(r), "tcp");
    EXPECT_EQ(seg.vlan, 0);  // nor when the tunnel carries a bare IP packet
    // Without a tunnel, the outer tag is the traffic's, as before.
    SegSpec tagged = inner_spec();
    tagged.vlans = {900};
    r = parse(frame(tagged), seg);
    EXPECT_EQ(seg.vlan, 900);
    EXPECT_EQ(r.encap, Encap::none);
    EXPECT_FALSE(r.has_session);
    // A GRE key is the session of plain GRE; ERSPAN's own id wins over its GRE key.
    r = parse(eth(kIpv4, ipv4(47, gre(kErspan2, cat(erspan2_hdr(33), fr),
                                      {.key = true, .seq = true, .key_value = 5}))));
    EXPECT_EQ(r.session, 33u);
    // What was peeled is reported for frames that are not tracked, too.
    r = parse(eth(kIpv4, ipv4(17, udp(4789, vxlan(77, eth(0x0806, Bytes(28, 0)))))));
    EXPECT_EQ(describe(r), ignored(Ignored::not_ip));
    EXPECT_EQ(r.encap, Encap::vxlan);
    EXPECT_EQ(r.session, 77u);
    r = parse(eth(kIpv4, ipv4(17, udp(4789, vxlan(78, Bytes(fr.begin(), fr.begin() + 30))))));
    EXPECT_EQ(describe(r), malformed(Malformed::truncated_ip));
    EXPECT_EQ(r.encap, Encap::vxlan);
}

// The names are metric labels: existing ones never change, new ones are appended.
TEST(Decap, LabelNamesAreStable) {
    const char* const before[] = {"truncated_l2",        "vlan_stack_too_deep", "truncated_ip",
                                  "bad_ip_version",      "bad_ipv4_ihl",        "bad_ip_length",
                                  "bad_ipv6_ext_header", "truncated_tcp",       "bad_tcp_offset",
                                  "bad_tcp_option"};
    for (size_t i = 0; i < std::size(before); ++i)
        EXPECT_EQ(packet::malformed_name(static_cast<Malformed>(i)), before[i]);
    EXPECT_EQ(packet::ignored_name(Ignored::not_ip), "not_ip");
    EXPECT_EQ(packet::ignored_name(Ignored::not_tcp), "not_tcp");
    EXPECT_EQ(packet::ignored_name(Ignored::ip_fragment), "ip_fragment");
    std::string encaps;
    for (size_t i = 0; i < packet::kEncapCount; ++i)
        encaps += std::string(packet::encap_name(static_cast<Encap>(i))) + " ";
    EXPECT_EQ(encaps, "none mpls gre erspan1 erspan2 erspan3 vxlan geneve ");
}

// Mutated tunnel frames: never a crash or an overread (see parse()); payload inside the frame.
TEST(Decap, MutatedTunnelFramesNeverCrash) {
    std::mt19937 rng(4789);
    const auto cases = all_cases();
    size_t tcp = 0, n = 0;
    for (int i = 0; i < 150000; ++i) {
        Bytes f = cases[rng() % cases.size()].frame;
        const int flips = 1 + static_cast<int>(rng() % 4);
        // Aim most flips at the headers, where the decisions are.
        for (int k = 0; k < flips; ++k)
            f[rng() % std::min<size_t>(f.size(), 120)] = static_cast<uint8_t>(rng());
        if (rng() % 3 == 0) f.resize(rng() % (f.size() + 1));
        packet::TcpSegment seg;
        DecapConfig cfg;
        cfg.max_tunnels = static_cast<uint8_t>(rng() % 4);
        tcp += parse(f, seg, cfg).status == ParseStatus::tcp;
        ++n;
    }
    EXPECT_GT(tcp, n / 10);
    EXPECT_LT(tcp, n);
}
