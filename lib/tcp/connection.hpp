// Per-connection TCP state as seen passively from a SPAN/TAP: both directions, roles, phase.
// No DPDK here: updated from parsed segments, tested on byte buffers.
#pragma once

#include <cstdint>

#include "packet/packet.hpp"

namespace rstmon::tcp {

// Sides are named by the direction-independent flow key: 0 = the key's low endpoint, 1 = high.
using Side = uint8_t;
inline constexpr Side kNoSide = 0xff;
inline constexpr Side other(Side s) { return static_cast<Side>(s ^ 1u); }

// Serial number arithmetic (RFC 1982) on 32-bit sequence numbers.
inline bool seq_lt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
inline bool seq_gt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

// What one endpoint has sent, as far as the monitor has seen it.
struct Direction {
    uint32_t isn = 0;        // seq of this side's SYN (valid when syn)
    uint32_t snd_nxt = 0;    // highest seq + len sent: the peer's rcv_nxt (valid when seq_known)
    uint32_t max_ack = 0;    // highest ack sent: how far this side has received (valid when ack_known)
    uint32_t packets = 0;
    uint16_t window = 0;     // last raw window field
    uint16_t ip_id = 0;      // last IPv4 identification
    uint8_t wscale = 0xff;   // from this side's SYN, 0xff = not offered
    uint8_t ttl = 0;         // last IP TTL / hop limit
    uint8_t syn : 1 = 0;     // sent a SYN (or SYN-ACK)
    uint8_t fin : 1 = 0;     // sent a FIN
    uint8_t rst : 1 = 0;     // sent an RST
    uint8_t seq_known : 1 = 0;
    uint8_t ack_known : 1 = 0;
    uint8_t payload : 1 = 0;  // sent new payload at least once
    uint8_t data_after_peer_fin : 1 = 0;  // sent new payload after the peer's FIN
    uint8_t pad_ : 1 = 0;
};

enum class Origin : uint8_t {
    handshake,  // first packet seen was the client's SYN
    midstream,  // flow picked up after its start
};

struct Connection {
    Direction dir[2];
    Side client = kNoSide;           // side that sent the first SYN (kNoSide = unknown)
    Origin origin = Origin::midstream;
    Side last_payload_side = kNoSide;  // side whose new payload was seen most recently
    uint8_t synack : 1 = 0;          // server's SYN-ACK seen
    uint8_t established : 1 = 0;     // client's ACK of the SYN-ACK seen
    uint8_t pad_ : 6 = 0;
    uint8_t service = 0;             // index into the configured service list (0 = other)
    uint16_t rst_count = 0;

    Side server() const { return client == kNoSide ? kNoSide : other(client); }

    // Starts tracking from the first segment seen, sent by `side`.
    void start(const packet::TcpSegment& seg, Side side);
    // Applies a non-RST segment sent by `side`. RSTs are classified first, then noted with note_rst.
    void update(const packet::TcpSegment& seg, Side side);
    void note_rst(const packet::TcpSegment& seg, Side side);
    bool any_fin() const { return dir[0].fin || dir[1].fin; }
};

}  // namespace rstmon::tcp
