#include "pipeline/flow_match.hpp"

#include <cstring>
#include <stdexcept>

namespace rstmon::pipeline {

using match::Identification;
using match::NameKind;

namespace {

uint32_t round_up_pow2(uint32_t v) {
    uint32_t p = 1;
    while (p < v) p <<= 1;
    return p;
}

}  // namespace

FlowMatcher::FlowMatcher(const MatchConfig& cfg, metrics::LcoreStats& stats) : stats_(stats) {
    set_ = new MatchSet;
    set_->db = cfg.db;
    set_->window = cfg.window;
    if (cfg.db) {
        set_->scratch = cfg.db->make_scratch();
        identify_ = cfg.db->has_sni_patterns() || cfg.db->has_host_patterns();
        triggers_ = cfg.db->trigger_count() > 0 && cfg.window > 0;
    }
    active_ = identify_ || triggers_;
    if (cfg.pending_flows > kNoBuffer)
        throw std::invalid_argument("match.pending_flows: at most 65535 buffers");
    if (identify_) {
        pool_.resize(cfg.pending_flows);
        free_.reserve(cfg.pending_flows);
        for (uint32_t i = cfg.pending_flows; i > 0; --i)
            free_.push_back(static_cast<uint16_t>(i - 1));
        if (cfg.names > 0) {
            const uint32_t sets = round_up_pow2((cfg.names + kWays - 1) / kWays);
            name_tags_.resize(sets);
            name_bytes_.resize(static_cast<size_t>(sets) * kWays * kNameRow);
            name_sets_mask_ = sets - 1;
        }
    }
}

FlowMatcher::~FlowMatcher() {
    delete set_;
    // A hand-over the control thread did not finish (the worker stopped first).
    delete mailbox_.incoming.exchange(nullptr);
    delete mailbox_.retired.exchange(nullptr);
}

// Which features run is fixed at start (the buffers are sized for it); a reload changes the
// patterns, not whether a kind of pattern exists (app/main.cpp refuses that).
void FlowMatcher::swap_in() {
    MatchSet* next = mailbox_.incoming.exchange(nullptr, std::memory_order_acquire);
    if (next == nullptr) return;
    MatchSet* old = set_;
    set_ = next;
    retired_errors_ += old->scratch.errors();
    mailbox_.retired.store(old, std::memory_order_release);
}

void FlowMatcher::on_payload(flow::FlowRecord& rec, uint32_t pos, const packet::TcpSegment& seg,
                             tcp::Side side) {
    tcp::Connection& c = rec.conn;
    if (!(c.match & kIdentified)) {
        if (!identify_ || c.client == tcp::kNoSide) {
            // Nothing to identify, or no telling which side is the client (roles are fixed
            // when the flow starts): the port map's answer stands.
            c.match |= kIdentified;
        } else if (side == c.client) {
            if (c.first_payload == kNoBuffer)
                identify_first(rec, pos, seg);
            else
                identify_more(rec, pos, seg);
        } else if (c.first_payload != kNoBuffer) {
            // The server answers: the client's first message is as complete as it will get (a
            // TLS server waits for the whole ClientHello). Decide with what arrived.
            match::FirstPayload& fp = pool_[c.first_payload];
            const Identification r =
                match::identify(fp.data(), fp.size(), *set_->db, set_->scratch, name_);
            give_back(c);
            decide(rec, pos, r);
        }
    }
    const uint8_t window_bit = static_cast<uint8_t>(2u << side);
    if (!(c.match & window_bit)) {
        if (triggers_)
            scan_triggers(c, seg, side);
        else
            c.match |= window_bit;
    }
}

// The client's first payload segment: most names are in it, read in place.
void FlowMatcher::identify_first(flow::FlowRecord& rec, uint32_t pos,
                                 const packet::TcpSegment& seg) {
    tcp::Connection& c = rec.conn;
    const Identification r =
        match::identify(seg.payload, seg.payload_caplen, *set_->db, set_->scratch, name_);
    // A sliced capture (snaplen) cannot be continued: the next segment would start past a hole.
    const bool whole = seg.payload_caplen == seg.payload_len;
    if (r.status == Identification::Status::need_more && whole) {
        if (!free_.empty()) {
            c.first_payload = free_.back();
            free_.pop_back();
            match::FirstPayload& fp = pool_[c.first_payload];
            fp.reset(seg.seq);
            fp.add(seg.seq, seg.payload, seg.payload_caplen);
            return;
        }
        stats_.match_pool_exhausted.inc();
    }
    decide(rec, pos, r);
}

// A later client segment while the first message is collected.
void FlowMatcher::identify_more(flow::FlowRecord& rec, uint32_t pos,
                                const packet::TcpSegment& seg) {
    tcp::Connection& c = rec.conn;
    match::FirstPayload& fp = pool_[c.first_payload];
    const match::FirstPayload::Add a = fp.add(seg.seq, seg.payload, seg.payload_caplen);
    // A retransmission adds nothing; a segment past a hole waits for the hole to be re-sent.
    if (a == match::FirstPayload::Add::duplicate || a == match::FirstPayload::Add::gap) return;
    const Identification r = match::identify(fp.data(), fp.size(), *set_->db, set_->scratch, name_);
    if (r.status == Identification::Status::need_more && !fp.full() &&
        seg.payload_caplen == seg.payload_len)
        return;
    give_back(c);
    decide(rec, pos, r);
}

// Final: the service, the counters, and the name when it decided the service.
void FlowMatcher::decide(flow::FlowRecord& rec, uint32_t pos, const Identification& r) {
    tcp::Connection& c = rec.conn;
    c.match |= kIdentified;
    if (r.sni != match::SniResult::not_tls)
        stats_.tls_names[static_cast<size_t>(r.sni)].inc();
    else if (r.http != match::HttpHostResult::not_http)
        stats_.http_names[static_cast<size_t>(r.http)].inc();
    match::IdentMethod how;
    if (r.status == Identification::Status::named && r.service != 0) {
        c.service = r.service;
        c.match |= static_cast<uint8_t>(static_cast<unsigned>(r.kind) << kNamedShift);
        how = r.kind == NameKind::sni ? match::IdentMethod::sni : match::IdentMethod::host;
        if (!name_tags_.empty()) keep_name(pos, rec.gen, r.kind);
    } else {
        how = c.service != 0 ? match::IdentMethod::port : match::IdentMethod::none;
    }
    stats_.service_identified[static_cast<size_t>(how)].inc();
}

void FlowMatcher::give_back(tcp::Connection& c) {
    free_.push_back(c.first_payload);
    c.first_payload = kNoBuffer;
}

// The first `window` payload bytes of this side, segment by segment (block mode). The offset
// needs the side's ISN: a side whose SYN was not seen has no known first bytes and is skipped.
void FlowMatcher::scan_triggers(tcp::Connection& c, const packet::TcpSegment& seg, tcp::Side side) {
    const tcp::Direction& d = c.dir[side];
    const uint8_t window_bit = static_cast<uint8_t>(2u << side);
    if (!d.syn) {
        c.match |= window_bit;
        return;
    }
    const uint32_t window = set_->window;
    const uint32_t first = d.isn + 1;  // sequence number of the side's first payload byte
    const size_t n = match::bytes_in_window(seg.seq - first, seg.payload_caplen, window);
    if (n > 0) {
        // Only the first trigger in config order is kept: the lowest bit matched so far.
        const uint32_t matched = set_->db->scan_triggers(seg.payload, n, set_->scratch);
        if (matched != 0 && static_cast<uint8_t>(__builtin_ctz(matched)) < c.trigger)
            c.trigger = static_cast<uint8_t>(__builtin_ctz(matched));
    }
    // The side has sent past its window: later segments (retransmissions aside) lie beyond it.
    if (tcp::seq_gt(d.snd_nxt, first + window - 1)) c.match |= window_bit;
}

void FlowMatcher::on_end(const flow::FlowRecord& rec, uint32_t pos) {
    const tcp::Connection& c = rec.conn;
    if (c.first_payload != kNoBuffer) {
        // Ended (or reset) while its first message was incomplete: decided by port, counted.
        free_.push_back(c.first_payload);
        const match::FirstPayload& fp = pool_[c.first_payload];
        const Identification r =
            match::identify(fp.data(), fp.size(), *set_->db, set_->scratch, name_);
        if (r.sni != match::SniResult::not_tls)
            stats_.tls_names[static_cast<size_t>(r.sni)].inc();
        else if (r.http != match::HttpHostResult::not_http)
            stats_.http_names[static_cast<size_t>(r.http)].inc();
        stats_
            .service_identified[static_cast<size_t>(c.service != 0 ? match::IdentMethod::port
                                                                   : match::IdentMethod::none)]
            .inc();
    }
    if (named_by(c) != 0)
        if (const int way = find_name(pos); way >= 0)
            name_tags_[pos & name_sets_mask_].way[way].kind = 0;
}

void FlowMatcher::annotate(const flow::FlowRecord& rec, uint32_t pos, events::RstEvent& ev) const {
    const tcp::Connection& c = rec.conn;
    static_assert(events::kNoTrigger == 0xff, "tcp::Connection::trigger's none");
    ev.trigger = c.trigger;
    ev.name_kind = 0;
    if (named_by(c) == 0) return;
    const int way = find_name(pos);
    if (way < 0) return;  // pushed out of the table: no name
    const NameTag& t = name_tags_[pos & name_sets_mask_].way[way];
    if (t.gen != rec.gen) return;
    ev.name_kind = t.kind;
    ev.name_len = t.len;
    std::memcpy(ev.name, &name_bytes_[name_row(pos, way)], t.len);
}

void FlowMatcher::publish() {
    stats_.match_scan_errors.set(retired_errors_ + set_->scratch.errors());
    stats_.match_buffers_in_use.set(buffers_in_use());
}

// A flow slot has at most one entry: a new connection in the slot replaces the old one's.
void FlowMatcher::keep_name(uint32_t pos, uint16_t gen, NameKind kind) {
    TagSet& set = name_tags_[pos & name_sets_mask_];
    int way = find_name(pos);
    for (uint32_t w = 0; way < 0 && w < kWays; ++w)
        if (set.way[w].kind == 0) way = static_cast<int>(w);
    if (way < 0) {  // every way names a live flow: the round-robin victim loses its name
        way = static_cast<int>(next_way_++ % kWays);
        stats_.match_names_evicted.inc();
    }
    set.way[way] = {pos, gen, static_cast<uint8_t>(kind), static_cast<uint8_t>(name_.len)};
    std::memcpy(&name_bytes_[name_row(pos, way)], name_.bytes, name_.len);
}

int FlowMatcher::find_name(uint32_t pos) const {
    if (name_tags_.empty()) return -1;
    const TagSet& set = name_tags_[pos & name_sets_mask_];
    for (uint32_t w = 0; w < kWays; ++w)
        if (set.way[w].kind != 0 && set.way[w].pos == pos) return static_cast<int>(w);
    return -1;
}

bool MatchSwap::post(const std::vector<MatchMailbox*>& boxes,
                     std::shared_ptr<const match::MatchDatabases> db, uint32_t window,
                     uint64_t generation) {
    if (in_flight() && !poll()) return false;
    std::vector<std::unique_ptr<MatchSet>> sets;
    for (size_t i = 0; i < boxes.size(); ++i) {
        auto s = std::make_unique<MatchSet>();
        s->db = db;
        s->scratch = db->make_scratch();
        s->window = window;
        s->generation = generation;
        sets.push_back(std::move(s));
    }
    boxes_ = boxes;
    taken_.assign(boxes.size(), false);
    for (size_t i = 0; i < boxes.size(); ++i)
        boxes[i]->incoming.store(sets[i].release(), std::memory_order_release);
    return true;
}

bool MatchSwap::poll() {
    bool all = true;
    for (size_t i = 0; i < boxes_.size(); ++i) {
        if (taken_[i]) continue;
        if (MatchSet* old = boxes_[i]->retired.exchange(nullptr, std::memory_order_acquire)) {
            delete old;
            taken_[i] = true;
        } else {
            all = false;
        }
    }
    if (all) {
        boxes_.clear();
        taken_.clear();
    }
    return all;
}

void MatchSwap::abandon() {
    for (MatchMailbox* b : boxes_) {
        delete b->incoming.exchange(nullptr);
        delete b->retired.exchange(nullptr);
    }
    boxes_.clear();
    taken_.clear();
}

}  // namespace rstmon::pipeline
