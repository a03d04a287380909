// Hyperscan databases for service names (TLS SNI, HTTP Host) and payload triggers, compiled once
// from the config. No DPDK, and no Hyperscan header here: callers see plain types.
//
// Threads. A MatchDatabases is immutable after compile(): every worker may use the same one at
// once. A Scan needs a Scratch, and a Scratch is one thread's at a time: give each worker its own
// from make_scratch() (hs_clone_scratch of the prototype made by hs_alloc_scratch at compile
// time). No call allocates after start-up.
//
// Reload (SIGHUP). The control thread compiles the new config into a new MatchDatabases (a
// PatternError keeps the old one running), makes one Scratch per worker from it, and hands each
// worker the pair {databases, its scratch} (e.g. a pointer in the worker's control ring or an
// atomic per-worker slot). The worker swaps the pair at a burst boundary, never inside a burst,
// because a scan must use a scratch made for its databases (a mismatched one fails the scan,
// counted in Scratch::errors()). Once every worker has acknowledged, the control thread drops the
// old pair (the shared_ptr keeps the databases alive until then). Service indices are positions
// in the services list: a reload that reorders services must also renumber the port map and the
// flows already labelled, or keep its list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "match/host_name.hpp"

struct hs_database;
struct hs_scratch;

namespace rstmon::match {

inline constexpr size_t kMaxTriggers = 32;   // bits of a trigger mask
inline constexpr size_t kMaxServiceIds = 255;  // service indices fit a uint8_t (0 = none)

// One line naming the config entry, the pattern and Hyperscan's message, e.g.
// "services[1].sni[0]: pattern '(' does not compile: Missing close parenthesis for group started
// at index 0."
struct PatternError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// What to compile, in config order. Error messages name entries as the config does:
// services[i].sni[j], services[i].host[j], triggers[i].pattern.
struct MatchSpec {
    struct Service {
        std::vector<std::string> sni;   // matched against the whole TLS server name
        std::vector<std::string> host;  // matched against the whole HTTP Host (no port)
    };
    struct Trigger {
        std::string name;
        std::string pattern;  // found anywhere in the scanned payload bytes
    };
    std::vector<Service> services;  // services[i] is service index i + 1 (0 = "other")
    std::vector<Trigger> triggers;  // triggers[i] is bit i of a trigger mask
};

// Hyperscan scratch space for one thread. Move-only; empty when there is nothing to scan.
class Scratch {
public:
    Scratch() = default;
    ~Scratch();
    Scratch(Scratch&& o) noexcept : s_(o.s_), errors_(o.errors_) { o.s_ = nullptr; }
    Scratch& operator=(Scratch&& o) noexcept;
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    // Scans that Hyperscan refused (a scratch of other databases, or used by two threads at
    // once): they returned "no match". Zero in a correct program; worth a counter.
    uint64_t errors() const { return errors_; }

private:
    friend class MatchDatabases;
    hs_scratch* s_ = nullptr;
    uint64_t errors_ = 0;
};

class MatchDatabases {
public:
    // Compiles the spec (hs_compile_multi: one database per kind, absent when it has no
    // pattern) and allocates the prototype scratch. Service patterns match the whole name,
    // case-insensitively: each is compiled as ^(?:pattern)\z with HS_FLAG_CASELESS,
    // HS_FLAG_SINGLEMATCH and HS_FLAG_ALLOWEMPTY (so `.*` is a valid catch-all), after the
    // pattern alone has been checked so error positions refer to what the user wrote. Triggers
    // are compiled as written with HS_FLAG_SINGLEMATCH and HS_FLAG_DOTALL (payload is bytes,
    // newlines included); `(?i)` makes one case-insensitive. Throws PatternError.
    static std::shared_ptr<const MatchDatabases> compile(const MatchSpec& spec);

    ~MatchDatabases();
    MatchDatabases(const MatchDatabases&) = delete;
    MatchDatabases& operator=(const MatchDatabases&) = delete;

    // One per worker (allocates: call at start-up or while preparing a reload).
    Scratch make_scratch() const;

    // The first service in config order with a pattern of that kind matching the whole name
    // (one trailing dot ignored), or 0 when none does. No allocation.
    uint8_t classify_service(NameKind kind, std::string_view name, Scratch& scratch) const;

    // Bit i set when triggers[i] matches somewhere in the bytes. Block mode: a caller scanning
    // segment by segment misses a pattern that straddles two segments. No allocation.
    uint32_t scan_triggers(const uint8_t* data, size_t len, Scratch& scratch) const;

    bool has_sni_patterns() const { return sni_ != nullptr; }
    bool has_host_patterns() const { return host_ != nullptr; }
    size_t trigger_count() const { return trigger_count_; }

private:
    MatchDatabases() = default;

    hs_database* sni_ = nullptr;
    hs_database* host_ = nullptr;
    hs_database* triggers_ = nullptr;
    hs_scratch* prototype_ = nullptr;
    size_t trigger_count_ = 0;
};

// The part of a segment at byte `offset` of its direction's payload (seq - isn - 1) that lies
// within the first `window` bytes: what scan_triggers should see of it.
inline size_t bytes_in_window(uint32_t offset, size_t len, uint32_t window) {
    if (offset >= window) return 0;
    const size_t room = window - offset;
    return len < room ? len : room;
}

}  // namespace rstmon::match
