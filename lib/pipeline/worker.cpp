#include "pipeline/worker.hpp"

#include <rte_branch_prediction.h>
#include <rte_pause.h>
#include <rte_ring_elem.h>

namespace rstmon::pipeline {

using packet::ParseStatus;
using packet::tcpflag::rst;
using packet::tcpflag::syn;

Worker::Worker(const WorkerConfig& cfg, flow::FlowTable& table, metrics::LcoreStats& stats)
    : cfg_(cfg), table_(table), stats_(stats), tokens_(cfg.events_burst) {}

void Worker::process(const Frame* frames, uint32_t n) {
    uint64_t pkts[metrics::kMaxPorts] = {}, bytes[metrics::kMaxPorts] = {};
    packet::TcpSegment seg;
    for (uint32_t i = 0; i < n; ++i) {
        const Frame& f = frames[i];
        const uint16_t port = f.port < metrics::kMaxPorts ? f.port : metrics::kMaxPorts - 1;
        pkts[port]++;
        bytes[port] += f.wire_len;
        if (f.ts_ns > now_ns_) now_ns_ = f.ts_ns;
        const packet::ParseResult r = packet::parse(cfg_.link[port], f.data, f.len, seg);
        if (likely(r.status == ParseStatus::tcp)) {
            handle_tcp(f, seg);
        } else if (r.status == ParseStatus::ignored) {
            stats_.ignored[static_cast<size_t>(r.ignored)].inc();
        } else {
            stats_.malformed[static_cast<size_t>(r.malformed)].inc();
        }
    }
    for (size_t p = 0; p < metrics::kMaxPorts; ++p) {
        if (pkts[p] == 0) continue;
        stats_.port_packets[p].add(pkts[p]);
        stats_.port_bytes[p].add(bytes[p]);
    }
    table_.sweep(now_ns_, cfg_.sweep_per_burst);
    publish();
}

void Worker::idle(uint64_t now_ns) {
    if (now_ns > now_ns_) now_ns_ = now_ns;
    table_.sweep(now_ns_, cfg_.sweep_per_burst);
    publish();
}

void Worker::publish() {
    const flow::FlowTableStats& t = table_.stats();
    stats_.flows_active.set(table_.active());
    stats_.flows_created.set(t.created);
    stats_.flows_expired.set(t.expired);
    stats_.flows_evicted.set(t.evicted);
    stats_.flow_table_full.set(t.full);
}

void Worker::handle_tcp(const Frame& f, const packet::TcpSegment& seg) {
    stats_.tcp_packets.inc();
    if (unlikely(seg.sliced)) stats_.sliced.inc();
    flow::FlowKey key;
    const tcp::Side side = flow::make_key(seg, key);
    flow::FlowRecord* rec = table_.lookup(key);

    if (unlikely(seg.has(rst))) {
        handle_rst(f, seg, rec, key, side);
        return;
    }
    if (rec == nullptr) {
        // A SYN always starts a flow; a SYN+ACK or mid-stream segment starts one too (roles and
        // sequence state become known), marked as not seen from its start.
        rec = table_.insert(key, f.ts_ns, seg.has(syn));
        if (rec == nullptr) {
            stats_.untracked_packets.inc();
            return;
        }
        rec->conn.start(seg, side);
    } else if (seg.has(syn) && !seg.has(packet::tcpflag::ack) && rec->conn.dir[side].syn &&
               seg.seq != rec->conn.dir[side].isn &&
               (rec->conn.dir[0].rst || rec->conn.dir[1].rst || rec->conn.any_fin())) {
        // A new SYN with a new ISN on a 4-tuple that was reset or closed: a new connection.
        rec->conn.start(seg, side);
        rec->first_ns = f.ts_ns;
    }
    rec->last_ns = f.ts_ns;
    rec->conn.update(seg, side);
    if (rec->conn.service == 0) rec->conn.service = service_of(seg, key, &rec->conn);
}

uint8_t Worker::service_of(const packet::TcpSegment& seg, const flow::FlowKey& key,
                           const tcp::Connection* c) const {
    if (cfg_.services == nullptr) return 0;
    const ServiceMap& m = *cfg_.services;
    if (c != nullptr && c->client != tcp::kNoSide)
        return m[c->server() == 0 ? key.lo_port : key.hi_port];
    // Roles unknown: whichever port is a configured service port.
    return m[seg.sport] != 0 ? m[seg.sport] : m[seg.dport];
}

bool Worker::take_event_token(uint64_t now_ns) {
    if (cfg_.events_per_second == 0) return true;
    if (now_ns > tokens_ts_) {
        tokens_ += static_cast<double>(now_ns - tokens_ts_) * 1e-9 * cfg_.events_per_second;
        if (tokens_ > cfg_.events_burst) tokens_ = cfg_.events_burst;
        tokens_ts_ = now_ns;
    }
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
}

void Worker::handle_rst(const Frame& f, const packet::TcpSegment& seg, flow::FlowRecord* rec,
                        const flow::FlowKey& key, tcp::Side side) {
    stats_.rst_packets.inc();
    tcp::Connection* c = rec ? &rec->conn : nullptr;
    const classify::Verdict v = classify::classify(c, side, seg, cfg_.thresholds);
    const uint8_t service = c && c->service ? c->service : service_of(seg, key, c);
    stats_.rst[static_cast<size_t>(v.cause)][static_cast<size_t>(v.stage)]
              [static_cast<size_t>(v.sender)][service]
                  .inc();
    stats_.rst_validity[static_cast<size_t>(v.cause)][static_cast<size_t>(v.validity)].inc();
    if (rec != nullptr) {
        rec->last_ns = f.ts_ns;
        rec->conn.note_rst(seg, side);
    }

    if (cfg_.events == nullptr) return;
    if (!cfg_.events_lossless && !take_event_token(f.ts_ns)) {
        stats_.events_dropped.inc();
        return;
    }
    events::RstEvent e;
    e.ts_ns = f.ts_ns;
    e.src = seg.src;
    e.dst = seg.dst;
    e.sport = seg.sport;
    e.dport = seg.dport;
    e.family = seg.family;
    e.seq = seg.seq;
    e.ack = seg.ack;
    e.flags = seg.flags;
    e.ttl = seg.ttl;
    e.payload_len = seg.payload_len;
    e.vlan = seg.vlan;
    e.port = f.port;
    e.worker = cfg_.worker_id;
    e.service = service;
    e.cause = v.cause;
    e.stage = v.stage;
    e.sender = v.sender;
    e.validity = v.validity;
    while (rte_ring_sp_enqueue_elem(cfg_.events, &e, sizeof e) != 0) {
        if (!cfg_.events_lossless) {
            stats_.events_dropped.inc();
            return;
        }
        rte_pause();  // offline replay: the control thread drains; nothing may be lost
    }
}

}  // namespace rstmon::pipeline
