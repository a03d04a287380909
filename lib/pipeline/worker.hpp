// The per-burst worker: parse -> flow -> tcp -> classify -> stats/events. One per worker lcore,
// owning its flow table shard and its LcoreStats. No locks, no allocation, no logging per packet.
#pragma once

#include <array>
#include <cstdint>

#include "classify/classifier.hpp"
#include "events/rst_event.hpp"
#include "flow/flow_table.hpp"
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
    uint32_t sweep_per_burst = 64;  // flow slots examined for expiry per burst
};

class Worker {
public:
    Worker(const WorkerConfig& cfg, flow::FlowTable& table, metrics::LcoreStats& stats);

    void process(const Frame* frames, uint32_t n);
    // Called when a poll returned nothing: lets expiry progress on an idle link.
    void idle(uint64_t now_ns);
    // Publishes table gauges into the stats (cheap; call once per burst or per poll round).
    void publish();

private:
    void handle_tcp(const Frame& f, const packet::TcpSegment& seg);
    void handle_rst(const Frame& f, const packet::TcpSegment& seg, flow::FlowRecord* rec,
                    const flow::FlowKey& key, tcp::Side side);
    uint8_t service_of(const packet::TcpSegment& seg, const flow::FlowKey& key,
                       const tcp::Connection* c) const;
    bool take_event_token(uint64_t now_ns);

    WorkerConfig cfg_;
    flow::FlowTable& table_;
    metrics::LcoreStats& stats_;
    uint64_t now_ns_ = 0;
    double tokens_ = 0;
    uint64_t tokens_ts_ = 0;
};

}  // namespace rstmon::pipeline
