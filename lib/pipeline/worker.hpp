// The per-burst worker: parse -> flow -> tcp -> classify -> stats/events. One per worker lcore,
// owning its flow table shard, its LcoreStats and its pending-RST queue. No locks, no allocation,
// no logging per packet (every buffer is sized at start-up).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "classify/classifier.hpp"
#include "events/rst_event.hpp"
#include "flow/flow_table.hpp"
#include "flow/host_ttl.hpp"
#include "metrics/lcore_stats.hpp"
#include "packet/packet.hpp"

struct rte_ring;

namespace rstmon::pipeline {

// One received frame, as the DPDK layer hands it over (data contiguous for at least `len` bytes).
struct Frame {
    const uint8_t* data = nullptr;
    uint32_t len = 0;       // bytes available at data (headers; may be less than wire_len)
    uint32_t wire_len = 0;  // frame length as received (for byte counters)
    uint16_t port = 0;
    uint64_t ts_ns = 0;
};

// Service of a flow from its server port: 0 = "other", else index in the configured list.
using ServiceMap = std::array<uint8_t, 65536>;

struct WorkerConfig {
    uint16_t worker_id = 0;
    std::array<packet::LinkType, metrics::kMaxPorts> link{};  // link type per port index
    const ServiceMap* services = nullptr;
    classify::Thresholds thresholds;
    rte_ring* events = nullptr;  // SP/SC ring of RstEvent, or null for no events
    bool events_lossless = false;  // offline: wait for ring space instead of dropping
    uint32_t events_per_second = 0;  // 0 = unlimited
    uint32_t events_burst = 1000;
    uint32_t sweep_per_burst = 8;  // flow slots examined for expiry per burst (and idle poll)
    uint32_t pending_rsts = 16384;  // RSTs waiting for their episode to end (linger)
};

class Worker {
public:
    Worker(const WorkerConfig& cfg, flow::FlowTable& table, metrics::LcoreStats& stats);
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void process(const Frame* frames, uint32_t n);
    // Called when a poll returned nothing: expiry and RST episodes progress on an idle link.
    void idle(uint64_t now_ns);
    // End of the run: finalize every pending RST and end the connections closed by FIN or RST;
    // with `expire`, also the flows whose timeouts passed by the last packet (end of a replay).
    void finish(bool expire);
    // Publishes table gauges into the stats (cheap; once per burst or poll round).
    void publish();

private:
    struct PendingRst {
        events::RstEvent ev;
        uint64_t deadline_ns = 0;
        uint32_t pos = 0;      // flow slot, UINT32_MAX = no flow
        tcp::Ms episode_end = 0;
        uint16_t gen = 0;
    };

    void process_chunk(const Frame* frames, uint32_t n);
    void handle_tcp(const Frame& f, const packet::TcpSegment& seg, const flow::FlowKey& key,
                    tcp::Side side, flow::FlowRecord* rec);
    void handle_rst(const Frame& f, const packet::TcpSegment& seg, flow::FlowRecord* rec,
                    const flow::FlowKey& key, tcp::Side side);
    void end_connection(const flow::FlowRecord& rec);
    void restart_after_reset(flow::FlowRecord& rec, const packet::TcpSegment& seg, tcp::Side side,
                             uint64_t ts_ns);
    static void on_flow_removed(void* self, const flow::FlowRecord& rec, flow::RemoveReason why);
    tcp::Side guess_client(const flow::FlowKey& key) const;
    uint8_t service_of(const packet::TcpSegment& seg, const flow::FlowKey& key,
                       const tcp::Connection* c) const;
    void finalize_due(uint64_t now_ns);
    void finalize(PendingRst& p);
    void emit(const events::RstEvent& e);
    bool take_event_token(uint64_t now_ns);

    WorkerConfig cfg_;
    flow::FlowTable& table_;
    metrics::LcoreStats& stats_;
    flow::HostTtlTable hosts_;
    // Per-chunk scratch (parse results and keys of up to FlowTable::kBulkMax frames).
    packet::TcpSegment segs_[flow::FlowTable::kBulkMax];
    flow::FlowKey keys_[flow::FlowTable::kBulkMax];
    tcp::Side sides_[flow::FlowTable::kBulkMax];
    std::vector<PendingRst> pending_;  // ring buffer, fixed capacity
    size_t pending_head_ = 0, pending_count_ = 0;
    uint64_t now_ns_ = 0;
    double tokens_ = 0;
    uint64_t tokens_ts_ = 0;
};

}  // namespace rstmon::pipeline
