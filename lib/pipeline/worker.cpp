#include "pipeline/worker.hpp"

#include "events/evidence.hpp"
#include "forensics/writer.hpp"
#include "top/feed.hpp"

#include <rte_branch_prediction.h>
#include <algorithm>
#include <rte_pause.h>
#include <rte_ring_elem.h>

namespace rstmon::pipeline {

using packet::ParseStatus;
using packet::tcpflag::ack;
using packet::tcpflag::rst;
using packet::tcpflag::syn;

Worker::Worker(const WorkerConfig& cfg, flow::FlowTable& table, metrics::LcoreStats& stats)
    : cfg_(cfg), table_(table), stats_(stats),
      own_hosts_(cfg.host_ttls ? nullptr : std::make_unique<flow::HostTtlTable>()),
      hosts_(cfg.host_ttls ? cfg.host_ttls : own_hosts_.get()), matcher_(cfg.match, stats),
      dedup_(cfg.dedup_window_ns, cfg.dedup_entries),
      pending_(cfg.pending_rsts ? cfg.pending_rsts : 1),
      tokens_(cfg.events_burst) {
    table_.set_remove_hook(&Worker::on_flow_removed, this);
    if (cfg_.forensics != nullptr) recorder_ = cfg_.forensics->recorder(cfg_.worker_id);
}

void Worker::process(const Frame* frames, uint32_t n) {
    matcher_.poll_mailbox();  // a burst boundary: new match databases (SIGHUP) take over here
    for (uint32_t base = 0; base < n; base += flow::FlowTable::kBulkMax)
        process_chunk(frames + base, std::min(n - base, flow::FlowTable::kBulkMax));
    finalize_due(now_ns_);
    table_.sweep(now_ns_, cfg_.sweep_per_burst);
    publish();
}

// Parse the whole chunk, look its flows up in one bulk call (prefetching the records), then run
// the per-packet logic in arrival order.
void Worker::process_chunk(const Frame* frames, uint32_t n) {
    uint64_t pkts[metrics::kMaxPorts] = {}, bytes[metrics::kMaxPorts] = {};
    const flow::FlowKey* key_ptrs[flow::FlowTable::kBulkMax];
    flow::FlowRecord* found[flow::FlowTable::kBulkMax];
    uint8_t tcp_index[flow::FlowTable::kBulkMax];
    uint32_t ntcp = 0;
    for (uint32_t i = 0; i < n; ++i) {
        const Frame& f = frames[i];
        const uint16_t port = f.port < metrics::kMaxPorts ? f.port : metrics::kMaxPorts - 1;
        pkts[port]++;
        bytes[port] += f.wire_len;
        if (f.ts_ns > now_ns_) now_ns_ = f.ts_ns;
        const packet::ParseResult r =
            packet::parse(cfg_.link[port], f.data, f.len, segs_[i], cfg_.decap);
        if (unlikely(r.encap != packet::Encap::none)) count_decap(r);
        if (likely(r.status == ParseStatus::tcp)) {
            // A multi-segment frame is parsed from a copy of its first bytes (len < wire_len):
            // it is sliced only if the datagram runs past the whole frame, not past the copy.
            if (unlikely(segs_[i].sliced) && f.wire_len > f.len)
                segs_[i].sliced = static_cast<size_t>(segs_[i].payload - f.data) +
                                      segs_[i].payload_len > f.wire_len;
            sides_[i] = flow::make_key(segs_[i], keys_[i]);
            if (dedup_.enabled()) {  // the filter's set loads while the burst is parsed
                dedup_sigs_[i] = flow::segment_signature(segs_[i]);
                dedup_.prefetch(dedup_sigs_[i]);
            }
            hashes_[ntcp] = f.hashed ? f.flow_hash : flow::flow_hash(keys_[i]);
            if (f.host_observed)
                host_ttls_[ntcp] = f.host_ttl;
            else if (flow::HostTtlTable::consulted(segs_[i]))  // observed below, in order
                hosts_->prefetch(segs_[i].src);
            key_ptrs[ntcp] = &keys_[i];
            tcp_index[ntcp++] = static_cast<uint8_t>(i);
        } else if (r.status == ParseStatus::ignored) {
            stats_.ignored[static_cast<size_t>(r.ignored)].inc();
        } else {
            stats_.malformed[static_cast<size_t>(r.malformed)].inc();
        }
    }
    // The dispatch stage's host TTL memory (flow/host_ttl.hpp), when no dispatcher did it: every
    // TCP frame in arrival order.
    for (uint32_t j = 0; j < ntcp; ++j) {
        const Frame& f = frames[tcp_index[j]];
        if (!f.host_observed) host_ttls_[j] = hosts_->observe(segs_[tcp_index[j]], f.ts_ns);
    }
    if (ntcp > 0) table_.lookup_bulk(key_ptrs, hashes_, ntcp, found);
    if (unlikely(recorder_ != nullptr))  // forensic frame rings: a cache miss each, overlapped
        for (uint32_t j = 0; j < ntcp; ++j)
            if (found[j]) recorder_->prefetch_header(table_.position(found[j]));
    const uint64_t removals = table_.removals(), inserts = table_.inserts();
    for (uint32_t j = 0; j < ntcp; ++j) {
        const uint32_t i = tcp_index[j];
        // The bulk answer holds unless earlier frames of the chunk changed the table: a removal
        // may have freed (or reused) a record found; an insert may have created a flow missed
        // (a SYN and its SYN-ACK in one burst). Inserts move no other key.
        flow::FlowRecord* rec = found[j];
        if (unlikely(table_.removals() != removals) ||
            (rec == nullptr && table_.inserts() != inserts))
            rec = table_.lookup(keys_[i], hashes_[j]);
        if (unlikely(recorder_ != nullptr) && j + 1 < ntcp && found[j + 1])
            recorder_->prefetch_slot(table_.position(found[j + 1]));
        handle_tcp(frames[i], segs_[i], keys_[i], hashes_[j], sides_[i], rec, dedup_sigs_[i],
                   host_ttls_[j]);
    }
    for (size_t p = 0; p < metrics::kMaxPorts; ++p) {
        if (pkts[p] == 0) continue;
        stats_.port_packets[p].add(pkts[p]);
        stats_.port_bytes[p].add(bytes[p]);
    }
}

// Frames that arrived inside a mirror tunnel, by encapsulation and configured session (a short
// scan of at most kMaxSessions ids, for tunnelled frames only).
void Worker::count_decap(const packet::ParseResult& r) {
    size_t slot = 0;
    if (r.has_session)
        for (size_t s = 0; s < cfg_.session_count; ++s)
            if (cfg_.session_ids[s] == r.session) {
                slot = s + 1;
                break;
            }
    stats_.decap[static_cast<size_t>(r.encap)][slot].inc();
}

void Worker::idle(uint64_t now_ns) {
    matcher_.poll_mailbox();
    if (now_ns > now_ns_) now_ns_ = now_ns;
    finalize_due(now_ns_);
    table_.sweep(now_ns_, cfg_.sweep_per_burst);
    publish();
}

void Worker::finish(bool expire) {
    while (pending_count_ > 0) {
        finalize(pending_[pending_head_]);
        pending_head_ = (pending_head_ + 1) % pending_.size();
        pending_count_--;
    }
    // End of the run: connections already closed by FIN or RST end (their outcome counts); at
    // the end of a capture, so do flows whose timeouts passed by its last packet. The others
    // were still open when it stopped.
    if (expire) table_.sweep(now_ns_, table_.capacity());
    table_.erase_if([](const flow::FlowRecord& r) { return r.conn.any_fin() || r.conn.any_rst(); });
    publish();
}

void Worker::publish() {
    const flow::FlowTableStats& t = table_.stats();
    stats_.flows_active.set(table_.active());
    stats_.flow_capacity.set(table_.capacity());
    stats_.flows_created.set(t.created);
    stats_.flows_expired.set(t.expired);
    stats_.flows_evicted.set(t.evicted);
    stats_.flow_table_full.set(t.full);
    matcher_.publish();
}

// How a connection ended, counted once when its flow leaves the table or its 4-tuple is reused.
// `why`: a flow the full table pushed out (to admit a SYN) did not end by itself; unless it had
// closed, its outcome is `evicted`, never a timeout it did not reach.
void Worker::end_connection(const flow::FlowRecord& rec, flow::RemoveReason why) {
    matcher_.on_end(rec, table_.position(&rec));  // its buffer and kept name go back
    const tcp::Connection& c = rec.conn;
    metrics::Outcome o;
    if (c.any_rst())
        o = metrics::Outcome::rst;
    else if (c.any_fin())
        o = metrics::Outcome::fin;
    else if (why == flow::RemoveReason::evicted)
        o = metrics::Outcome::evicted;
    else if (c.origin == tcp::Origin::handshake && !c.established)
        o = metrics::Outcome::handshake_timeout;  // e.g. a SYN dropped by a full backlog
    else
        o = metrics::Outcome::idle_expired;
    stats_.connections[static_cast<size_t>(o)].inc();
    if (unlikely(c.one_sided())) stats_.one_sided_flows.inc();
}

// Traffic on a 4-tuple after its reset episode ended: both ends dropped that connection, so this
// is another one whose start we did not see (as Zeek starts a new connection). Roles carry over.
void Worker::restart_after_reset(flow::FlowRecord& rec, const packet::TcpSegment& seg,
                                 tcp::Side side, uint64_t ts_ns) {
    tcp::Connection& c = rec.conn;
    if (!c.episode.active || !c.any_rst() || rec.ms(ts_ns) < c.episode.end_ms) return;
    end_connection(rec);
    const tcp::Side client = c.client;
    c.start(seg, side);
    if (c.client == tcp::kNoSide) c.client = client;
    rec.gen = static_cast<uint16_t>(rec.gen + 1);
    rec.first_ns = ts_ns;
}

void Worker::on_flow_removed(void* self, const flow::FlowRecord& rec, flow::RemoveReason why) {
    static_cast<Worker*>(self)->end_connection(rec, why);
}

void Worker::handle_tcp(const Frame& f, const packet::TcpSegment& seg, const flow::FlowKey& key,
                        uint32_t hash, tcp::Side side, flow::FlowRecord* rec, uint64_t dedup_sig,
                        uint8_t host_ttl) {
    // A SPAN copy of a segment already seen goes no further (flow/dedup.hpp); what its TTL says
    // about the mirror points is kept.
    if (dedup_.enabled() && dedup_.is_copy(dedup_sig, f.ts_ns)) {
        stats_.duplicates.inc();
        if (rec != nullptr) note_copy(*rec, seg, side);
        return;
    }
    stats_.tcp_packets.inc();
    if (unlikely(seg.sliced)) stats_.sliced.inc();
    if (rec != nullptr && unlikely(table_.expire_if_stale(rec, f.ts_ns))) rec = nullptr;

    if (unlikely(seg.has(rst))) {
        handle_rst(f, seg, rec, key, side, host_ttl);
        return;
    }
    if (rec == nullptr) {
        // A SYN always starts a flow; a SYN+ACK or mid-stream segment starts one too (roles and
        // sequence state become known), marked as not seen from its start.
        rec = table_.insert(key, hash, f.ts_ns, seg.has(syn));
        if (rec == nullptr) {
            stats_.untracked_packets.inc();
            return;
        }
        rec->conn.start(seg, side);
        if (rec->conn.client == tcp::kNoSide) rec->conn.client = guess_client(key);
    } else if (unlikely(seg.has(syn) && (rec->conn.any_fin() || rec->conn.any_rst()) &&
                        (!seg.has(ack) || (rec->conn.dir[side].syn &&
                                           seg.seq != rec->conn.dir[side].isn)))) {
        // A SYN on a 4-tuple whose connection had closed or been reset: a new connection (also
        // when a stack retries with the same ISN). After a FIN close the old one may still be in
        // TIME_WAIT at an endpoint: the record is our "recently closed" memory. So is a SYN-ACK
        // with another ISN than the side's earlier one: the new connection's SYN was missed.
        end_connection(*rec);
        const bool after_fin = rec->conn.any_fin();
        const uint16_t gen = static_cast<uint16_t>(rec->gen + 1);
        rec->conn.start(seg, side, after_fin);
        rec->gen = gen;
        rec->first_ns = f.ts_ns;
    } else if (unlikely(rec->conn.episode.active)) {
        restart_after_reset(*rec, seg, side, f.ts_ns);
    }
    tcp::Connection& c = rec->conn;
    const tcp::Ms now = rec->ms(f.ts_ns);
    if (unlikely(c.episode.active) && now < c.episode.end_ms)
        c.episode.cause = static_cast<uint8_t>(classify::on_episode_segment(
            c, side, seg, static_cast<classify::Cause>(c.episode.cause)));
    // The other side answered the segment that ended a long silence: the flow survived that gap
    // (what bounds a middlebox's idle timeout from below). Only after long gaps: cheap.
    if (unlikely(static_cast<uint64_t>(c.last_gap_ms) * 1000000ull >= cfg_.learn_min_gap_ns) &&
        c.last_side == tcp::other(side) && !c.any_rst() && cfg_.top != nullptr)
        note_survived_gap(c, key);
    const uint64_t prev_ns = rec->last_ns;
    const bool handshaking = !c.established;
    rec->last_ns = f.ts_ns;
    c.update(seg, side, now);
    // Each side's handshake answer delay (SYN -> SYN-ACK, SYN-ACK -> ACK): its round trip from
    // the monitor, against which the classifier judges whether an RST answered promptly.
    if (unlikely(handshaking) && (c.established || (c.synack && seg.has(syn))) &&
        c.dir[side].answer == 0 && f.ts_ns > prev_ns)
        c.dir[side].answer = tcp::answer_code((f.ts_ns - prev_ns) / 1000);
    if (unlikely(!c.service_set)) {  // once per flow, not per packet
        c.service = service_of(seg, key, &c);
        c.service_set = c.client != tcp::kNoSide;
    }
    matcher_.on_segment(*rec, table_.position(rec), seg, side);  // SNI/Host, triggers
    if (unlikely(recorder_ != nullptr))  // the flow's last K frames, for forensic captures
        recorder_->note(table_.position(rec), rec->gen, f.data, f.len, f.wire_len, f.ts_ns, f.port);
}

// What a copy says about the mirror points: one with another TTL than its original (the side's
// latest segment, or the episode's first RST: copies come within microseconds) was seen before
// and after a router; a copy of the episode's first RST shows that RST passed both points.
void Worker::note_copy(flow::FlowRecord& rec, const packet::TcpSegment& seg, tcp::Side side) {
    tcp::Episode& e = rec.conn.episode;
    const bool first_rst = seg.has(rst) && e.active && e.side == side && e.seq == seg.seq;
    if (first_rst) e.crossed = 1;
    const uint8_t original_ttl = first_rst ? e.rst_ttl : rec.conn.dir[side].ttl;
    if (original_ttl != 0 && seg.ttl != original_ttl) rec.two_sided = 1;
}

// Without a handshake, the roles come from the ports: a configured service port, else a
// well-known port (below 1024) against an ephemeral one, marks the server. kNoSide if unclear.
tcp::Side Worker::guess_client(const flow::FlowKey& key) const {
    const uint16_t port[2] = {key.lo_port, key.hi_port};
    auto server_side = [&](auto is_server) -> tcp::Side {
        const bool s0 = is_server(port[0]), s1 = is_server(port[1]);
        if (s0 == s1) return tcp::kNoSide;
        return s0 ? 0 : 1;
    };
    tcp::Side server = tcp::kNoSide;
    if (cfg_.services != nullptr)
        server = server_side([&](uint16_t p) { return (*cfg_.services)[p] != 0; });
    if (server == tcp::kNoSide) server = server_side([](uint16_t p) { return p < 1024; });
    return server == tcp::kNoSide ? tcp::kNoSide : tcp::other(server);
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

void Worker::handle_rst(const Frame& f, const packet::TcpSegment& seg, flow::FlowRecord* rec,
                        const flow::FlowKey& key, tcp::Side side, uint8_t host_ttl) {
    stats_.rst_packets.inc();
    if (rec != nullptr && rec->conn.episode.active) restart_after_reset(*rec, seg, side, f.ts_ns);
    tcp::Connection* c = rec ? &rec->conn : nullptr;
    const uint64_t silence_ns = rec && f.ts_ns > rec->last_ns ? f.ts_ns - rec->last_ns : 0;
    classify::Verdict v = classify::classify(c, side, seg, cfg_.thresholds, c ? host_ttl : 0,
                                             guess_client(key), silence_ns);

    PendingRst p;
    p.pos = UINT32_MAX;
    p.deadline_ns = f.ts_ns;
    events::fill_evidence(p.ev, c, side, host_ttl, v);  // the state before this RST
    if (rec != nullptr) {
        const tcp::Ms now = rec->ms(f.ts_ns);
        // Evidence before this RST changes the record: the silence it ended and the flow's age.
        const uint64_t gap_ns = f.ts_ns > rec->last_ns ? f.ts_ns - rec->last_ns : 0;
        p.ev.idle_ns = std::max<uint64_t>(gap_ns, static_cast<uint64_t>(c->last_gap_ms) * 1000000ull);
        p.ev.age_ns = f.ts_ns > rec->first_ns ? f.ts_ns - rec->first_ns : 0;
        tcp::Episode& e = c->episode;
        if (e.active && now < e.end_ms) {
            // Part of an open episode: its cause is the episode's (this RST may itself be race
            // evidence); stage, sender and validity are this RST's own.
            p.ev.first = 0;
            e.cause = static_cast<uint8_t>(classify::on_episode_segment(
                *c, side, seg, static_cast<classify::Cause>(e.cause)));
        } else {
            const uint64_t linger_ms = cfg_.thresholds.linger_ns / 1000000ull;
            e = tcp::Episode{};
            e.active = 1;
            e.end_ms = static_cast<tcp::Ms>(
                std::min<uint64_t>(static_cast<uint64_t>(now) + linger_ms, UINT32_MAX));
            e.seq = seg.seq;
            e.side = side;
            e.cause = static_cast<uint8_t>(v.cause);
        }
        v.cause = static_cast<classify::Cause>(e.cause);
        p.pos = table_.position(rec);
        p.gen = rec->gen;
        matcher_.annotate(*rec, p.pos, p.ev);  // trigger, sni/host
        p.episode_end = e.end_ms;
        p.deadline_ns = rec->first_ns + static_cast<uint64_t>(e.end_ms) * 1000000ull;
        rec->last_ns = f.ts_ns;
        c->note_rst(seg, side);
        if (unlikely(recorder_ != nullptr)) {
            // The episode's first RST opens its capture (the flow's last K frames); this RST and
            // what follows in the episode are appended as they are noted.
            p.ev.capture_id = p.ev.first ? recorder_->open(p.pos, p.gen, p.deadline_ns, v.cause, f.port)
                                         : recorder_->attached(p.pos, p.gen);
            const int at = recorder_->note(p.pos, p.gen, f.data, f.len, f.wire_len, f.ts_ns, f.port);
            if (at >= 0 && p.ev.capture_id != 0) p.ev.pcap_rst = static_cast<uint16_t>(at);
        }
    }

    events::RstEvent& ev = p.ev;
    ev.ts_ns = f.ts_ns;
    ev.src = seg.src;
    ev.dst = seg.dst;
    ev.sport = seg.sport;
    ev.dport = seg.dport;
    ev.family = seg.family;
    ev.seq = seg.seq;
    ev.ack = seg.ack;
    ev.flags = seg.flags;
    ev.ttl = seg.ttl;
    ev.payload_len = seg.payload_len;
    ev.vlan = seg.vlan;
    ev.port = f.port;
    ev.worker = cfg_.worker_id;
    ev.service = c && c->service ? c->service : service_of(seg, key, c);
    ev.cause = v.cause;
    ev.stage = v.stage;
    ev.sender = v.sender;
    ev.validity = v.validity;
    if (unlikely(cfg_.include_payload)) events::keep_payload(ev, seg);

    if (rec == nullptr) {  // no flow, no episode: final now
        if (unlikely(recorder_ != nullptr)) {  // a capture of the lone RST
            ev.capture_id = recorder_->open(UINT32_MAX, 0, f.ts_ns, v.cause, f.port);
            const int at = recorder_->append(ev.capture_id, f.data, f.len, f.wire_len, f.ts_ns, f.port);
            if (at >= 0) ev.pcap_rst = static_cast<uint16_t>(at);
        }
        finalize(p);
        return;
    }
    if (pending_count_ == pending_.size()) {  // full: the oldest becomes final early
        finalize(pending_[pending_head_]);
        pending_head_ = (pending_head_ + 1) % pending_.size();
        pending_count_--;
        stats_.rst_finalized_early.inc();
    }
    pending_[(pending_head_ + pending_count_) % pending_.size()] = p;
    pending_count_++;
}

void Worker::finalize_due(uint64_t now_ns) {
    while (pending_count_ > 0 && pending_[pending_head_].deadline_ns <= now_ns) {
        finalize(pending_[pending_head_]);
        pending_head_ = (pending_head_ + 1) % pending_.size();
        pending_count_--;
    }
}

// An RST becomes final: its episode's cause is settled. Counted here, exactly once.
void Worker::finalize(PendingRst& p) {
    events::RstEvent& e = p.ev;
    if (p.pos != UINT32_MAX) {
        const flow::FlowRecord* r = table_.at(p.pos);
        if (r && r->in_use && r->gen == p.gen && r->conn.episode.end_ms == p.episode_end) {
            e.cause = static_cast<classify::Cause>(r->conn.episode.cause);
            // Mirrored on both sides of a router, the episode's RST was seen on one side only:
            // that router made it. Endpoint causes were judged against TTLs seen before the
            // router, the RST's own among them: void (the endpoint's RSTs cross, and are copied).
            if (unlikely(r->two_sided) && !r->conn.episode.crossed &&
                e.cause != classify::Cause::middlebox_reject &&
                e.cause != classify::Cause::idle_timeout && e.cause != classify::Cause::injected)
                e.cause = classify::Cause::unclassified;
        }
    }
    stats_.rst[static_cast<size_t>(e.cause)][static_cast<size_t>(e.stage)]
              [static_cast<size_t>(e.sender)][e.service]
                  .inc();
    stats_.rst_validity[static_cast<size_t>(e.cause)][static_cast<size_t>(e.validity)].inc();
    if (e.trigger != events::kNoTrigger)
        stats_.rst_by_trigger[static_cast<size_t>(e.cause)][e.trigger].inc();
    if (e.idle_ns != events::kUnknownNs) {
        // Bucketed at microsecond resolution, exactly as the event's idle_s/flow_age_s.
        const size_t c = static_cast<size_t>(e.cause);
        const uint64_t idle_us = e.idle_ns / 1000, age_us = e.age_ns / 1000;
        stats_.rst_idle_bucket[c][metrics::bucket_of(metrics::kIdleBucketsS, idle_us)].inc();
        stats_.rst_idle_sum_us[c].add(idle_us);
        stats_.rst_age_bucket[c][metrics::bucket_of(metrics::kAgeBucketsS, age_us)].inc();
        stats_.rst_age_sum_us[c].add(age_us);
    }
    if (unlikely(recorder_ != nullptr)) recorder_->settle(e);  // its capture: written or not
    if (cfg_.top != nullptr) push_summary(e);
    emit(e);
}

// One record per finalized RST for /top (servers, clients, prefixes) and the learned timeouts.
void Worker::push_summary(const events::RstEvent& e) {
    top::Record r;
    r.family = e.family;
    r.cause = static_cast<uint8_t>(e.cause);
    r.service = e.service;
    r.gap_ns = e.idle_ns;
    if (e.sender != classify::Sender::unknown) {
        const bool from_server = e.sender == classify::Sender::server;
        r.roles_known = 1;
        r.server = from_server ? e.src : e.dst;
        r.client = from_server ? e.dst : e.src;
        r.server_port = from_server ? e.sport : e.dport;
    }
    cfg_.top->push(cfg_.worker_id, r);
}

void Worker::note_survived_gap(const tcp::Connection& c, const flow::FlowKey& key) {
    top::Record r;
    r.kind = top::RecordKind::survived_gap;
    r.family = key.family;
    r.service = c.service;
    r.gap_ns = static_cast<uint64_t>(c.last_gap_ms) * 1000000ull;
    if (c.client != tcp::kNoSide) {
        r.roles_known = 1;
        r.client = c.client == 0 ? key.lo_addr : key.hi_addr;
        r.server = c.client == 0 ? key.hi_addr : key.lo_addr;
        r.server_port = c.client == 0 ? key.hi_port : key.lo_port;
    }
    cfg_.top->push(cfg_.worker_id, r);
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

void Worker::emit(const events::RstEvent& e) {
    if (cfg_.events == nullptr) return;
    if (!cfg_.events_lossless && !take_event_token(e.ts_ns)) {
        stats_.events_dropped.inc();
        return;
    }
    while (rte_ring_sp_enqueue_elem(cfg_.events, const_cast<events::RstEvent*>(&e), sizeof e) != 0) {
        if (!cfg_.events_lossless) {
            stats_.events_dropped.inc();
            return;
        }
        rte_pause();  // offline replay: the control thread drains; nothing may be lost
    }
}

}  // namespace rstmon::pipeline
