#include "classify/classifier.hpp"

namespace rstmon::classify {

using packet::tcpflag::ack;
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

namespace {

Sender sender_of(const Connection& c, Side x) {
    if (c.client == tcp::kNoSide) return Sender::unknown;
    return x == c.client ? Sender::client : Sender::server;
}

// port_closed: the server's kernel answered the client's SYN with RST+ACK, ack = ISN + 1, and no
// SYN-ACK was ever seen.
bool is_port_closed(const Connection& c, Side x, const packet::TcpSegment& rst, Stage stage) {
    if (stage != Stage::post_syn || x == c.client) return false;
    const tcp::Direction& client = c.dir[c.client];
    return client.syn && rst.has(ack) && rst.ack == client.isn + 1 && !c.dir[x].syn;
}

// An endpoint that never sent FIN aborts an established connection at its own snd_nxt (RST+ACK,
// exact): the application closed abortively. If the peer's payload came after the sender's last
// payload, that data was never answered: a close with unread data (Linux TCP_ABORT_ON_CLOSE);
// otherwise SO_LINGER {1,0}.
bool is_abort_close(const Connection& c, Side x, const packet::TcpSegment& rst, Validity v) {
    return c.established && !c.dir[x].fin && rst.has(ack) && v == Validity::exact;
}

}  // namespace

Verdict classify(const Connection* c, Side x, const packet::TcpSegment& rst, const Thresholds&) {
    Verdict v;
    if (c == nullptr) {
        v.cause = Cause::no_state;
        return v;  // stage no_state, sender unknown, unverifiable
    }
    v.stage = stage_of(*c);
    v.sender = sender_of(*c, x);
    v.validity = validity_of(*c, x, rst);
    if (v.stage == Stage::no_state) {
        v.cause = Cause::no_state;
        return v;
    }
    if (is_port_closed(*c, x, rst, v.stage)) {
        v.cause = Cause::port_closed;
    } else if (is_abort_close(*c, x, rst, v.validity)) {
        v.cause = c->last_payload_side == tcp::other(x) ? Cause::unread_data_close
                                                         : Cause::linger_abort;
    } else {
        v.cause = Cause::unclassified;
    }
    return v;
}

}  // namespace rstmon::classify
