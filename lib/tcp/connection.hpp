// Per-connection TCP state as seen passively from a SPAN/TAP: both directions, roles, phase, and
// the evidence the RST classifier needs (TTL baseline, retransmission runs, keepalive probes,
// idle gaps, the RST episode). No DPDK here: updated from parsed segments, tested on buffers.
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

// Times inside a connection are milliseconds since the flow's first packet (32 bits: 49 days).
using Ms = uint32_t;

// What one endpoint has sent, as far as the monitor has seen it.
struct Direction {
    uint32_t isn = 0;        // seq of this side's SYN (valid when syn)
    uint32_t snd_nxt = 0;    // highest seq + len sent: the peer's rcv_nxt (valid when seq_known)
    uint32_t max_ack = 0;    // highest ack sent (valid when ack_known)
    uint32_t last_ack = 0;   // ack of this side's most recent segment
    Ms last_ms = 0;          // most recent segment from this side
    uint16_t window = 0;     // last raw window field
    uint16_t ip_id = 0;      // last IPv4 identification
    uint8_t wscale = 0xff;   // from this side's SYN, 0xff = not offered
    uint8_t ttl = 0;         // last IP TTL / hop limit (non-RST)
    uint8_t ttl_base = 0;    // TTL of this side's first non-RST segment (0 = none yet)
    uint8_t rexmit_run = 0;  // retransmissions since the peer's ack last advanced
    uint8_t ka_probes = 0;   // keepalive probes the peer has not answered
    uint8_t syn_count = 0;   // SYNs (or SYN-ACKs) sent, retransmissions included
    uint8_t syn : 1 = 0;     // sent a SYN (or SYN-ACK)
    uint8_t fin : 1 = 0;     // sent a FIN
    uint8_t rst : 1 = 0;     // sent an RST
    uint8_t seq_known : 1 = 0;
    uint8_t ack_known : 1 = 0;
    uint8_t payload : 1 = 0;  // sent new payload at least once
    uint8_t data_after_peer_fin : 1 = 0;  // sent new payload after the peer's FIN
    uint8_t spoke : 1 = 0;   // sent any segment at all
};

enum class Origin : uint8_t {
    handshake,  // first packet seen was the client's SYN
    midstream,  // flow picked up after its start
};

// The RST episode: from a flow's first RST until `episode_end_ms`, later RSTs of the flow and race
// evidence (the purported sender still talking, RSTs with jumping sequence numbers) belong to it;
// every RST of the episode is counted once, with the episode's final cause, when it ends.
struct Episode {
    Ms end_ms = 0;
    uint32_t seq = 0;      // seq of the episode's first RST
    uint8_t cause = 0;     // classify::Cause of the episode (final when it ends)
    Side side = kNoSide;   // sender of the first RST
    uint8_t active : 1 = 0;
    uint8_t raced : 1 = 0;  // race evidence seen: the purported sender kept talking
};

struct Connection {
    Direction dir[2];
    Episode episode;
    Ms last_gap_ms = 0;               // silence before the most recent non-RST segment
    Ms synack_ms = 0;                 // time of the first SYN-ACK
    Side client = kNoSide;            // side that sent the first SYN (kNoSide = unknown)
    Side last_side = kNoSide;         // sender of the most recent non-RST segment
    Side last_payload_side = kNoSide;  // side whose new payload was seen most recently
    Origin origin = Origin::midstream;
    uint8_t service = 0;              // index into the configured service list (0 = other)
    uint8_t synack : 1 = 0;           // server's SYN-ACK seen
    uint8_t established : 1 = 0;      // client's ACK of the SYN-ACK seen
    uint8_t syn_answered_by_ack : 1 = 0;  // the client's SYN got a bare ACK, not a SYN-ACK
    uint8_t reused : 1 = 0;           // this connection reuses a 4-tuple that had just closed
    uint8_t bad_synack : 1 = 0;       // a SYN-ACK acknowledged the wrong ISN or echoed the wrong
                                      // timestamp (RFC 7323 PAWS): invalid for SYN-SENT
    uint8_t bad_handshake_ack : 1 = 0;  // the client's ACK of the SYN-ACK acknowledged wrongly
    uint8_t syn_conflict : 1 = 0;     // a second client SYN with another ISN during the handshake
    uint8_t service_set : 1 = 0;      // `service` is final (decided once the roles are known)
    uint8_t rst_count = 0;            // RSTs seen (saturating)
    uint32_t syn_tsval = 0;           // timestamp value of the client's SYN (0 = none)

    Side server() const { return client == kNoSide ? kNoSide : other(client); }
    bool any_fin() const { return dir[0].fin || dir[1].fin; }
    bool any_rst() const { return dir[0].rst || dir[1].rst; }

    // Starts tracking from the first segment seen, sent by `side`. `reused`: a new connection on
    // a 4-tuple whose previous connection had closed (FIN or RST) moments ago.
    void start(const packet::TcpSegment& seg, Side side, bool reused = false);
    // Applies a non-RST segment sent by `side` at `now`. RSTs are classified first, then noted.
    void update(const packet::TcpSegment& seg, Side side, Ms now);
    void note_rst(const packet::TcpSegment& seg, Side side);
};

}  // namespace rstmon::tcp
