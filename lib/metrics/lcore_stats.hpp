// Per-worker plain counters. Each worker is the only writer of its LcoreStats; the exporter reads
// them at scrape time. Writes are relaxed atomic stores of (own value + n) and reads relaxed atomic
// loads: no read-modify-write instruction, no lock, no cache line shared between writers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "classify/taxonomy.hpp"
#include "match/first_payload.hpp"
#include "metrics/rst_histograms.hpp"
#include "packet/packet.hpp"

namespace rstmon::metrics {

inline constexpr size_t kMaxServices = 32;           // configured services (+ "other" at index 0)
inline constexpr size_t kServiceSlots = kMaxServices + 1;
inline constexpr size_t kMaxPorts = 16;
inline constexpr size_t kMaxSessions = 16;            // configured mirror sessions (+ "other")

struct Counter {
    uint64_t v = 0;
    void add(uint64_t n) { __atomic_store_n(&v, __atomic_load_n(&v, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED); }
    void inc() { add(1); }
    void set(uint64_t n) { __atomic_store_n(&v, n, __ATOMIC_RELAXED); }
    uint64_t load() const { return __atomic_load_n(&v, __ATOMIC_RELAXED); }
};

#define RSTMON_OUTCOMES(X)                                           \
    X(fin, "closed with FIN")                                        \
    X(rst, "ended by an RST")                                        \
    X(handshake_timeout, "SYN never answered, flow expired")         \
    X(idle_expired, "expired from the table without FIN or RST")     \
    X(evicted, "pushed out of a full table before FIN, RST or expiry")

enum class Outcome : uint8_t {
#define X(name, help) name,
    RSTMON_OUTCOMES(X)
#undef X
        count_
};
inline constexpr size_t kOutcomeCount = static_cast<size_t>(Outcome::count_);
inline constexpr std::string_view kOutcomeNames[] = {
#define X(name, help) #name,
    RSTMON_OUTCOMES(X)
#undef X
};

struct alignas(64) LcoreStats {
    Counter rst[classify::kCauseCount][classify::kStageCount][classify::kSenderCount][kServiceSlots];
    Counter rst_validity[classify::kCauseCount][classify::kValidityCount];
    Counter port_packets[kMaxPorts];
    Counter port_bytes[kMaxPorts];
    Counter malformed[packet::kMalformedCount];
    Counter ignored[packet::kIgnoredCount];
    Counter sliced;             // frames shorter than their IP length, tracked with the IP length
    Counter tcp_packets;
    Counter rst_packets;
    Counter flows_created;
    Counter flows_active;       // gauge, set by the worker
    Counter flows_expired;
    Counter flows_evicted;
    Counter flow_table_full;
    Counter untracked_packets;  // TCP packets that found no flow and could not create one
    Counter events_dropped;     // RST events lost to a full ring or the rate limit
    Counter rst_finalized_early;  // RSTs made final before their episode ended (queue full)
    Counter connections[kOutcomeCount];  // how connections ended
    Counter tx_packets[kMaxPorts];   // inline mode: frames forwarded out of this port
    Counter tx_dropped[kMaxPorts];   // inline mode: frames the port's TX queue refused
    Counter dispatch_dropped;        // software dispatch: frames lost to a full worker ring
    Counter duplicates;         // SPAN copies of a segment already seen (flow/dedup.hpp), dropped
    Counter one_sided_flows;    // flows that ended with one direction never seen (tcp/connection.hpp)
    // Per-cause histograms of RSTs of tracked flows (bounds in rst_histograms.hpp): buckets are
    // not cumulative here (one increment per RST); the exporter accumulates them at scrape time.
    Counter rst_idle_bucket[classify::kCauseCount][kIdleBuckets];
    Counter rst_idle_sum_us[classify::kCauseCount];
    Counter rst_age_bucket[classify::kCauseCount][kAgeBuckets];
    Counter rst_age_sum_us[classify::kCauseCount];
    Counter decap[packet::kEncapCount][kMaxSessions + 1];  // tunnelled frames; [none] unused
    // Services and triggers (pipeline/flow_match.hpp), once per flow unless said otherwise.
    Counter service_identified[match::kIdentMethodCount];  // how the service was decided
    Counter tls_names[match::kSniResultCount];         // first payload a ClientHello: result
    Counter http_names[match::kHttpHostResultCount];   // first payload an HTTP/1.x request
    Counter match_pool_exhausted;   // a split first message found no free buffer
    Counter match_names_evicted;    // a kept name pushed out by another (its set was full)
    Counter match_scan_errors;      // gauge-like total, set by the worker: Hyperscan refusals
    Counter match_buffers_in_use;   // gauge: reassembly buffers held now
    Counter rst_by_trigger[classify::kCauseCount][match::kMaxTriggers];  // RSTs, first trigger
    Counter flow_capacity;      // gauge: flows this worker's table holds at most
    Counter busy_cycles;        // cycles spent on non-empty bursts
    Counter poll_cycles;        // cycles spent polling in all
};

}  // namespace rstmon::metrics
