// The RST classifier: a pure function of (connection state before the RST, the RST, thresholds)
// to (cause, stage, sender, validity). One place per cause; no DPDK, no I/O.
#pragma once

#include "classify/taxonomy.hpp"
#include "packet/packet.hpp"
#include "tcp/connection.hpp"

namespace rstmon::classify {

// Thresholds from the config (`thresholds:`). Causes added later read their values from here.
struct Thresholds {
    uint64_t idle_threshold_ns = 240ull * 1000000000ull;
};

struct Verdict {
    Cause cause = Cause::unclassified;
    Stage stage = Stage::no_state;
    Sender sender = Sender::unknown;
    Validity validity = Validity::unverifiable;
};

// `conn` is null when the flow is not tracked (table full, lone RST). `side` is the RST sender's
// side in the flow key.
Verdict classify(const tcp::Connection* conn, tcp::Side side, const packet::TcpSegment& rst,
                 const Thresholds& th);

// The pieces, exposed for tests.
Stage stage_of(const tcp::Connection& c);
Validity validity_of(const tcp::Connection& c, tcp::Side side, const packet::TcpSegment& rst);

}  // namespace rstmon::classify
