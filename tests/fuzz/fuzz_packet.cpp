// libFuzzer target: the L2-L4 parser (lib/packet) on hostile frames, over every link type and
// mirror tunnel. Input: byte 0 picks the link type (bits 0-2, modulo 6) and the decap settings
// (bits 3-7; 0 = the defaults), the rest is the captured frame. The frame is copied into a heap
// buffer of exactly its length, so ASan reports a read even one byte past the frame (a larger
// buffer, or libFuzzer's own, would hide an overread by the first byte).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "flow/flow_key.hpp"
#include "packet/packet.hpp"

using namespace rstmon;

namespace {

constexpr packet::LinkType kLinks[] = {
    packet::LinkType::ethernet,          packet::LinkType::linux_sll,
    packet::LinkType::linux_sll2,        packet::LinkType::raw_ip,
    packet::LinkType::bsd_loopback_host, packet::LinkType::bsd_loopback_net,
};
constexpr size_t kLinkCount = sizeof kLinks / sizeof kLinks[0];

// A broken invariant is a bug like a crash: abort so libFuzzer saves the input.
#define FUZZ_CHECK(cond)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            std::fprintf(stderr, "fuzz_packet: invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                         __LINE__);                                                              \
            std::abort();                                                                        \
        }                                                                                        \
    } while (0)

// Byte 0, bits 3-7: tunnel nesting bound (2, 3, 0, 1), GRE off, a second VXLAN/Geneve port
// each, every UDP port slot unused. Zero bits give the shipped defaults.
packet::DecapConfig decap_from(uint8_t b) {
    packet::DecapConfig d;
    d.max_tunnels = static_cast<uint8_t>(((b >> 3) & 3) ^ 2);
    d.gre = (b & 0x20) == 0;
    if (b & 0x40) {
        d.vxlan_ports[1] = 8472;  // Linux's historical VXLAN port
        d.geneve_ports[1] = 6082;
    }
    if (b & 0x80) {
        d.vxlan_ports.fill(0);
        d.geneve_ports.fill(0);
    }
    return d;
}

void check_tunnels(const packet::ParseResult& r, const packet::DecapConfig& d) {
    FUZZ_CHECK(static_cast<size_t>(r.encap) < packet::kEncapCount);
    FUZZ_CHECK(!packet::encap_name(r.encap).empty());
    FUZZ_CHECK(r.tunnels <= d.max_tunnels);
    // Nothing peeled, nothing to name; a tunnel entered always names the feed (MPLS labels alone
    // name it without being a tunnel).
    if (r.encap == packet::Encap::none) FUZZ_CHECK(r.tunnels == 0 && !r.has_session);
    if (r.tunnels > 0) FUZZ_CHECK(r.encap != packet::Encap::none);
    if (!d.gre)
        FUZZ_CHECK(r.encap != packet::Encap::gre && r.encap != packet::Encap::erspan1 &&
                   r.encap != packet::Encap::erspan2 && r.encap != packet::Encap::erspan3);
    switch (r.encap) {
        case packet::Encap::erspan2:
        case packet::Encap::erspan3:
            FUZZ_CHECK(r.has_session && r.session <= 0x3ff);  // 10-bit session id
            break;
        case packet::Encap::vxlan:
        case packet::Encap::geneve:
            FUZZ_CHECK(r.has_session && r.session <= 0xffffff);  // 24-bit VNI
            break;
        case packet::Encap::gre:
            break;  // the key is optional
        default:
            FUZZ_CHECK(!r.has_session);
    }
}

bool same(const packet::TcpSegment& a, const packet::TcpSegment& b) {
    return a.src == b.src && a.dst == b.dst && a.family == b.family && a.flags == b.flags &&
           a.ttl == b.ttl && a.wscale == b.wscale && a.sport == b.sport && a.dport == b.dport &&
           a.window == b.window && a.ip_id == b.ip_id && a.mss == b.mss && a.vlan == b.vlan &&
           a.seq == b.seq && a.ack == b.ack && a.payload_len == b.payload_len &&
           a.payload_caplen == b.payload_caplen && a.has_ts == b.has_ts &&
           (!a.has_ts || (a.tsval == b.tsval && a.tsecr == b.tsecr)) &&
           a.sack_permitted == b.sack_permitted && a.sliced == b.sliced && a.payload == b.payload;
}

void check_segment(const packet::TcpSegment& s, const uint8_t* frame, size_t len) {
    FUZZ_CHECK(s.family == 4 || s.family == 6);
    FUZZ_CHECK(s.wscale == 0xff || s.wscale <= 14);  // RFC 7323 cap, 0xff = absent
    FUZZ_CHECK(s.vlan <= 0x0fff);
    // What was captured can never exceed what was sent, and "sliced" means exactly that the frame
    // holds less of the segment than the IP length announced.
    FUZZ_CHECK(s.payload_caplen <= s.payload_len);
    FUZZ_CHECK(s.sliced == (s.payload_caplen < s.payload_len));
    // The payload view lies inside the frame. Reading it lets ASan confirm that.
    FUZZ_CHECK(s.payload != nullptr);
    FUZZ_CHECK(s.payload >= frame && s.payload + s.payload_caplen <= frame + len);
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < s.payload_caplen; ++i) sink = sink ^ s.payload[i];
    (void)sink;
    FUZZ_CHECK(!packet::to_string(s.src, s.family).empty());
    FUZZ_CHECK(!packet::to_string(s.dst, s.family).empty());

    // Both directions of a connection share one flow key, from opposite sides.
    flow::FlowKey k1, k2;
    const tcp::Side side = flow::make_key(s, k1);
    packet::TcpSegment rev = s;
    std::swap(rev.src, rev.dst);
    std::swap(rev.sport, rev.dport);
    const tcp::Side rside = flow::make_key(rev, k2);
    FUZZ_CHECK(side <= 1 && rside <= 1);
    FUZZ_CHECK(std::memcmp(&k1, &k2, sizeof k1) == 0);
    FUZZ_CHECK(flow::flow_hash(k1) == flow::flow_hash(k2));
    // Only a segment from an endpoint to itself lies on both sides at once.
    if (!(s.src == s.dst && s.sport == s.dport)) FUZZ_CHECK(side != rside);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const packet::LinkType link = kLinks[(data[0] & 7) % kLinkCount];
    const packet::DecapConfig decap = decap_from(data[0]);
    const size_t len = size - 1;
    // new[0] is a valid zero-byte allocation: any read through it is reported.
    std::unique_ptr<uint8_t[]> frame(new uint8_t[len]);
    if (len) std::memcpy(frame.get(), data + 1, len);

    packet::TcpSegment seg;
    const packet::ParseResult r = packet::parse(link, frame.get(), len, seg, decap);
    switch (r.status) {
        case packet::ParseStatus::tcp:
            check_segment(seg, frame.get(), len);
            break;
        case packet::ParseStatus::ignored:
            FUZZ_CHECK(static_cast<size_t>(r.ignored) < packet::kIgnoredCount);
            FUZZ_CHECK(!packet::ignored_name(r.ignored).empty());
            break;
        case packet::ParseStatus::malformed:
            FUZZ_CHECK(static_cast<size_t>(r.malformed) < packet::kMalformedCount);
            FUZZ_CHECK(!packet::malformed_name(r.malformed).empty());
            break;
        default:
            FUZZ_CHECK(!"parse returned an unknown status");
    }
    FUZZ_CHECK(!packet::link_type_name(link).empty());
    check_tunnels(r, decap);
    // RSTMON_FUZZ_TRACE=1: what the parser made of the frame (to read a seed or a crash).
    static const bool trace = std::getenv("RSTMON_FUZZ_TRACE") != nullptr;
    if (trace)
        std::printf(
            "%s %s encap=%s tunnels=%u session=%s%u\n", packet::link_type_name(link).data(),
            r.status == packet::ParseStatus::tcp       ? "tcp"
            : r.status == packet::ParseStatus::ignored ? packet::ignored_name(r.ignored).data()
                                                       : packet::malformed_name(r.malformed).data(),
            packet::encap_name(r.encap).data(), r.tunnels, r.has_session ? "" : "-", r.session);

    // The parser is a pure function of the bytes: a second parse into a dirty segment (as the
    // worker reuses its scratch array) must agree with the first.
    packet::TcpSegment again;
    std::memset(static_cast<void*>(&again), 0xa5, sizeof again);
    again.has_ts = again.sack_permitted = again.sliced = true;  // stale, but valid bools
    const packet::ParseResult r2 = packet::parse(link, frame.get(), len, again, decap);
    FUZZ_CHECK(r2.status == r.status && r2.encap == r.encap && r2.tunnels == r.tunnels &&
               r2.has_session == r.has_session && r2.session == r.session);
    if (r.status == packet::ParseStatus::tcp) FUZZ_CHECK(same(seg, again));
    if (r.status == packet::ParseStatus::malformed) FUZZ_CHECK(r2.malformed == r.malformed);
    if (r.status == packet::ParseStatus::ignored) FUZZ_CHECK(r2.ignored == r.ignored);
    return 0;
}
