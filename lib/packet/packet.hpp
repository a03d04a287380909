// L2-L4 parsing of one captured frame into a small view. No DPDK here: the parser works on byte
// buffers so it is tested (and fuzzed) without an EAL. Every length is checked before it is read.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rstmon::packet {

// Link types we accept: what NICs deliver (Ethernet) and what capture files commonly hold.
enum class LinkType : uint8_t { ethernet, linux_sll, linux_sll2, raw_ip, bsd_loopback_host, bsd_loopback_net };

// Maps a pcap LINKTYPE_/DLT_ value to ours; false if we cannot parse that link type.
bool link_type_from_dlt(int dlt, LinkType& out);
std::string_view link_type_name(LinkType t);

// Why a frame was judged malformed. Defined once: enum, metric label and report key derive from it.
#define RSTMON_MALFORMED_REASONS(X)                                                        \
    X(truncated_l2, "frame shorter than its link-layer header")                            \
    X(vlan_stack_too_deep, "more than 4 stacked 802.1Q/802.1ad tags")                      \
    X(truncated_ip, "frame ends inside the IP header")                                     \
    X(bad_ip_version, "IP version field does not match the link-layer protocol")           \
    X(bad_ipv4_ihl, "IPv4 header length below 20 bytes or beyond the frame")              \
    X(bad_ip_length, "IP total/payload length smaller than the headers it must contain")   \
    X(bad_ipv6_ext_header, "IPv6 extension header chain overruns the packet or is too long") \
    X(truncated_tcp, "frame ends inside the TCP header")                                   \
    X(bad_tcp_offset, "TCP data offset below 5 words or beyond the IP payload")            \
    X(bad_tcp_option, "a TCP option's length overruns the TCP header")                     \
    X(truncated_tunnel, "frame ends inside a tunnel or MPLS header, or the frame it carries") \
    X(bad_tunnel_length, "VXLAN/Geneve UDP length short of its headers or past the IP payload") \
    X(bad_mpls, "MPLS label stack without a bottom-of-stack label within 8 labels")        \
    X(bad_gre, "GRE version above 1, or the deprecated routing flag set")                  \
    X(bad_erspan, "ERSPAN version does not match its GRE protocol (1: 0x88BE, 2: 0x22EB)") \
    X(bad_vxlan, "VXLAN header without the I flag (valid VNI)")                            \
    X(bad_geneve, "Geneve version not 0, or its options overrun the datagram")

enum class Malformed : uint8_t {
#define X(name, help) name,
    RSTMON_MALFORMED_REASONS(X)
#undef X
        count_
};
inline constexpr size_t kMalformedCount = static_cast<size_t>(Malformed::count_);
std::string_view malformed_name(Malformed m);

// Frames that are fine but not ours to track. Defined once, like the reasons above.
#define RSTMON_IGNORED_REASONS(X)                                                     \
    X(not_ip, "not IPv4/IPv6 (ARP, LLDP, ...), outside or inside a tunnel")          \
    X(not_tcp, "IP but not TCP (UDP, ICMP, ESP, GRE or UDP that is no mirror tunnel)") \
    X(ip_fragment, "IP fragment: counted, not tracked")                               \
    X(tunnel_not_followed, "tunnel nested beyond the decap limit, or a Geneve control packet")

enum class Ignored : uint8_t {
#define X(name, help) name,
    RSTMON_IGNORED_REASONS(X)
#undef X
        count_
};
inline constexpr size_t kIgnoredCount = static_cast<size_t>(Ignored::count_);
std::string_view ignored_name(Ignored m);

// The encapsulation a mirror feed arrived in. One value per frame (see ParseResult::encap), with
// stable names for a metrics label. VLAN tags are not listed: they are no tunnel (see vlan).
#define RSTMON_ENCAPS(X)                                                                     \
    X(none, "the frame as captured (VLAN tags aside)")                                       \
    X(mpls, "MPLS label stack, possibly an Ethernet pseudowire with control word")          \
    X(gre, "GRE carrying Ethernet (0x6558), IPv4, IPv6 or MPLS")                             \
    X(erspan1, "ERSPAN type I: GRE 0x88BE without sequence number, no ERSPAN header")       \
    X(erspan2, "ERSPAN type II: GRE 0x88BE, 8-byte ERSPAN header")                           \
    X(erspan3, "ERSPAN type III: GRE 0x22EB, 12-byte header (+8 platform-specific)")        \
    X(vxlan, "VXLAN over UDP (RFC 7348)")                                                    \
    X(geneve, "Geneve over UDP (RFC 8926)")

enum class Encap : uint8_t {
#define X(name, help) name,
    RSTMON_ENCAPS(X)
#undef X
        count_
};
inline constexpr size_t kEncapCount = static_cast<size_t>(Encap::count_);
std::string_view encap_name(Encap e);

// Which tunnels the parser opens (config `decap:`). Plain data, no allocation: it is read per
// packet. A UDP datagram is a tunnel only by its destination port; 0 marks an unused slot.
struct DecapConfig {
    static constexpr size_t kMaxPorts = 4;
    std::array<uint16_t, kMaxPorts> vxlan_ports{4789};   // IANA VXLAN
    std::array<uint16_t, kMaxPorts> geneve_ports{6081};  // IANA Geneve
    bool gre = true;           // GRE and ERSPAN (IP protocol 47)
    uint8_t max_tunnels = 2;   // tunnels followed inside one another; deeper ones are counted

    static bool listed(const std::array<uint16_t, kMaxPorts>& ports, uint16_t port) {
        for (const uint16_t p : ports)
            if (p == port) return port != 0;
        return false;
    }
};
inline constexpr DecapConfig kDefaultDecap{};

namespace tcpflag {
inline constexpr uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10, urg = 0x20;
}

// An IPv4 address occupies the first 4 bytes; the rest is zero.
struct IpAddr {
    std::array<uint8_t, 16> b{};
    friend bool operator==(const IpAddr&, const IpAddr&) = default;
};
std::string to_string(const IpAddr& a, uint8_t family);

struct TcpSegment {
    IpAddr src, dst;
    uint8_t family = 4;        // 4 or 6
    uint8_t flags = 0;         // TCP flags byte
    uint8_t ttl = 0;           // IPv4 TTL or IPv6 hop limit
    uint8_t wscale = 0xff;     // window scale option, 0xff = absent
    uint16_t sport = 0, dport = 0;
    uint16_t window = 0;       // raw (unscaled) window field
    uint16_t ip_id = 0;        // IPv4 identification (0 for IPv6)
    uint16_t mss = 0;          // 0 = absent
    uint16_t vlan = 0;         // outermost VLAN id of the tracked frame (inside any tunnel;
                               // the ERSPAN header's when that frame is untagged), 0 = none
    uint16_t checksum = 0;     // TCP checksum as captured (flow/dedup.hpp: copies of a frame)
    uint32_t seq = 0, ack = 0;
    uint32_t payload_len = 0;  // from the IP length: what the sender sent
    uint32_t payload_caplen = 0;  // of which present in the frame
    uint32_t tsval = 0, tsecr = 0;
    bool has_ts = false;
    bool sack_permitted = false;
    bool sliced = false;       // IP length says more than the frame holds (snaplen or slicing)
    const uint8_t* payload = nullptr;

    bool has(uint8_t f) const { return (flags & f) != 0; }
    // Sequence space the segment occupies (SYN and FIN count one each).
    uint32_t seq_len() const {
        return payload_len + (has(tcpflag::syn) ? 1u : 0u) + (has(tcpflag::fin) ? 1u : 0u);
    }
};

enum class ParseStatus : uint8_t { tcp, ignored, malformed };

struct ParseResult {
    ParseStatus status = ParseStatus::malformed;
    Malformed malformed = Malformed::truncated_l2;
    Ignored ignored = Ignored::not_ip;
    // What was peeled before the tracked frame (or before parsing stopped, for ignored and
    // malformed frames). With several layers, the one that names the mirror feed: the outermost
    // ERSPAN/VXLAN/Geneve, else the outermost GRE, else MPLS.
    Encap encap = Encap::none;
    uint8_t tunnels = 0;       // tunnel layers peeled (MPLS labels alone are none)
    bool has_session = false;
    uint32_t session = 0;      // of `encap`: ERSPAN session id, VXLAN/Geneve VNI, or GRE key
};

// Parses `len` captured bytes. On ParseStatus::tcp, `out` is filled (payload points into data)
// from the innermost (tracked) frame: addresses, ports, TTL, IP ID and lengths are its own.
// (The result is written field by field into the caller's own object: returned by value from
// another translation unit, GCC assembled it with byte stores and reloaded it in words, a
// failed store forward per frame.)
void parse_into(LinkType link, const uint8_t* data, size_t len, TcpSegment& out,
                const DecapConfig& decap, ParseResult& result);
inline ParseResult parse(LinkType link, const uint8_t* data, size_t len, TcpSegment& out,
                         const DecapConfig& decap = kDefaultDecap) {
    ParseResult r;
    parse_into(link, data, len, out, decap, r);
    return r;
}

}  // namespace rstmon::packet
