#include "classify/classifier.hpp"

namespace rstmon::classify {

using packet::tcpflag::ack;
using packet::tcpflag::syn;
using tcp::Connection;
using tcp::Side;

std::optional<Cause> cause_from_name(std::string_view n) {
    for (size_t i = 0; i < kCauseCount; ++i)
        if (kCauses[i].name == n) return static_cast<Cause>(i);
    return std::nullopt;
}

Stage stage_of(const Connection& c) {
    if (c.origin != tcp::Origin::handshake) return Stage::no_state;
    if (c.any_fin()) return Stage::closing;
    const bool p0 = c.dir[0].payload, p1 = c.dir[1].payload;
    if (p0 && p1) return Stage::later_in_flow;
    if (p0 || p1) return Stage::post_psh;
    if (c.established) return Stage::post_ack;
    if (c.synack) return Stage::post_synack;
    return Stage::post_syn;
}

// RFC 5961 from the receiver's point of view: is the RST's seq the receiver's rcv_nxt, inside its
// window, or outside it?
Validity validity_of(const Connection& c, Side x, const packet::TcpSegment& rst) {
    const tcp::Direction& sx = c.dir[x];
    const tcp::Direction& sy = c.dir[tcp::other(x)];
    uint32_t rcv_nxt;
    if (sx.seq_known) {
        rcv_nxt = sx.snd_nxt;
    } else if (sy.ack_known) {
        rcv_nxt = sy.max_ack;  // the receiver told us how far it got
    } else if (sy.syn && !sx.syn && rst.has(ack)) {
        // Answer to a SYN (SYN-SENT, RFC 793): acceptable iff it acknowledges the SYN.
        return rst.ack == sy.isn + 1 ? Validity::exact : Validity::out_of_window;
    } else {
        return Validity::unverifiable;
    }
    if (rst.seq == rcv_nxt) return Validity::exact;
    uint64_t window = sy.window;
    if (sx.wscale != 0xff && sy.wscale != 0xff) window <<= sy.wscale;  // both offered: scaled
    if (window > 0 && static_cast<uint32_t>(rst.seq - rcv_nxt) < window) return Validity::in_window;
    return Validity::out_of_window;
}

// The RST's TTL against what the purported sender used before: in this flow, else in other flows
// of the same host. A middlebox or injector answering on the endpoint's behalf sits at another
// hop distance, so its TTL differs.
bool ttl_mismatch(const Connection& c, Side x, const packet::TcpSegment& rst,
                  const Thresholds& th, uint8_t host_ttl) {
    const uint8_t base = c.dir[x].ttl_base ? c.dir[x].ttl_base : host_ttl;
    if (base == 0) return false;
    const int diff = static_cast<int>(rst.ttl) - static_cast<int>(base);
    return diff > th.ttl_tolerance || -diff > th.ttl_tolerance;
}

namespace {

uint64_t ms_to_ns(tcp::Ms ms) { return static_cast<uint64_t>(ms) * 1000000ull; }

// Before the handshake completes. Returns unclassified when no handshake rule applies.
Cause handshake_cause(const Connection& c, Side x, const packet::TcpSegment& rst,
                      const Thresholds& th, bool ttl_bad) {
    const Side client = c.client;
    const tcp::Direction& cl = c.dir[client];
    if (x != client && !c.dir[x].syn && !c.syn_answered_by_ack) {
        // The server side answers the client's SYN with RST+ACK, ack = ISN + 1: refused. From
        // another hop distance than the server's own packets: a firewall refused for it.
        if (cl.syn && rst.has(ack) && rst.ack == cl.isn + 1)
            return ttl_bad ? Cause::middlebox_reject : Cause::port_closed;
        return Cause::unclassified;
    }
    if (x != client && c.dir[x].syn && !c.established && (c.syn_conflict || c.bad_handshake_ack))
        return Cause::invalid_segment;  // SYN-RECV refuses a conflicting SYN or a wrong ACK
    if (x == client && !c.established) {
        if (c.syn_answered_by_ack) {
            // SYN -> bare ACK with ack != ISN + 1 -> RST from the client. On a 4-tuple that had
            // just closed, that ACK came from a TIME_WAIT socket; otherwise it was invalid.
            return c.reused ? Cause::time_wait_reuse : Cause::invalid_segment;
        }
        if (c.bad_synack) return Cause::invalid_segment;  // SYN-SENT refuses a bad SYN-ACK
        if (c.synack && !rst.has(ack) && rst.seq == c.dir[c.server()].last_ack) {
            // The client has no socket for the SYN-ACK (NO_SOCKET reset, seq = its ack). Late or
            // after retransmitted SYNs: the application gave up connecting; prompt answer to a
            // single SYN: a half-open scan.
            const bool late = cl.syn_count > 1 || c.dir[c.server()].syn_count > 1 ||
                              ms_to_ns(c.synack_ms) >= th.connect_late_ns;
            return late ? Cause::connect_timeout : Cause::scan_probe;
        }
        return Cause::unclassified;
    }
    return Cause::unclassified;
}

Cause established_cause(const Connection& c, Side x, const packet::TcpSegment& rst,
                        const Thresholds& th, Validity v, bool ttl_bad) {
    const Side y = tcp::other(x);
    const tcp::Direction& sx = c.dir[x];
    const tcp::Direction& sy = c.dir[y];
    const bool after_idle =
        c.last_side == y && ms_to_ns(c.last_gap_ms) >= th.idle_threshold_ns;
    // A bare RST whose seq is the ack of the peer's last segment: how a kernel answers a segment
    // for which it has no socket (NO_SOCKET).
    const bool answers_peer = !rst.has(ack) && c.last_side == y && sy.ack_known &&
                              rst.seq == sy.last_ack;

    if (x == c.server() && c.established && !sx.payload && !sx.fin && answers_peer &&
        sy.last_ack == sx.isn + 1 && !ttl_bad)
        return Cause::listen_overflow;  // the handshake's ACK found a full accept queue

    if (ttl_bad) return after_idle ? Cause::idle_timeout : Cause::middlebox_reject;

    if (sx.fin) return sy.data_after_peer_fin ? Cause::data_after_close : Cause::orphan_abort;

    if (rst.has(ack) && sx.ka_probes >= th.keepalive_probes && th.keepalive_probes > 0)
        return Cause::keepalive_timeout;

    if (answers_peer) {
        if (sx.rexmit_run >= th.retransmission_run) return Cause::retransmission_timeout;
        if (sx.seq_known && (tcp::seq_gt(sy.last_ack, sx.snd_nxt) ||
                             (sx.syn && tcp::seq_lt(sy.last_ack, sx.isn + 1))))
            return Cause::invalid_segment;  // it acknowledged data never sent
        if (after_idle && sx.ttl_base == 0) return Cause::idle_timeout;
        return Cause::stale_connection;
    }

    if (c.established && rst.has(ack) && v == Validity::exact)
        return c.last_payload_side == y ? Cause::unread_data_close : Cause::linger_abort;
    return Cause::unclassified;
}

}  // namespace

Verdict classify(const Connection* c, Side x, const packet::TcpSegment& rst, const Thresholds& th,
                 uint8_t host_ttl, Side client_hint) {
    Verdict v;
    const Side client = c && c->client != tcp::kNoSide ? c->client : client_hint;
    if (client != tcp::kNoSide) v.sender = x == client ? Sender::client : Sender::server;
    if (c == nullptr) {
        v.cause = Cause::no_state;
        return v;  // stage no_state, unverifiable
    }
    v.stage = stage_of(*c);
    v.validity = validity_of(*c, x, rst);
    if (v.stage == Stage::no_state) {
        v.cause = Cause::no_state;
        return v;
    }
    const bool ttl_bad = ttl_mismatch(*c, x, rst, th, host_ttl);
    if (!c->established) {
        v.cause = handshake_cause(*c, x, rst, th, ttl_bad);
        if (v.cause != Cause::unclassified) return v;
        if (!c->synack) {
            if (ttl_bad) v.cause = Cause::middlebox_reject;
            return v;
        }
    }
    v.cause = established_cause(*c, x, rst, th, v.validity, ttl_bad);
    return v;
}

Cause on_episode_segment(const Connection& c, Side side, const packet::TcpSegment& seg,
                         Cause current) {
    const tcp::Episode& e = c.episode;
    if (!e.active || side != e.side) return current;  // the peer's answers are aftermath
    // An endpoint that refused one bogus segment keeps its connection: it may go on talking.
    if (current == Cause::invalid_segment) return current;
    if (seg.has(packet::tcpflag::rst)) {
        // A burst of RSTs from one "sender" with jumping sequence numbers: forged.
        return seg.seq != e.seq ? Cause::injected : current;
    }
    if (seg.has(syn) && !seg.has(ack)) return current;  // a new connection attempt
    // The purported sender keeps talking after its own RST: someone else sent that RST.
    return Cause::injected;
}

}  // namespace rstmon::classify
