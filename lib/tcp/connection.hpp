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
    uint32_t isn = 0;        // seq of this side's SYN (valid when syn); mid-stream: seq - 1 of
                             // its first segment (snd_nxt - isn - 1 = bytes sent either way)
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
    uint8_t data_after_peer_fin : 1 = 0;  // sent new payload the peer received after its own
                                          // FIN: seen after that FIN, or crossing it (the FIN
                                          // did not acknowledge it)
    uint8_t spoke : 1 = 0;   // sent any segment at all
    // Capture gaps (lossy mirrors): the newest part of this side's sequence space was never seen
    // (the peer acknowledged more than the capture showed, and snd_nxt moved there; or the
    // handshake's SYN-ACK or a SYN was missed). It may hold a FIN. Cleared when the side goes on
    // with new data, which no FIN can precede.
    uint8_t hole : 1 = 0;
    uint8_t segs : 3 = 0;    // non-RST segments sent, saturating at 7 (one-sided flows)
    // Monitor-to-endpoint round trip seen in the handshake, from the peer's segment to this
    // side's answer (SYN -> SYN-ACK, SYN-ACK -> ACK), as answer_code() encodes it; 0 = not
    // measured. Set by the pipeline (it has the nanosecond clock). Whether an RST answered the
    // last segment seen or one the capture missed is judged against it.
    uint8_t answer : 4 = 0;
};
static_assert(sizeof(Direction) == 32, "two directions fill one cache line");

// Answer delays in 4 bits: code k (1..15) means under 4 us * 2^k (8 us .. 131 ms); 15 also
// stands for anything longer. Factor-2 steps are plenty to tell "promptly" from "later".
inline uint8_t answer_code(uint64_t us) {
    uint8_t k = 1;
    while (k < 15 && us >= (4ull << k)) ++k;
    return k;
}
inline uint64_t answer_bound_us(uint8_t code) { return code == 0 ? 0 : 4ull << code; }

// The most `sender` may have in flight beyond what `receiver` acknowledged: the receiver's last
// window (scaled when both offered scaling), at least 64 KiB. An acknowledgement of data the
// monitor never saw within it is capture loss; a segment beyond it belongs elsewhere.
inline uint64_t receive_window(const Direction& receiver, const Direction& sender) {
    uint64_t w = receiver.window;
    if (receiver.wscale != 0xff && sender.wscale != 0xff) w <<= receiver.wscale;
    return w > 65535 ? w : 65535;
}

// IP IDs this far after a host's previous one still belong to its own counter (a global counter
// also numbers the host's packets of other flows meanwhile); a forger's random ID lands here
// with probability 64 / 65536.
inline constexpr uint16_t kIpIdStep = 64;

// A side whose IPv4 IDs went up by one per segment, but for one step of at most this much, is
// taken to number its segments with a counter of the connection's own (Linux), a segment or
// three of it lost by the capture. More such steps, or a larger one: a host-wide counter
// (Windows), which moves on with the host's other traffic.
inline constexpr uint16_t kIdLossStep = 4;

// A segment count at which a flow heard from one side only is called one-sided (asymmetric
// routing or a one-way mirror), unless all it carried were SYNs (an unanswered handshake).
inline constexpr uint8_t kOneSidedSegments = 4;

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
    uint8_t noted : 1 = 0;  // the first RST's own evidence below is recorded (note_rst)
    // The first RST came from the purported sender's own IP stack: IPv4, the TTL of its other
    // segments and the IP ID right after its previous one. Its later segments are then no race.
    uint8_t same_stack : 1 = 0;
    // The first RST's TTL differs from the purported sender's other segments: another hop away.
    uint8_t ttl_differs : 1 = 0;
    // The first RST answered the client's SYN for the server (RST+ACK, ack = ISN + 1, before any
    // SYN-ACK): only then is the server's SYN-ACK after it a handshake race.
    uint8_t answers_syn : 1 = 0;
    // A SPAN copy of the first RST was seen: it passed both mirror points (in a flow mirrored
    // on both sides of a router: made by an endpoint beyond them, not by that router).
    uint8_t crossed : 1 = 0;
    uint8_t peer_spoke : 1 = 0;  // the first RST's receiver sent a non-RST segment since
    uint8_t rst_ttl = 0;   // TTL of the first RST
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
    // Service and trigger matching (pipeline/flow_match.hpp); a new connection starts afresh.
    uint16_t first_payload = 0xffff;  // reassembly buffer held while the client's first
                                      // message is incomplete (0xffff = none)
    uint8_t trigger = 0xff;           // first trigger (config order) matched in the first bytes
    uint8_t match = 0;                // bit 0: service identified; bit 1 + side: that side's
                                      // trigger window is behind; bits 3-4: the match::NameKind
                                      // whose name decided the service
    // Bit `side`: that side's IPv4 IDs went up by one per segment so far, as a counter of the
    // connection's own does (Linux), but for at most one step of up to kIdLossStep (bit 2 +
    // side: that one was seen): a larger step before an abort is segments the capture missed.
    // (A host-wide counter, as Windows keeps, moves on with the host's other traffic: no bit.
    // Without the one step forgiven, a lossy capture that missed one segment early read an
    // abort after two lost keepalive probes as a close.)
    uint8_t ids_consecutive = 0;

    Side server() const { return client == kNoSide ? kNoSide : other(client); }
    bool any_fin() const { return dir[0].fin || dir[1].fin; }
    bool any_rst() const { return dir[0].rst || dir[1].rst; }
    // Heard from one side only (see kOneSidedSegments).
    bool one_sided() const {
        for (Side s = 0; s < 2; ++s) {
            const Direction& d = dir[s];
            const Direction& o = dir[other(s)];
            if (!o.spoke && !o.rst && d.segs >= kOneSidedSegments && d.segs > d.syn_count)
                return true;
        }
        return false;
    }

    // Starts tracking from the first segment seen, sent by `side`. `reused`: a new connection on
    // a 4-tuple whose previous connection had closed (FIN or RST) moments ago.
    void start(const packet::TcpSegment& seg, Side side, bool reused = false);
    // Applies a non-RST segment sent by `side` at `now`. RSTs are classified first, then noted.
    void update(const packet::TcpSegment& seg, Side side, Ms now);
    // Call after the pipeline has opened (or extended) the RST episode for this RST.
    void note_rst(const packet::TcpSegment& seg, Side side);
};

}  // namespace rstmon::tcp
