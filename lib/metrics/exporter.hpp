// Prometheus exposition: a prometheus-cpp Collectable that sums every worker's LcoreStats at scrape
// time. No prometheus-cpp object is touched on the data path.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "metrics/json_endpoint.hpp"
#include "metrics/lcore_stats.hpp"

namespace prometheus {
class Exposer;
}

namespace rstmon::metrics {

// Per-port NIC drop counters (rte_eth_stats), read at scrape time.
struct NicCounters {
    uint64_t imissed = 0, ierrors = 0, rx_nombuf = 0;
};

// Outcome of config reloads (SIGHUP), written by the control thread, read at scrape time.
struct ReloadStatus {
    std::atomic<uint64_t> succeeded{0}, failed{0};
    std::atomic<bool> last_ok{true};
    std::atomic<double> last_success_s{0};  // unix time of the last successful load (start counts)
};

struct ExporterInfo {
    std::string appliance;                 // label on every series
    std::vector<std::string> port_names;   // by port index
    std::vector<std::string> service_names;  // index 0 = "other"
    std::string version;
    std::string dpdk_version;
    std::vector<std::string> lcore_names;  // by entry of the stats vector
    std::function<std::vector<NicCounters>()> nic_counters;  // may be empty
    double start_time_s = 0;                   // unix time the process started
    const ReloadStatus* reload = nullptr;      // may be null (no reloads in this mode)
    std::vector<std::string> session_names;    // mirror sessions; index 0 = "other"
    std::vector<std::string> trigger_names;    // config triggers, by index (trigger label)
    // Families kept outside LcoreStats (forensic captures, learned timeouts), appended at scrape
    // time; may be empty. Called on a civetweb thread.
    std::function<void(std::vector<prometheus::MetricFamily>&)> extra_families;
};

// Totals over all workers, used by the offline report as well as the exporter.
struct Totals {
    uint64_t rst[classify::kCauseCount][classify::kStageCount][classify::kSenderCount][kServiceSlots]{};
    uint64_t rst_validity[classify::kCauseCount][classify::kValidityCount]{};
    uint64_t port_packets[kMaxPorts]{}, port_bytes[kMaxPorts]{};
    uint64_t malformed[packet::kMalformedCount]{}, ignored[packet::kIgnoredCount]{};
    uint64_t sliced = 0, tcp_packets = 0, rst_packets = 0;
    uint64_t flows_created = 0, flows_active = 0, flows_expired = 0, flows_evicted = 0;
    uint64_t flow_table_full = 0, untracked_packets = 0, events_dropped = 0;
    uint64_t rst_finalized_early = 0, dispatch_dropped = 0;
    uint64_t duplicates = 0, one_sided_flows = 0;
    uint64_t tx_packets[kMaxPorts]{}, tx_dropped[kMaxPorts]{};
    uint64_t connections[kOutcomeCount]{};
    uint64_t rst_idle_bucket[classify::kCauseCount][kIdleBuckets]{};
    uint64_t rst_idle_sum_us[classify::kCauseCount]{};
    uint64_t rst_age_bucket[classify::kCauseCount][kAgeBuckets]{};
    uint64_t rst_age_sum_us[classify::kCauseCount]{};
    uint64_t decap[packet::kEncapCount][kMaxSessions + 1]{};
    uint64_t service_identified[match::kIdentMethodCount]{};
    uint64_t tls_names[match::kSniResultCount]{}, http_names[match::kHttpHostResultCount]{};
    uint64_t match_pool_exhausted = 0, match_names_evicted = 0, match_scan_errors = 0;
    uint64_t match_buffers_in_use = 0;
    uint64_t rst_by_trigger[classify::kCauseCount][match::kMaxTriggers]{};

    uint64_t packets() const;
    uint64_t rst_by_cause(size_t cause) const;
    uint64_t rst_by_stage(size_t stage) const;
};
// Totals is about 100 KiB: keep it off small thread stacks (civetweb's are 100 KiB).
void sum_into(const std::vector<const LcoreStats*>& stats, Totals& out);
Totals sum(const std::vector<const LcoreStats*>& stats);

class StatsCollectable : public prometheus::Collectable {
public:
    StatsCollectable(ExporterInfo info, std::vector<const LcoreStats*> stats);
    std::vector<prometheus::MetricFamily> Collect() const override;

private:
    ExporterInfo info_;
    std::vector<const LcoreStats*> stats_;
};

struct MetricsServerOptions {
    std::string listen;         // "host:port"; port 0 picks a free one
    std::string username;       // basic auth when non-empty
    std::string password;
    std::string tls_cert_file;  // HTTPS when non-empty (PEM: key + certificate chain)
    // GET /top beside /metrics (same port, TLS and basic auth) when set: given the query string
    // (may be empty), returns the JSON body, or throws std::invalid_argument for a 400.
    std::function<std::string(const std::string& query)> top_json;
};

// The HTTP endpoint (prometheus-cpp's civetweb threads, never a worker lcore).
class MetricsServer {
public:
    // Throws on bind failure or a TLS set-up error.
    MetricsServer(const MetricsServerOptions& o, std::shared_ptr<prometheus::Collectable> c);
    ~MetricsServer();
    int port() const;

private:
    std::unique_ptr<prometheus::Exposer> exposer_;
    std::shared_ptr<prometheus::Collectable> collectable_;
    std::unique_ptr<JsonEndpoint> top_;  // after exposer_: unregistered before the server stops
    std::string listen_host_;  // where a connection of our own wakes the listener at stop
};

}  // namespace rstmon::metrics
