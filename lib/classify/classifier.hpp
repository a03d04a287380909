// The RST classifier: a pure function of (connection state before the RST, the RST, thresholds)
// to (cause, stage, sender, validity), plus the race rule that can re-label an open episode.
// One place per cause; no DPDK, no I/O. See ../shared/design/CAUSES.md.
#pragma once

#include "classify/taxonomy.hpp"
#include "packet/packet.hpp"
#include "tcp/connection.hpp"

namespace rstmon::classify {

// Thresholds from the config (`thresholds:`), all documented in config/rstmon.yaml.
struct Thresholds {
    uint64_t idle_threshold_ns = 240ull * 1000000000ull;  // silence that middlebox state outlives
    uint64_t linger_ns = 2ull * 1000000000ull;            // RST episode length (race evidence)
    uint64_t connect_late_ns = 1ull * 1000000000ull;      // SYN-ACK this late: connect timeout
    uint8_t ttl_tolerance = 0;                            // |TTL - baseline| allowed
    uint8_t retransmission_run = 3;                       // re-sends without ACK progress
    uint8_t keepalive_probes = 1;                         // unanswered probes before the RST
};

struct Verdict {
    Cause cause = Cause::unclassified;
    Stage stage = Stage::no_state;
    Sender sender = Sender::unknown;
    Validity validity = Validity::unverifiable;
};

// `conn` is null when the flow is not tracked (table full, lone RST). `side` is the RST sender's
// side in the flow key. `host_ttl` is the sender address's TTL seen in other flows (0 = unknown).
// `client_hint` is the client side guessed from ports, used when the handshake was not seen.
// `silence_ns`: time from the flow's previous segment to this RST (0 = unknown). An RST that
// ends a long silence answers a segment the capture missed; one that comes well after the
// sender's handshake round trip did not answer the last segment seen.
Verdict classify(const tcp::Connection* conn, tcp::Side side, const packet::TcpSegment& rst,
                 const Thresholds& th, uint8_t host_ttl = 0,
                 tcp::Side client_hint = tcp::kNoSide, uint64_t silence_ns = 0);

// Race evidence inside an open episode: given the episode's current cause and a segment from
// `side` that arrived after the first RST, the cause it turns into (or the same one).
Cause on_episode_segment(const tcp::Connection& c, tcp::Side side, const packet::TcpSegment& seg,
                         Cause current);

// The pieces, exposed for tests.
Stage stage_of(const tcp::Connection& c);
Validity validity_of(const tcp::Connection& c, tcp::Side side, const packet::TcpSegment& rst);
bool ttl_mismatch(const tcp::Connection& c, tcp::Side side, const packet::TcpSegment& rst,
                  const Thresholds& th, uint8_t host_ttl);

}  // namespace rstmon::classify
