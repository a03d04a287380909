// The per-burst worker: parse -> flow -> tcp -> classify -> stats/events. One per worker lcore,
// owning its flow table shard, its LcoreStats and its pending-RST queue. No locks, no allocation,
// no logging per packet (every buffer is sized at start-up).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "classify/classifier.hpp"
#include "events/rst_event.hpp"
#include "flow/dedup.hpp"
#include "flow/flow_table.hpp"
#include "flow/host_ttl.hpp"
#include "metrics/lcore_stats.hpp"
#include "packet/packet.hpp"
#include "pipeline/flow_match.hpp"

struct rte_ring;

namespace rstmon::forensics {
class Forensics;
class Recorder;
}  // namespace rstmon::forensics
namespace rstmon::top {
class Feed;
}

namespace rstmon::pipeline {

// One received frame, as the DPDK layer hands it over (data contiguous for at least `len` bytes).
struct Frame {
    const uint8_t* data = nullptr;
    uint32_t len = 0;       // bytes available at data (headers; may be less than wire_len)
    uint32_t wire_len = 0;  // frame length as received (for byte counters)
    uint16_t port = 0;
    uint64_t ts_ns = 0;
    // flow::flow_hash of the frame's flow key, when the software dispatcher computed it (it
    // parsed the frame to choose the worker): the worker does not hash again.
    uint32_t flow_hash = 0;
    bool hashed = false;
    // The dispatcher showed the frame to the host TTL memory (flow/host_ttl.hpp) already; for an
    // RST, `host_ttl` is its answer. Otherwise the worker is its own dispatch stage.
    bool host_observed = false;
    uint8_t host_ttl = 0;
};

// Service of a flow from its server port: 0 = "other", else index in the configured list.
using ServiceMap = std::array<uint8_t, 65536>;

struct WorkerConfig {
    uint16_t worker_id = 0;
    std::array<packet::LinkType, metrics::kMaxPorts> link{};  // link type per port index
    const ServiceMap* services = nullptr;
    packet::DecapConfig decap;  // which mirror tunnels the parser opens
    // Mirror sessions named in config (ERSPAN session id, VXLAN/Geneve VNI, GRE key): index + 1
    // is the `session` label slot; others count as slot 0 ("other").
    std::array<uint32_t, metrics::kMaxSessions> session_ids{};
    uint8_t session_count = 0;
    classify::Thresholds thresholds;
    rte_ring* events = nullptr;  // SP/SC ring of RstEvent, or null for no events
    bool events_lossless = false;  // offline: wait for ring space instead of dropping
    uint32_t events_per_second = 0;  // 0 = unlimited
    uint32_t events_burst = 1000;
    uint32_t sweep_per_burst = 8;  // flow slots examined for expiry per burst (and idle poll)
    uint32_t pending_rsts = 16384;  // RSTs waiting for their episode to end (linger)
    uint64_t dedup_window_ns = 2000000;  // SPAN copies within this window count once; 0 = off
    uint32_t dedup_entries = 65536;      // segments the duplicate filter remembers
    // Evidence, forensic captures, the top summary and learned timeouts (events/evidence.hpp,
    // forensics/, top/). Null: off.
    bool include_payload = false;                // events carry the RST's payload bytes
    forensics::Forensics* forensics = nullptr;   // this worker's Recorder comes from it
    top::Feed* top = nullptr;                    // one record per finalized RST / survived gap
    uint64_t learn_min_gap_ns = 10ull * 1000000000ull;  // idle gaps worth reporting as survived
    MatchConfig match;  // services by SNI/Host and triggers (no databases: port map only)
    // The engine's host TTL memory, shared by all workers (flow/host_ttl.hpp); null: the worker
    // keeps one of its own (a lone worker, tests).
    flow::HostTtlTable* host_ttls = nullptr;
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
    // Where the control thread posts recompiled match databases (SIGHUP).
    MatchMailbox& match_mailbox() { return matcher_.mailbox(); }

private:
    struct PendingRst {
        events::RstEvent ev;
        uint64_t deadline_ns = 0;
        uint32_t pos = 0;      // flow slot, UINT32_MAX = no flow
        tcp::Ms episode_end = 0;
        uint16_t gen = 0;
    };

    void process_chunk(const Frame* frames, uint32_t n);
    void count_decap(const packet::ParseResult& r);
    void handle_tcp(const Frame& f, const packet::TcpSegment& seg, const flow::FlowKey& key,
                    uint32_t hash, tcp::Side side, flow::FlowRecord* rec, uint64_t dedup_sig,
                    uint8_t host_ttl);
    void handle_rst(const Frame& f, const packet::TcpSegment& seg, flow::FlowRecord* rec,
                    const flow::FlowKey& key, tcp::Side side, uint8_t host_ttl);
    void note_copy(flow::FlowRecord& rec, const packet::TcpSegment& seg, tcp::Side side);
    void end_connection(const flow::FlowRecord& rec,
                        flow::RemoveReason why = flow::RemoveReason::expired);
    void restart_after_reset(flow::FlowRecord& rec, const packet::TcpSegment& seg, tcp::Side side,
                             uint64_t ts_ns);
    static void on_flow_removed(void* self, const flow::FlowRecord& rec, flow::RemoveReason why);
    tcp::Side guess_client(const flow::FlowKey& key) const;
    uint8_t service_of(const packet::TcpSegment& seg, const flow::FlowKey& key,
                       const tcp::Connection* c) const;
    void finalize_due(uint64_t now_ns);
    void finalize(PendingRst& p);
    void emit(const events::RstEvent& e);
    void note_survived_gap(const tcp::Connection& c, const flow::FlowKey& key);
    void push_summary(const events::RstEvent& e);
    bool take_event_token(uint64_t now_ns);

    WorkerConfig cfg_;
    flow::FlowTable& table_;
    metrics::LcoreStats& stats_;
    std::unique_ptr<flow::HostTtlTable> own_hosts_;  // when the config names no shared one
    flow::HostTtlTable* hosts_;
    forensics::Recorder* recorder_ = nullptr;
    FlowMatcher matcher_;
    flow::DuplicateFilter dedup_;  // SPAN copies, dropped before the TCP tracker
    // Per-chunk scratch (parse results and keys of up to FlowTable::kBulkMax frames).
    packet::TcpSegment segs_[flow::FlowTable::kBulkMax];
    flow::FlowKey keys_[flow::FlowTable::kBulkMax];
    tcp::Side sides_[flow::FlowTable::kBulkMax];
    uint32_t hashes_[flow::FlowTable::kBulkMax];      // flow::flow_hash of keys_
    uint8_t host_ttls_[flow::FlowTable::kBulkMax];    // an RST's source TTL before it (0: unknown)
    uint64_t dedup_sigs_[flow::FlowTable::kBulkMax];  // flow::segment_signature, when enabled
    std::vector<PendingRst> pending_;  // ring buffer, fixed capacity
    size_t pending_head_ = 0, pending_count_ = 0;
    uint64_t now_ns_ = 0;
    double tokens_ = 0;
    uint64_t tokens_ts_ = 0;
};

}  // namespace rstmon::pipeline
