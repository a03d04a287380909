#include "packet/packet.hpp"

#include <arpa/inet.h>

#include <bit>
#include <cstddef>
#include <cstring>

namespace rstmon::packet {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100, kEthQinQ = 0x88a8, kEthVlanOld = 0x9100;
constexpr uint16_t kEthMpls = 0x8847, kEthMplsMulticast = 0x8848;
constexpr uint16_t kEthBridged = 0x6558;  // transparent Ethernet bridging: an Ethernet frame
constexpr uint16_t kGreErspan12 = 0x88be, kGreErspan3 = 0x22eb;
constexpr uint16_t kGreChecksum = 0x8000, kGreRouting = 0x4000, kGreKey = 0x2000, kGreSeq = 0x1000;
constexpr uint8_t kIpTcp = 6, kIpUdp = 17, kIpGre = 47;
constexpr int kMaxVlanTags = 4;
constexpr int kMaxMplsLabels = 8;
constexpr int kMaxIpv6ExtHeaders = 8;

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t rd24(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) << 16 | static_cast<uint32_t>(p[1]) << 8 | p[2];
}
inline uint32_t rd32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
           static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// How a layer ended the parse: the layer functions return it in one register; parse_into()
// adds what the walk peeled once, at the end. One 32-bit word (status | malformed << 8 |
// ignored << 16), not a struct of three bytes: GCC returned that by storing it byte by byte and
// reloading it whole, a failed store forward on every frame's way out of the parser.
struct Verdict {
    uint32_t packed;
    constexpr Verdict(ParseStatus s, Malformed m, Ignored i)
        : packed(static_cast<uint32_t>(s) | static_cast<uint32_t>(m) << 8 |
                 static_cast<uint32_t>(i) << 16) {}
    ParseStatus status() const { return static_cast<ParseStatus>(packed & 0xff); }
    Malformed malformed() const { return static_cast<Malformed>((packed >> 8) & 0xff); }
    Ignored ignored() const { return static_cast<Ignored>((packed >> 16) & 0xff); }
};

Verdict malformed(Malformed m) { return {ParseStatus::malformed, m, Ignored::not_ip}; }
Verdict ignored(Ignored i) { return {ParseStatus::ignored, Malformed::truncated_l2, i}; }

// How well a layer names the mirror feed, for ParseResult::encap: mirror encapsulations first,
// then GRE, then MPLS (a transport, not a mirror).
int mirror_rank(Encap e) {
    switch (e) {
        case Encap::none: return 0;
        case Encap::mpls: return 1;
        case Encap::gre: return 2;
        default: return 3;
    }
}

// One parse across the layers it peels: the decap settings, the segment being filled and what
// has been peeled so far. Layers are visited outermost first.
struct Walk {
    const DecapConfig& cfg;
    TcpSegment& s;
    Encap encap = Encap::none;
    uint8_t tunnels = 0;
    bool has_session = false;
    uint32_t session = 0;

    // Keeps the outermost layer of the best rank (a later, inner one of the same rank is the
    // traffic's own tunnel, not the mirror's).
    void note(Encap e, bool has_id, uint32_t id) {
        if (mirror_rank(e) <= mirror_rank(encap)) return;
        encap = e;
        has_session = has_id;
        session = id;
    }
    // Opens one more tunnel unless that passes the nesting bound. A tunnel's contents start
    // untagged: the transport's VLAN is not the traffic's.
    bool enter(Encap e, bool has_id, uint32_t id) {
        if (tunnels >= cfg.max_tunnels) return false;
        ++tunnels;
        note(e, has_id, id);
        s.vlan = 0;
        return true;
    }
};

// TCP options: only what the tracker needs. An option whose length overruns the header is malformed.
bool parse_tcp_options(const uint8_t* p, size_t n, TcpSegment& s) {
    size_t i = 0;
    while (i < n) {
        const uint8_t kind = p[i];
        if (kind == 0) break;  // end of options
        if (kind == 1) {       // NOP
            ++i;
            continue;
        }
        if (i + 1 >= n) return false;
        const uint8_t olen = p[i + 1];
        if (olen < 2 || i + olen > n) return false;
        switch (kind) {
            case 2:
                if (olen == 4) s.mss = rd16(p + i + 2);
                break;
            case 3:
                if (olen == 3) s.wscale = p[i + 2] > 14 ? 14 : p[i + 2];  // RFC 7323 caps at 14
                break;
            case 4:
                s.sack_permitted = true;
                break;
            case 8:
                if (olen == 10) {
                    s.has_ts = true;
                    s.tsval = rd32(p + i + 2);
                    s.tsecr = rd32(p + i + 6);
                }
                break;
            default:
                break;
        }
        i += olen;
    }
    return true;
}

// `l4len` is the IP payload length the sender claims; `avail` how much of it was captured.
Verdict parse_tcp(const uint8_t* p, size_t avail, size_t l4len, TcpSegment& s) {
    if (l4len < 20) return malformed(Malformed::bad_ip_length);  // IP length leaves no TCP header
    if (avail < 20) return malformed(Malformed::truncated_tcp);
    const size_t doff = static_cast<size_t>(p[12] >> 4) * 4;
    if (doff < 20 || doff > l4len) return malformed(Malformed::bad_tcp_offset);
    if (doff > avail) return malformed(Malformed::truncated_tcp);
    s.sport = rd16(p);
    s.dport = rd16(p + 2);
    s.seq = rd32(p + 4);
    s.ack = rd32(p + 8);
    s.flags = p[13];
    s.window = rd16(p + 14);
    s.checksum = rd16(p + 16);
    if (!parse_tcp_options(p + 20, doff - 20, s)) return malformed(Malformed::bad_tcp_option);
    s.payload_len = static_cast<uint32_t>(l4len - doff);
    s.payload_caplen = static_cast<uint32_t>(avail - doff);
    s.payload = p + doff;
    return {ParseStatus::tcp, Malformed::truncated_l2, Ignored::not_ip};
}

Verdict parse_ethertype(Walk& w, uint16_t type, const uint8_t* p, size_t len,
                            Malformed truncated);
Verdict parse_ip_payload(Walk& w, uint8_t proto, const uint8_t* p, size_t avail, size_t l4len);

Verdict parse_ipv4(Walk& w, const uint8_t* p, size_t len) {
    if (len < 20) return malformed(Malformed::truncated_ip);
    if ((p[0] >> 4) != 4) return malformed(Malformed::bad_ip_version);
    const size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
    if (ihl < 20 || ihl > len) return malformed(Malformed::bad_ipv4_ihl);
    size_t total = rd16(p + 2);
    // A zero total length is what a capture on the sending host shows for TSO super-frames
    // (the NIC fills it in later): the frame itself is the datagram.
    if (total == 0) total = len;
    if (total < ihl) return malformed(Malformed::bad_ip_length);
    const uint16_t frag = rd16(p + 6);
    if ((frag & 0x3fff) != 0) return ignored(Ignored::ip_fragment);  // MF set or offset != 0
    // Ethernet padding makes frames longer than the datagram: trust the IP length, but never read
    // past the frame. A frame shorter than the IP length was sliced (snaplen) or lies.
    const size_t avail = (total < len ? total : len) - ihl;
    if (p[9] != kIpTcp) return parse_ip_payload(w, p[9], p + ihl, avail, total - ihl);
    TcpSegment& s = w.s;
    s.family = 4;
    s.ttl = p[8];
    s.ip_id = rd16(p + 4);
    // Each address in one 16-byte store (the 4 bytes, then zeros): the flow key and the
    // duplicate signature read it back at once, which a zeroing store followed by a 4-byte one
    // could not forward to those loads (a stall of a dozen cycles per frame).
    auto put_v4 = [](IpAddr& a, const uint8_t* from) {
        using Lanes = uint32_t __attribute__((vector_size(16)));
        uint32_t v;
        std::memcpy(&v, from, 4);
        const Lanes all = {v, 0, 0, 0};  // lane 0 first in memory: the wire bytes, then zeros
        std::memcpy(a.b.data(), &all, 16);
    };
    put_v4(s.src, p + 12);
    put_v4(s.dst, p + 16);
    s.sliced = total > len;
    return parse_tcp(p + ihl, avail, total - ihl, s);
}

Verdict parse_ipv6(Walk& w, const uint8_t* p, size_t len) {
    if (len < 40) return malformed(Malformed::truncated_ip);
    if ((p[0] >> 4) != 6) return malformed(Malformed::bad_ip_version);
    const size_t payload = rd16(p + 4);  // jumbograms (0) are not TCP over Ethernet: checked below
    uint8_t next = p[6];
    const size_t total = 40 + payload;
    const size_t end = total < len ? total : len;  // bytes we may read
    size_t off = 40;
    for (int n = 0;; ++n) {
        switch (next) {
            case kIpTcp: {
                if (off > total) return malformed(Malformed::bad_ip_length);
                if (off > end) return malformed(Malformed::truncated_tcp);
                TcpSegment& s = w.s;
                s.family = 6;
                s.ttl = p[7];
                s.ip_id = 0;
                std::memcpy(s.src.b.data(), p + 8, 16);
                std::memcpy(s.dst.b.data(), p + 24, 16);
                s.sliced = total > len;
                return parse_tcp(p + off, end - off, total - off, s);
            }
            case kIpUdp:
            case kIpGre: {  // off <= total: checked after every extension header
                const size_t at = off < end ? off : end;
                return parse_ip_payload(w, next, p + at, end - at, total - off);
            }
            case 0:    // hop-by-hop
            case 43:   // routing
            case 60:   // destination options
            case 135:  // mobility
            case 139:  // HIP
            case 140: {  // shim6
                if (n >= kMaxIpv6ExtHeaders || off + 8 > end)
                    return malformed(Malformed::bad_ipv6_ext_header);
                const size_t hlen = (static_cast<size_t>(p[off + 1]) + 1) * 8;
                next = p[off];
                off += hlen;
                if (off > total) return malformed(Malformed::bad_ipv6_ext_header);
                break;
            }
            case 51: {  // AH: length in 4-octet units minus 2
                if (n >= kMaxIpv6ExtHeaders || off + 8 > end)
                    return malformed(Malformed::bad_ipv6_ext_header);
                const size_t hlen = (static_cast<size_t>(p[off + 1]) + 2) * 4;
                next = p[off];
                off += hlen;
                if (off > total) return malformed(Malformed::bad_ipv6_ext_header);
                break;
            }
            case 44: {  // fragment
                if (n >= kMaxIpv6ExtHeaders || off + 8 > end)
                    return malformed(Malformed::bad_ipv6_ext_header);
                const uint16_t fo = rd16(p + off + 2);
                if ((fo & 0xfff9) != 0) return ignored(Ignored::ip_fragment);  // offset or M set
                next = p[off];
                off += 8;  // an atomic fragment (RFC 6946): go on
                break;
            }
            default:
                return ignored(Ignored::not_tcp);  // ESP, no-next-header, ICMPv6, ...
        }
    }
}

Verdict parse_ip(Walk& w, const uint8_t* p, size_t len, Malformed truncated) {
    if (len < 1) return malformed(truncated);
    switch (p[0] >> 4) {
        case 4:
            return parse_ipv4(w, p, len);
        case 6:
            return parse_ipv6(w, p, len);
        default:
            return malformed(Malformed::bad_ip_version);
    }
}

// An Ethernet frame carried by a tunnel. `carried_vlan` is the VLAN its tunnel header recorded
// (ERSPAN), used when the frame itself is untagged.
Verdict parse_inner_ethernet(Walk& w, const uint8_t* p, size_t len, uint16_t carried_vlan) {
    if (len < 14) return malformed(Malformed::truncated_tunnel);
    w.s.vlan = carried_vlan;
    return parse_ethertype(w, rd16(p + 12), p + 14, len - 14, Malformed::truncated_tunnel);
}

// MPLS label stack up to its bottom label, then what the labels do not name: the first nibble
// tells IPv4 (4), IPv6 (6) or a pseudowire control word (0, RFC 4385) before an Ethernet frame.
Verdict parse_mpls(Walk& w, const uint8_t* p, size_t len) {
    for (int n = 0;; ++n) {
        if (n >= kMaxMplsLabels) return malformed(Malformed::bad_mpls);
        if (len < 4) return malformed(Malformed::truncated_tunnel);
        const bool bottom = (p[2] & 0x01) != 0;
        p += 4;
        len -= 4;
        if (bottom) break;
    }
    w.note(Encap::mpls, false, 0);
    if (len < 1) return malformed(Malformed::truncated_tunnel);
    switch (p[0] >> 4) {
        case 4:
            return parse_ipv4(w, p, len);
        case 6:
            return parse_ipv6(w, p, len);
        case 0:  // an Ethernet pseudowire: a tunnel like any other for the nesting bound
            if (len < 4) return malformed(Malformed::truncated_tunnel);
            if (!w.enter(Encap::mpls, false, 0)) return ignored(Ignored::tunnel_not_followed);
            return parse_inner_ethernet(w, p + 4, len - 4, 0);
        default:
            return ignored(Ignored::not_ip);  // a pseudowire without control word, OAM, ...
    }
}

bool starts_l3(uint16_t type) {
    return type == kEthIpv4 || type == kEthIpv6 || type == kEthVlan || type == kEthQinQ ||
           type == kEthVlanOld || type == kEthMpls || type == kEthMplsMulticast;
}

// GRE protocol 0x88BE. By the ERSPAN draft, type II sets the GRE sequence number and type I has
// neither it nor an ERSPAN header. Some senders emit type II headers without the sequence
// number: without it, the header is taken only when the frame read as type I does not start an
// IP/VLAN/MPLS frame and the frame read as type II (version 1) does.
Verdict parse_erspan_88be(Walk& w, const uint8_t* p, size_t avail, bool has_seq) {
    const bool type2 =
        has_seq || ((avail < 14 || !starts_l3(rd16(p + 12))) && avail >= 8 + 14 &&
                    (p[0] >> 4) == 1 && starts_l3(rd16(p + 8 + 12)));
    if (!type2) {
        if (!w.enter(Encap::erspan1, false, 0)) return ignored(Ignored::tunnel_not_followed);
        return parse_inner_ethernet(w, p, avail, 0);
    }
    if (avail < 8) return malformed(Malformed::truncated_tunnel);
    if ((p[0] >> 4) != 1) return malformed(Malformed::bad_erspan);
    const uint16_t vlan = rd16(p) & 0x0fff;
    if (!w.enter(Encap::erspan2, true, rd16(p + 2) & 0x03ffu))
        return ignored(Ignored::tunnel_not_followed);
    return parse_inner_ethernet(w, p + 8, avail - 8, vlan);
}

// GRE protocol 0x22EB: a 12-byte header, 8 more when the O bit announces the platform-specific
// subheader; the frame type says whether an Ethernet frame (0) or an IP packet (2) follows.
Verdict parse_erspan3(Walk& w, const uint8_t* p, size_t avail) {
    if (avail < 12) return malformed(Malformed::truncated_tunnel);
    if ((p[0] >> 4) != 2) return malformed(Malformed::bad_erspan);
    const size_t hlen = (p[11] & 0x01) ? 20 : 12;
    if (avail < hlen) return malformed(Malformed::truncated_tunnel);
    const uint16_t vlan = rd16(p) & 0x0fff;
    if (!w.enter(Encap::erspan3, true, rd16(p + 2) & 0x03ffu))
        return ignored(Ignored::tunnel_not_followed);
    switch ((p[10] >> 2) & 0x1f) {
        case 0:
            return parse_inner_ethernet(w, p + hlen, avail - hlen, vlan);
        case 2:
            w.s.vlan = vlan;
            return parse_ip(w, p + hlen, avail - hlen, Malformed::truncated_tunnel);
        default:
            return ignored(Ignored::not_ip);
    }
}

// GRE (RFC 2784/2890): optional checksum, key and sequence number fields shift the payload.
// Version 1 is PPTP's enhanced GRE: VPN traffic, not ours. Protocols we do not open stay
// `not_tcp`, as any GRE did before decapsulation existed.
Verdict parse_gre(Walk& w, const uint8_t* p, size_t avail) {
    if (avail < 4) return malformed(Malformed::truncated_tunnel);
    const uint16_t flags = rd16(p);
    const unsigned version = flags & 0x07;
    if (version == 1) return ignored(Ignored::not_tcp);
    if (version != 0 || (flags & kGreRouting) != 0) return malformed(Malformed::bad_gre);
    size_t hlen = 4;
    if (flags & kGreChecksum) hlen += 4;
    const bool has_key = (flags & kGreKey) != 0;
    uint32_t key = 0;
    if (has_key) {
        if (avail < hlen + 4) return malformed(Malformed::truncated_tunnel);
        key = rd32(p + hlen);
        hlen += 4;
    }
    if (flags & kGreSeq) hlen += 4;
    if (avail < hlen) return malformed(Malformed::truncated_tunnel);
    const uint16_t proto = rd16(p + 2);
    p += hlen;
    avail -= hlen;
    switch (proto) {
        case kGreErspan12:
            return parse_erspan_88be(w, p, avail, (flags & kGreSeq) != 0);
        case kGreErspan3:
            return parse_erspan3(w, p, avail);
        case kEthBridged:
        case kEthIpv4:
        case kEthIpv6:
        case kEthMpls:
        case kEthMplsMulticast:
            break;
        default:
            return ignored(Ignored::not_tcp);
    }
    if (!w.enter(Encap::gre, has_key, key)) return ignored(Ignored::tunnel_not_followed);
    switch (proto) {
        case kEthBridged:
            return parse_inner_ethernet(w, p, avail, 0);
        case kEthIpv4:
            return parse_ipv4(w, p, avail);
        case kEthIpv6:
            return parse_ipv6(w, p, avail);
        default:
            return parse_mpls(w, p, avail);
    }
}

// VXLAN (RFC 7348): 8 bytes, the I flag vouches for the VNI; an Ethernet frame follows.
Verdict parse_vxlan(Walk& w, const uint8_t* p, size_t avail) {
    if (avail < 8) return malformed(Malformed::truncated_tunnel);
    if ((p[0] & 0x08) == 0) return malformed(Malformed::bad_vxlan);
    if (!w.enter(Encap::vxlan, true, rd24(p + 4))) return ignored(Ignored::tunnel_not_followed);
    return parse_inner_ethernet(w, p + 8, avail - 8, 0);
}

// Geneve (RFC 8926): 8 bytes plus options; the protocol type names what follows. `datagram` is
// what the UDP length leaves for it, `avail` what the frame holds of that.
Verdict parse_geneve(Walk& w, const uint8_t* p, size_t avail, size_t datagram) {
    if (avail < 8) return malformed(Malformed::truncated_tunnel);
    if ((p[0] >> 6) != 0) return malformed(Malformed::bad_geneve);
    const size_t hlen = 8 + static_cast<size_t>(p[0] & 0x3f) * 4;
    if (hlen > datagram) return malformed(Malformed::bad_geneve);
    if (hlen > avail) return malformed(Malformed::truncated_tunnel);
    if (p[1] & 0x80) return ignored(Ignored::tunnel_not_followed);  // O: a control message
    const uint16_t proto = rd16(p + 2);
    if (!w.enter(Encap::geneve, true, rd24(p + 4))) return ignored(Ignored::tunnel_not_followed);
    p += hlen;
    avail -= hlen;
    switch (proto) {
        case kEthBridged:
            return parse_inner_ethernet(w, p, avail, 0);
        case kEthIpv4:
            return parse_ipv4(w, p, avail);
        case kEthIpv6:
            return parse_ipv6(w, p, avail);
        default:
            return ignored(Ignored::not_ip);
    }
}

// UDP is a tunnel only by a configured destination port; anything else stays `not_tcp`.
Verdict parse_udp(Walk& w, const uint8_t* p, size_t avail, size_t l4len) {
    if (avail < 4) return ignored(Ignored::not_tcp);  // no destination port: nothing to open
    const uint16_t dport = rd16(p + 2);
    const bool vxlan = DecapConfig::listed(w.cfg.vxlan_ports, dport);
    if (!vxlan && !DecapConfig::listed(w.cfg.geneve_ports, dport))
        return ignored(Ignored::not_tcp);
    if (avail < 8) return malformed(Malformed::truncated_tunnel);
    const size_t ulen = rd16(p + 4);
    // Both tunnel headers are 8 bytes at least; a UDP length beyond the IP payload lies.
    if (ulen < 16 || ulen > l4len) return malformed(Malformed::bad_tunnel_length);
    const size_t n = (ulen < avail ? ulen : avail) - 8;  // the datagram's bytes in the frame
    return vxlan ? parse_vxlan(w, p + 8, n) : parse_geneve(w, p + 8, n, ulen - 8);
}

// An IP payload other than TCP: a mirror tunnel if the decap settings open it, else ignored.
Verdict parse_ip_payload(Walk& w, uint8_t proto, const uint8_t* p, size_t avail, size_t l4len) {
    if (proto == kIpUdp) return parse_udp(w, p, avail, l4len);
    if (proto == kIpGre && w.cfg.gre) return parse_gre(w, p, avail);
    return ignored(Ignored::not_tcp);
}

Verdict parse_ethertype(Walk& w, uint16_t type, const uint8_t* p, size_t len,
                            Malformed truncated) {
    // 802.1Q / QinQ stacks: walk at most kMaxVlanTags tags.
    for (int tags = 0; type == kEthVlan || type == kEthQinQ || type == kEthVlanOld; ++tags) {
        if (tags >= kMaxVlanTags) return malformed(Malformed::vlan_stack_too_deep);
        if (len < 4) return malformed(truncated);
        if (tags == 0) w.s.vlan = rd16(p) & 0x0fff;
        type = rd16(p + 2);
        p += 4;
        len -= 4;
    }
    if (type == kEthIpv4) return parse_ipv4(w, p, len);
    if (type == kEthIpv6) return parse_ipv6(w, p, len);
    if (type == kEthMpls || type == kEthMplsMulticast) return parse_mpls(w, p, len);
    return ignored(Ignored::not_ip);
}

Verdict parse_link(Walk& w, LinkType link, const uint8_t* data, size_t len) {
    switch (link) {
        case LinkType::ethernet: {
            if (len < 14) return malformed(Malformed::truncated_l2);
            const uint16_t type = rd16(data + 12);
            // Untagged IP, the bulk of most links, without a call into the VLAN/MPLS walk.
            if (type == kEthIpv4) [[likely]]
                return parse_ipv4(w, data + 14, len - 14);
            if (type == kEthIpv6) return parse_ipv6(w, data + 14, len - 14);
            return parse_ethertype(w, type, data + 14, len - 14, Malformed::truncated_l2);
        }
        case LinkType::linux_sll:  // 16-byte header, protocol at offset 14
            if (len < 16) return malformed(Malformed::truncated_l2);
            return parse_ethertype(w, rd16(data + 14), data + 16, len - 16,
                                   Malformed::truncated_l2);
        case LinkType::linux_sll2:  // 20-byte header, protocol at offset 0
            if (len < 20) return malformed(Malformed::truncated_l2);
            return parse_ethertype(w, rd16(data), data + 20, len - 20,
                                   Malformed::truncated_l2);
        case LinkType::raw_ip:
            return parse_ip(w, data, len, Malformed::truncated_ip);
        case LinkType::bsd_loopback_host:
        case LinkType::bsd_loopback_net: {
            if (len < 4) return malformed(Malformed::truncated_l2);
            uint32_t fam;
            std::memcpy(&fam, data, 4);
            if (link == LinkType::bsd_loopback_net) fam = ntohl(fam);
            // The family was written in the capturing host's byte order: accept either.
            const uint32_t swapped = __builtin_bswap32(fam);
            auto is = [&](uint32_t v) { return fam == v || swapped == v; };
            if (is(2)) return parse_ipv4(w, data + 4, len - 4);
            if (is(24) || is(28) || is(30)) return parse_ipv6(w, data + 4, len - 4);  // BSDs, macOS
            return ignored(Ignored::not_ip);
        }
    }
    return malformed(Malformed::truncated_l2);
}

}  // namespace

void parse_into(LinkType link, const uint8_t* data, size_t len, TcpSegment& s,
                const DecapConfig& decap, ParseResult& result) {
    s.vlan = 0;
    s.mss = 0;
    s.wscale = 0xff;
    s.has_ts = false;
    s.sack_permitted = false;
    s.sliced = false;
    Walk w{decap, s};
    const Verdict v = parse_link(w, link, data, len);
    // Its first eight bytes in one store, whichever of them the caller then reads together.
    static_assert(offsetof(ParseResult, malformed) == 1 && offsetof(ParseResult, ignored) == 2 &&
                  offsetof(ParseResult, encap) == 3 && offsetof(ParseResult, tunnels) == 4 &&
                  offsetof(ParseResult, has_session) == 5 && offsetof(ParseResult, session) == 8);
    static_assert(std::endian::native == std::endian::little, "the head word is built LE");
    const uint64_t head = v.packed | uint64_t{static_cast<uint8_t>(w.encap)} << 24 |
                          uint64_t{w.tunnels} << 32 | uint64_t{w.has_session} << 40;
    std::memcpy(static_cast<void*>(&result), &head, sizeof head);
    result.session = w.session;
}

bool link_type_from_dlt(int dlt, LinkType& out) {
    switch (dlt) {
        case 1:  // EN10MB
            out = LinkType::ethernet;
            return true;
        case 113:
            out = LinkType::linux_sll;
            return true;
        case 276:
            out = LinkType::linux_sll2;
            return true;
        case 12:   // DLT_RAW on most platforms
        case 14:   // DLT_RAW on OpenBSD
        case 101:  // LINKTYPE_RAW
        case 228:  // LINKTYPE_IPV4
        case 229:  // LINKTYPE_IPV6
            out = LinkType::raw_ip;
            return true;
        case 0:  // DLT_NULL: host byte order
            out = LinkType::bsd_loopback_host;
            return true;
        case 108:  // DLT_LOOP: network byte order
            out = LinkType::bsd_loopback_net;
            return true;
        default:
            return false;
    }
}

std::string_view link_type_name(LinkType t) {
    switch (t) {
        case LinkType::ethernet: return "ethernet";
        case LinkType::linux_sll: return "linux_sll";
        case LinkType::linux_sll2: return "linux_sll2";
        case LinkType::raw_ip: return "raw_ip";
        case LinkType::bsd_loopback_host: return "bsd_loopback";
        case LinkType::bsd_loopback_net: return "bsd_loopback";
    }
    return "unknown";
}

std::string_view malformed_name(Malformed m) {
    static constexpr std::string_view names[] = {
#define X(name, help) #name,
        RSTMON_MALFORMED_REASONS(X)
#undef X
    };
    return names[static_cast<size_t>(m)];
}

std::string_view ignored_name(Ignored m) {
    static constexpr std::string_view names[] = {
#define X(name, help) #name,
        RSTMON_IGNORED_REASONS(X)
#undef X
    };
    return names[static_cast<size_t>(m)];
}

std::string_view encap_name(Encap e) {
    static constexpr std::string_view names[] = {
#define X(name, help) #name,
        RSTMON_ENCAPS(X)
#undef X
    };
    return names[static_cast<size_t>(e)];
}

std::string to_string(const IpAddr& a, uint8_t family) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == 6 ? AF_INET6 : AF_INET, a.b.data(), buf, sizeof buf);
    return buf;
}

}  // namespace rstmon::packet
