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
        // The SYN-ACK echoed a timestamp of no SYN seen: of a SYN the capture missed (then the
        // rules below hold) or from the past (PAWS: invalid). Which one is not known.
        if (cl.hole) return Cause::unclassified;
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

// A few of the sender's handshake answer delays, at least 1 ms (jitter): an RST later than this
// after the last segment seen did not answer that segment.
constexpr uint64_t kPromptFactor = 4, kPromptFloorNs = 1000000;
// Silence before an abort long enough for keepalive probes (Linux: TCP_KEEPIDLE >= 1 s).
constexpr uint64_t kProbeSilenceNs = 1000000000;

Cause established_cause(const Connection& c, Side x, const packet::TcpSegment& rst,
                        const Thresholds& th, Validity v, bool ttl_bad, uint64_t silence_ns) {
    const Side y = tcp::other(x);
    const tcp::Direction& sx = c.dir[x];
    const tcp::Direction& sy = c.dir[y];
    const bool after_idle =
        c.last_side == y && ms_to_ns(c.last_gap_ms) >= th.idle_threshold_ns;
    // A bare RST whose seq is the ack of the peer's last segment: how a kernel answers a segment
    // for which it has no socket (NO_SOCKET).
    const bool answers_peer = !rst.has(ack) && c.last_side == y && sy.ack_known &&
                              rst.seq == sy.last_ack;
    // Whether an answer came promptly after the last segment seen (unknown silence: assume so;
    // unknown round trip, its handshake answer lost: within the floor only).
    const uint64_t answer_ns = tcp::answer_bound_us(sx.answer) * 1000 * kPromptFactor;
    const bool prompt = silence_ns == 0 ||
                        silence_ns <= (answer_ns > kPromptFloorNs ? answer_ns : kPromptFloorNs);

    // Y was never heard (a one-sided capture, or all its segments lost): what Y sent and what
    // X answered are the evidence of every rule below.
    if (!sy.spoke && !sy.rst) return Cause::unclassified;

    // The handshake's ACK found a full accept queue; or the client's ACK answering the server's
    // retransmitted SYN-ACK did (that ACK lost on its way to the monitor: the retransmission
    // says the first ACK never completed the handshake).
    if (x == c.server() && c.established && !sx.payload && !sx.fin && !rst.has(ack) &&
        !ttl_bad && !sx.hole && sy.ack_known && sy.last_ack == sx.isn + 1 &&
        rst.seq == sx.isn + 1 &&
        (answers_peer || (c.last_side == x && sx.syn_count > 1)))
        return Cause::listen_overflow;

    if (ttl_bad) {
        // The RST itself may end the silence: the segment after the gap that it answers was lost
        // on its way to the monitor.
        if (after_idle || silence_ns >= th.idle_threshold_ns) return Cause::idle_timeout;
        // A refusal on X's behalf answers a segment X never got. X had just acknowledged Y's
        // newest data without a word more: nothing was left to refuse for it. Someone else
        // reset a live connection; only the real X heard again (the episode's race rule) says
        // who: no label yet. (After X's own answer, a DPI may still refuse that: a refusal.)
        if (c.last_side == x && c.last_payload_side == y && sx.ack_known && sy.seq_known &&
            sx.max_ack == sy.snd_nxt)
            return Cause::unclassified;
        return Cause::middlebox_reject;
    }

    if (sx.fin) {
        if (sy.data_after_peer_fin) return Cause::data_after_close;
        // Both FINs sent and acknowledged: X had no connection left to abort; its RST answers a
        // segment of another one (a reuse of the 4-tuple whose SYN the capture missed?).
        if (sy.fin && sx.ack_known && sy.ack_known && sx.max_ack == sy.snd_nxt &&
            sy.max_ack == sx.snd_nxt)
            return Cause::unclassified;
        // Y's data after X's FIN may be what the capture missed; likewise what a bare RST
        // answers when it came well after Y's last segment seen.
        if (sy.hole || (!rst.has(ack) && !prompt)) return Cause::unclassified;
        return Cause::orphan_abort;
    }

    if (rst.has(ack) && sx.ka_probes >= th.keepalive_probes && th.keepalive_probes > 0)
        return Cause::keepalive_timeout;

    if (answers_peer) {
        if (sx.rexmit_run >= th.retransmission_run) return Cause::retransmission_timeout;
        // (Data the capture missed but the peer acknowledged within the window has moved
        // snd_nxt already: what is left here lies beyond anything X can have sent.)
        if (sx.seq_known && (tcp::seq_gt(sy.last_ack, sx.snd_nxt) ||
                             (sx.syn && tcp::seq_lt(sy.last_ack, sx.isn + 1))))
            return Cause::invalid_segment;  // it acknowledged data never sent
        if (after_idle && sx.ttl_base == 0) return Cause::idle_timeout;
        // X lost the connection: no retransmission run, all of X's data acknowledged, none of
        // it missed by the capture. A shorter run, or data the peer never acknowledged, may be
        // a retransmission run the capture shortened by a lost frame (retransmission_timeout)
        // or not, and a hole may hide X's FIN: no label rather than a wrong one.
        if (sx.rexmit_run == 0 && !sx.hole && rst.seq == sx.snd_nxt)
            return Cause::stale_connection;
        return Cause::unclassified;
    }

    // An abort at X's snd_nxt. RFC 793's ABORT sends <SEQ=SND.NXT><CTL=RST> without ACK, as
    // Windows often does; Linux adds the ACK. Either way the same close, not a different cause.
    if (c.established && v == Validity::exact) {
        // BSD's tcp_drop sends this RST when it gives up retransmitting (Linux dies silently
        // and answers the peer's next segment instead: the answers_peer rule above).
        if (sx.rexmit_run >= th.retransmission_run) return Cause::retransmission_timeout;
        // Part of X's sequence space went unseen: it may hold X's FIN (a close, then this RST).
        if (sx.hole) return Cause::unclassified;
        // A bare RST with IPv4 ID 0 comes from a stack answering without a socket (Linux's
        // no-socket reset), not from a connection's abort (its own ID counter): it answers a
        // segment of Y's the capture missed (a stale connection, data after a close?).
        if (!rst.has(ack) && rst.family == 4 && rst.ip_id == 0) return Cause::unclassified;
        // The RST's ACK covers more of Y than the capture showed: Y's newest data reached X
        // after all the rest (unread), unless the one byte missed was Y's FIN.
        if (rst.has(ack) && sy.seq_known && tcp::seq_gt(rst.ack, sy.snd_nxt)) {
            const uint32_t missed = rst.ack - sy.snd_nxt;
            return missed > 1 && missed <= tcp::receive_window(sx, sy) ? Cause::unread_data_close
                                                                       : Cause::unclassified;
        }
        // X sent segments the capture missed in the silence before its abort (its IPv4 ID, a
        // counter of the connection's own, moved on by more than one): keepalive probes, or an
        // answer to Y: not a plain abortive close.
        if (rst.family == 4 && (c.ids_consecutive & (1u << x)) && silence_ns >= kProbeSilenceNs) {
            const auto step = static_cast<uint16_t>(rst.ip_id - sx.ip_id);
            if (step > 1 && step <= tcp::kIpIdStep) return Cause::unclassified;
        }
        return c.last_payload_side == y ? Cause::unread_data_close : Cause::linger_abort;
    }
    return Cause::unclassified;
}

// Whether the episode's sender, still talking after its RST, shows that someone else sent that
// RST (Weaver, Sommer, Paxson, NDSS 2009): any segment at the sender's own TTL after an RST at
// another TTL; else its SYN-ACK, or new payload at or beyond the RST's seq. A pure ACK or a FIN
// alone is no evidence by itself: the endpoint may have sent it before its RST and the capture
// reordered them. Neither is a segment of another connection on the 4-tuple (its SYN missed by
// the capture): one whose seq or ack lies further beyond this connection's than a window.
bool sender_alive_after_rst(const Connection& c, Side x, const packet::TcpSegment& seg) {
    const tcp::Episode& e = c.episode;
    const tcp::Direction& sx = c.dir[x];
    const tcp::Direction& sy = c.dir[tcp::other(x)];
    // Its SYN-ACK after its RST+ACK to the client's SYN: the handshake race. (After any other
    // RST it is the server's SYN-ACK retransmission, its first SYN-ACK lost by the capture.)
    if (seg.has(syn)) return seg.has(ack) && e.answers_syn;
    const uint64_t win_x = tcp::receive_window(sy, sx), win_y = tcp::receive_window(sx, sy);
    if ((tcp::seq_gt(seg.seq, e.seq) && seg.seq - e.seq > win_x) ||
        (sx.seq_known && tcp::seq_gt(seg.seq, sx.snd_nxt) && seg.seq - sx.snd_nxt > win_x) ||
        (seg.has(ack) && sy.seq_known && tcp::seq_gt(seg.ack, sy.snd_nxt) &&
         seg.ack - sy.snd_nxt > win_y))
        return false;
    // Two senders, two hop distances (a route change moves both alike: not this).
    if (e.ttl_differs && seg.ttl != e.rst_ttl && seg.ttl == sx.ttl) return true;
    if (e.same_stack) return false;  // the RST came from the sender's own IP stack
    if (seg.payload_len == 0) return false;
    const uint32_t end = seg.seq + seg.seq_len();
    return !tcp::seq_lt(seg.seq, e.seq) && (!sx.seq_known || tcp::seq_gt(end, sx.snd_nxt));
}

// Whether a further RST from the episode's sender jumps past any sequence number that sender
// could use itself: its snd_nxt (or what its peer acknowledged, where the capture missed some
// of its data), or its first RST's, each + 1 for a FIN. Stacks that answer every later peer
// segment with an RST (seq = that segment's ack), or send RST+ACK then a bare RST at seq - 1
// (Windows), stay inside; forged bursts step by whole segments (base, +1460, +4380).
bool rst_jumps(const Connection& c, Side x, const packet::TcpSegment& seg) {
    const tcp::Direction& sx = c.dir[x];
    const tcp::Direction& sy = c.dir[tcp::other(x)];
    uint32_t hi = c.episode.seq;
    if (sx.seq_known && tcp::seq_gt(sx.snd_nxt, hi)) hi = sx.snd_nxt;
    if (sy.ack_known && tcp::seq_gt(sy.max_ack, hi)) hi = sy.max_ack;
    return tcp::seq_gt(seg.seq, hi + 1);
}

// The RST's receiver Y answers with a bare RST at (or beyond) its snd_nxt: a segment from X's
// side reached Y after Y's connection was gone, and it acknowledged all Y had sent (its ack is
// the answer's seq). After a first RST from another hop distance than X's own segments, that is the
// real X still talking, having received everything, even what the "refusal" was about: the RST
// was forged (the race evidence when X's segment itself was lost on its way to the monitor). A
// real refusal leaves Y's last segment unacknowledged by X, so any later answer of Y's has
// another seq.
bool receiver_answers_sender(const Connection& c, Side y, const packet::TcpSegment& seg) {
    const tcp::Episode& e = c.episode;
    const tcp::Direction& sy = c.dir[y];
    // (Y silent since the first RST: its connection died there. Had it gone on sending, the
    // RST was not for it, and a bare RST of Y's at its snd_nxt may be its own abort.)
    // (At or beyond: the segment that drew Y's answer also acknowledged Y data the capture
    // missed, the trigger itself perhaps.)
    return e.ttl_differs && !e.same_stack && !e.peer_spoke && !seg.has(ack) && sy.seq_known &&
           sy.payload && !tcp::seq_lt(seg.seq, sy.snd_nxt) &&
           seg.seq - sy.snd_nxt <= tcp::receive_window(c.dir[tcp::other(y)], sy);
}

}  // namespace

Verdict classify(const Connection* c, Side x, const packet::TcpSegment& rst, const Thresholds& th,
                 uint8_t host_ttl, Side client_hint, uint64_t silence_ns) {
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
    v.cause = established_cause(*c, x, rst, th, v.validity, ttl_bad, silence_ns);
    return v;
}

Cause on_episode_segment(const Connection& c, Side side, const packet::TcpSegment& seg,
                         Cause current) {
    const tcp::Episode& e = c.episode;
    if (e.active && side != e.side && seg.has(packet::tcpflag::rst) &&
        (current == Cause::middlebox_reject || current == Cause::unclassified) &&
        receiver_answers_sender(c, side, seg))
        return Cause::injected;
    if (!e.active || side != e.side) return current;  // the peer's answers are aftermath
    // An endpoint that refused one bogus segment keeps its connection: it may go on talking.
    if (current == Cause::invalid_segment) return current;
    // A burst of RSTs from one "sender" with jumping sequence numbers: forged.
    if (seg.has(packet::tcpflag::rst)) return rst_jumps(c, side, seg) ? Cause::injected : current;
    // The purported sender keeps sending after its own RST: someone else sent that RST.
    return sender_alive_after_rst(c, side, seg) ? Cause::injected : current;
}

}  // namespace rstmon::classify
