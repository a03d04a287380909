// Services and triggers on the data path (config `services[].sni/host`, `triggers`, `match`):
// a flow's service from the client's first payload (TLS server name or HTTP Host, matched by
// Hyperscan), trigger patterns in the first `match.window` payload bytes of each direction, the
// names kept for RST events, and the SIGHUP hand-over of recompiled databases.
//
// One FlowMatcher per worker, used only by that worker. Nothing here allocates after start-up:
// the reassembly buffers, the name table and the scratch are sized from the config.
//
// Per-flow state lives in tcp::Connection (first_payload, trigger, match: 4 bytes): it is reset
// with the connection, so a 4-tuple that starts another connection is identified afresh.
//
// Memory, per worker: match.pending_flows x 4 KiB of reassembly buffers (a ClientHello split over
// segments waits there; none free = decided by port, counted), and match.names (rounded up to a
// power of two) x 264 bytes of names: flow slot + generation -> the SNI/Host that named the
// service, in sets of 8 by slot; a name for a full set pushes out one of its 8 (round robin),
// counted; that flow's events then lack `sni`/`host`, its service stays right.
#pragma once

#include <rte_branch_prediction.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "events/rst_event.hpp"
#include "flow/flow_table.hpp"
#include "match/first_payload.hpp"
#include "metrics/lcore_stats.hpp"
#include "packet/packet.hpp"

namespace rstmon::pipeline {

// What a worker matches with: databases shared by every worker, and a scratch of its own.
struct MatchSet {
    std::shared_ptr<const match::MatchDatabases> db;
    match::Scratch scratch;
    uint32_t window = 0;      // match.window
    uint64_t generation = 0;  // 0 at start, then one per successful reload
};

// One slot each way between the control thread and one worker. The control thread stores a new
// set in `incoming`; the worker exchanges it at a burst boundary and hands its old set back in
// `retired`; the control thread frees it. Atomic pointer exchanges, once per burst at most.
struct MatchMailbox {
    std::atomic<MatchSet*> incoming{nullptr};
    std::atomic<MatchSet*> retired{nullptr};
};

struct MatchConfig {
    std::shared_ptr<const match::MatchDatabases> db;  // null or empty: nothing to match
    uint32_t window = 4096;                           // match.window (0 = no trigger scan)
    uint32_t pending_flows = 1024;                    // match.pending_flows, at most 65535
    uint32_t names = 65536;                           // match.names (0 = events carry no sni/host)
};

class FlowMatcher {
  public:
    static constexpr uint16_t kNoBuffer = 0xffff;
    // tcp::Connection::match bits.
    static constexpr uint8_t kIdentified = 1;
    static constexpr uint8_t kAllDone = 7;  // identified, both trigger windows behind
    static constexpr unsigned kNamedShift = 3;
    static uint8_t named_by(const tcp::Connection& c) { return (c.match >> kNamedShift) & 3; }

    FlowMatcher(const MatchConfig& cfg, metrics::LcoreStats& stats);
    ~FlowMatcher();
    FlowMatcher(const FlowMatcher&) = delete;
    FlowMatcher& operator=(const FlowMatcher&) = delete;

    // At a burst boundary: take the databases the control thread posted, if any.
    void poll_mailbox() {
        if (unlikely(mailbox_.incoming.load(std::memory_order_relaxed) != nullptr)) swap_in();
    }
    MatchMailbox& mailbox() { return mailbox_; }
    uint64_t generation() const { return set_->generation; }

    // A non-RST segment that the connection state has taken. Cheap once the flow's first
    // payload and both windows are behind it: only then, or on payload, is there work.
    void on_segment(flow::FlowRecord& rec, uint32_t pos, const packet::TcpSegment& seg,
                    tcp::Side side) {
        if (!active_ || seg.payload_caplen == 0 || (rec.conn.match & kAllDone) == kAllDone) return;
        on_payload(rec, pos, seg, side);
    }
    // The connection of this record ends: its flow is removed, or its 4-tuple starts another.
    void on_end(const flow::FlowRecord& rec, uint32_t pos);
    // An RST of this flow: the first matched trigger and the name that named the service.
    void annotate(const flow::FlowRecord& rec, uint32_t pos, events::RstEvent& ev) const;
    // Gauges and counters kept outside LcoreStats (scan errors live in the scratch).
    void publish();

    uint32_t buffers_in_use() const { return static_cast<uint32_t>(pool_.size() - free_.size()); }

  private:
    // The name table: sets of kWays tags in one cache line (what every lookup reads), the
    // names themselves in rows beside them (read only for an RST's event, written once).
    static constexpr uint32_t kWays = 8;
    static constexpr size_t kNameRow = 256;  // >= match::HostName::kMax
    struct NameTag {
        uint32_t pos = 0;  // flow slot
        uint16_t gen = 0;  // its generation
        uint8_t kind = 0;  // match::NameKind; 0 = free
        uint8_t len = 0;
    };
    struct alignas(64) TagSet {
        NameTag way[kWays];
    };
    static_assert(sizeof(TagSet) == 64, "one set, one cache line");

    void swap_in();
    void on_payload(flow::FlowRecord& rec, uint32_t pos, const packet::TcpSegment& seg,
                    tcp::Side side);
    void identify_first(flow::FlowRecord& rec, uint32_t pos, const packet::TcpSegment& seg);
    void identify_more(flow::FlowRecord& rec, uint32_t pos, const packet::TcpSegment& seg);
    void decide(flow::FlowRecord& rec, uint32_t pos, const match::Identification& r);
    void give_back(tcp::Connection& c);
    void scan_triggers(tcp::Connection& c, const packet::TcpSegment& seg, tcp::Side side);
    void keep_name(uint32_t pos, uint16_t gen, match::NameKind kind);
    // The way of `pos`'s set that holds its name, or -1.
    int find_name(uint32_t pos) const;
    size_t name_row(uint32_t pos, int way) const {
        return (static_cast<size_t>(pos & name_sets_mask_) * kWays + static_cast<size_t>(way)) *
               kNameRow;
    }

    MatchSet* set_ = nullptr;  // owned; swapped through the mailbox
    MatchMailbox mailbox_;
    metrics::LcoreStats& stats_;
    bool active_ = false;          // anything to match at all (fixed at start: the config's shape)
    bool identify_ = false;        // some service has sni/host patterns
    bool triggers_ = false;        // some trigger, and a window
    uint64_t retired_errors_ = 0;  // scan errors of scratches handed back
    std::vector<match::FirstPayload> pool_;
    std::vector<uint16_t> free_;  // indices into pool_
    std::vector<TagSet> name_tags_;
    std::vector<char> name_bytes_;  // kNameRow bytes per way
    uint32_t name_sets_mask_ = 0;
    uint32_t next_way_ = 0;  // round-robin victim when a set is full
    match::HostName name_;   // what the last identify() extracted
};

// The control thread's side of a reload: hands every worker the new databases, frees the old
// ones once each worker has handed them back.
class MatchSwap {
  public:
    // Call abandon() before the workers (and their mailboxes) are destroyed.
    MatchSwap() = default;
    MatchSwap(const MatchSwap&) = delete;
    MatchSwap& operator=(const MatchSwap&) = delete;

    // Posts a set (the databases and a scratch made here) in every mailbox. False, posting
    // nothing, while the previous hand-over is still in flight. Allocates (control thread).
    bool post(const std::vector<MatchMailbox*>& boxes,
              std::shared_ptr<const match::MatchDatabases> db, uint32_t window,
              uint64_t generation);
    // Frees the sets workers handed back; true once every worker has taken the new one.
    bool poll();
    bool in_flight() const { return !boxes_.empty(); }
    // The workers have stopped: sets not taken, and sets handed back, are freed here.
    void abandon();

  private:
    std::vector<MatchMailbox*> boxes_;
    std::vector<bool> taken_;
};

}  // namespace rstmon::pipeline
