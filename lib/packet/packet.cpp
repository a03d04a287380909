#include "packet/packet.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace rstmon::packet {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100, kEthQinQ = 0x88a8, kEthVlanOld = 0x9100;
constexpr int kMaxVlanTags = 4;
constexpr int kMaxIpv6ExtHeaders = 8;

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t rd32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
           static_cast<uint32_t>(p[2]) << 8 | p[3];
}

ParseResult malformed(Malformed m) { return {ParseStatus::malformed, m, Ignored::not_ip}; }
ParseResult ignored(Ignored i) { return {ParseStatus::ignored, Malformed::truncated_l2, i}; }

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
ParseResult parse_tcp(const uint8_t* p, size_t avail, size_t l4len, TcpSegment& s) {
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
    if (!parse_tcp_options(p + 20, doff - 20, s)) return malformed(Malformed::bad_tcp_option);
    s.payload_len = static_cast<uint32_t>(l4len - doff);
    s.payload_caplen = static_cast<uint32_t>(avail - doff);
    s.payload = p + doff;
    return {ParseStatus::tcp, Malformed::truncated_l2, Ignored::not_ip};
}

ParseResult parse_ipv4(const uint8_t* p, size_t len, TcpSegment& s) {
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
    if (p[9] != 6) return ignored(Ignored::not_tcp);
    s.family = 4;
    s.ttl = p[8];
    s.ip_id = rd16(p + 4);
    s.src = {};
    s.dst = {};
    std::memcpy(s.src.b.data(), p + 12, 4);
    std::memcpy(s.dst.b.data(), p + 16, 4);
    // Ethernet padding makes frames longer than the datagram: trust the IP length, but never read
    // past the frame. A frame shorter than the IP length was sliced (snaplen) or lies.
    s.sliced = total > len;
    const size_t avail = (total < len ? total : len) - ihl;
    return parse_tcp(p + ihl, avail, total - ihl, s);
}

ParseResult parse_ipv6(const uint8_t* p, size_t len, TcpSegment& s) {
    if (len < 40) return malformed(Malformed::truncated_ip);
    if ((p[0] >> 4) != 6) return malformed(Malformed::bad_ip_version);
    const size_t payload = rd16(p + 4);  // jumbograms (0) are not TCP over Ethernet: checked below
    uint8_t next = p[6];
    s.family = 6;
    s.ttl = p[7];
    s.ip_id = 0;
    std::memcpy(s.src.b.data(), p + 8, 16);
    std::memcpy(s.dst.b.data(), p + 24, 16);
    const size_t total = 40 + payload;
    s.sliced = total > len;
    const size_t end = total < len ? total : len;  // bytes we may read
    size_t off = 40;
    for (int n = 0;; ++n) {
        switch (next) {
            case 6:
                if (off > total) return malformed(Malformed::bad_ip_length);
                if (off > end) return malformed(Malformed::truncated_tcp);
                return parse_tcp(p + off, end - off, total - off, s);
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
                return ignored(Ignored::not_tcp);  // ESP, no-next-header, UDP, ICMPv6, ...
        }
    }
}

ParseResult parse_ip(const uint8_t* p, size_t len, TcpSegment& s) {
    if (len < 1) return malformed(Malformed::truncated_ip);
    switch (p[0] >> 4) {
        case 4:
            return parse_ipv4(p, len, s);
        case 6:
            return parse_ipv6(p, len, s);
        default:
            return malformed(Malformed::bad_ip_version);
    }
}

ParseResult parse_ethertype(uint16_t type, const uint8_t* p, size_t len, TcpSegment& s) {
    // 802.1Q / QinQ stacks: walk at most kMaxVlanTags tags.
    for (int tags = 0; type == kEthVlan || type == kEthQinQ || type == kEthVlanOld; ++tags) {
        if (tags >= kMaxVlanTags) return malformed(Malformed::vlan_stack_too_deep);
        if (len < 4) return malformed(Malformed::truncated_l2);
        if (tags == 0) s.vlan = rd16(p) & 0x0fff;
        type = rd16(p + 2);
        p += 4;
        len -= 4;
    }
    if (type == kEthIpv4) return parse_ipv4(p, len, s);
    if (type == kEthIpv6) return parse_ipv6(p, len, s);
    return ignored(Ignored::not_ip);
}

}  // namespace

ParseResult parse(LinkType link, const uint8_t* data, size_t len, TcpSegment& s) {
    s.vlan = 0;
    s.mss = 0;
    s.wscale = 0xff;
    s.has_ts = false;
    s.sack_permitted = false;
    s.sliced = false;
    switch (link) {
        case LinkType::ethernet:
            if (len < 14) return malformed(Malformed::truncated_l2);
            return parse_ethertype(rd16(data + 12), data + 14, len - 14, s);
        case LinkType::linux_sll:  // 16-byte header, protocol at offset 14
            if (len < 16) return malformed(Malformed::truncated_l2);
            return parse_ethertype(rd16(data + 14), data + 16, len - 16, s);
        case LinkType::linux_sll2:  // 20-byte header, protocol at offset 0
            if (len < 20) return malformed(Malformed::truncated_l2);
            return parse_ethertype(rd16(data), data + 20, len - 20, s);
        case LinkType::raw_ip:
            return parse_ip(data, len, s);
        case LinkType::bsd_loopback_host:
        case LinkType::bsd_loopback_net: {
            if (len < 4) return malformed(Malformed::truncated_l2);
            uint32_t fam;
            std::memcpy(&fam, data, 4);
            if (link == LinkType::bsd_loopback_net) fam = ntohl(fam);
            // The family was written in the capturing host's byte order: accept either.
            const uint32_t swapped = __builtin_bswap32(fam);
            auto is = [&](uint32_t v) { return fam == v || swapped == v; };
            if (is(2)) return parse_ipv4(data + 4, len - 4, s);
            if (is(24) || is(28) || is(30)) return parse_ipv6(data + 4, len - 4, s);  // BSDs, macOS
            return ignored(Ignored::not_ip);
        }
    }
    return malformed(Malformed::truncated_l2);
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

std::string to_string(const IpAddr& a, uint8_t family) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == 6 ? AF_INET6 : AF_INET, a.b.data(), buf, sizeof buf);
    return buf;
}

}  // namespace rstmon::packet
