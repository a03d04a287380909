// "Who is being reset": bounded heavy-hitter summaries of servers (ip:port), clients (ip) and
// server prefixes (/24, /64) by RST count, overall and per cause, plus the idle timeouts learned
// per service. Fed on the control thread from every worker's summary ring (top/feed.hpp) with one
// record per finalized RST and per survived idle gap; read by /top and the offline report. Never
// exported as Prometheus labels (unbounded); the learned timeouts are (bounded by the services).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <prometheus/metric_family.h>

#include "classify/taxonomy.hpp"
#include "packet/packet.hpp"
#include "top/space_saving.hpp"

namespace rstmon::top {

enum class RecordKind : uint8_t {
    rst,           // a finalized RST
    survived_gap,  // a flow was silent for gap_ns, then both sides spoke again: it survived
};

// What a worker hands over, by value over an rte_ring (size a multiple of 4).
struct Record {
    packet::IpAddr server, client;  // by role (unused when roles_known is 0)
    uint64_t gap_ns = UINT64_MAX;   // rst: the flow's idle time before it (UINT64_MAX: no flow)
    uint16_t server_port = 0;
    uint8_t family = 4;
    RecordKind kind = RecordKind::rst;
    uint8_t cause = 0;               // classify::Cause (rst)
    uint8_t service = 0;             // index into the service names, 0 = other
    uint8_t roles_known = 0;
    uint8_t pad_ = 0;
};
static_assert(sizeof(Record) % 4 == 0);

// An address (with port for servers, or a prefix length for prefixes): the summaries' key.
struct Endpoint {
    packet::IpAddr addr;
    uint16_t port = 0;
    uint8_t family = 4;
    uint8_t prefix = 0;  // 0: a host (and port); else the prefix length
    bool operator==(const Endpoint&) const = default;
    // IPv4 before IPv6, then by address bytes, prefix and port: a stable listing order.
    bool operator<(const Endpoint& o) const {
        if (family != o.family) return family < o.family;
        if (addr.b != o.addr.b) return addr.b < o.addr.b;
        return prefix != o.prefix ? prefix < o.prefix : port < o.port;
    }
    std::string to_string() const;
};
struct EndpointHash {
    size_t operator()(const Endpoint& e) const;
};

// Idle gaps per service: the timeout of a middlebox on the path lies in (lower, upper].
struct LearnedTimeout {
    uint64_t survived_max_ns = 0;          // longest gap a connection survived
    uint64_t reset_min_ns = UINT64_MAX;    // shortest gap that ended in an idle_timeout RST
    uint64_t survived = 0, resets = 0;     // gaps seen of each kind
};

class TopSummary {
public:
    // `size`: counters per summary (each dimension, overall and per cause).
    TopSummary(size_t size, std::vector<std::string> service_names);

    void add(const Record& r);  // thread-safe
    // The `n` largest entries of each summary; `cause` < 0: every cause. `dropped`: records the
    // feed lost (reported, so a reader knows the counts are lower bounds).
    nlohmann::ordered_json to_json(size_t n, int cause = -1, uint64_t dropped = 0) const;
    std::vector<LearnedTimeout> learned() const;  // by service index
    // rstmon_learned_idle_timeout_seconds{service, bound="lower|upper"}.
    void append_metrics(std::vector<prometheus::MetricFamily>& out, const std::string& appliance) const;
    // "connections to `api` idle >= 350 s are reset ..." (empty when nothing was learned).
    static std::string describe(const std::string& service, const LearnedTimeout& l);

private:
    struct Summaries {
        explicit Summaries(size_t n) : servers(n), clients(n), prefixes(n) {}
        SpaceSaving<Endpoint, EndpointHash> servers, clients, prefixes;
        uint64_t rsts = 0, unknown_roles = 0;
    };
    static void add_to(Summaries& s, const Record& r);
    static nlohmann::ordered_json summary_json(const Summaries& s, size_t n);

    size_t size_;
    std::vector<std::string> service_names_;
    Summaries all_;
    std::array<std::unique_ptr<Summaries>, classify::kCauseCount> by_cause_;  // made when seen
    std::vector<LearnedTimeout> learned_;
    mutable std::mutex mu_;
};

}  // namespace rstmon::top
