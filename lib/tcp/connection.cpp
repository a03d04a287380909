#include "tcp/connection.hpp"

namespace rstmon::tcp {

using packet::tcpflag::ack;
using packet::tcpflag::fin;
using packet::tcpflag::rst;
using packet::tcpflag::syn;

namespace {
inline void bump(uint8_t& v) {
    if (v != UINT8_MAX) ++v;
}
}  // namespace

void Connection::start(const packet::TcpSegment& seg, Side side, bool reuse) {
    *this = Connection{};
    reused = reuse;
    if (seg.has(syn) && !seg.has(ack)) {
        client = side;
        origin = Origin::handshake;
    } else if (seg.has(syn) && seg.has(ack)) {
        client = other(side);  // we missed the SYN: roles known, start not seen
    }
}

void Connection::update(const packet::TcpSegment& seg, Side side, Ms now) {
    Direction& d = dir[side];
    Direction& peer = dir[other(side)];
    const Ms last_any = dir[0].last_ms > dir[1].last_ms ? dir[0].last_ms : dir[1].last_ms;
    last_gap_ms = (dir[0].spoke || dir[1].spoke) && now > last_any ? now - last_any : 0;
    last_side = side;
    d.spoke = 1;
    d.last_ms = now;
    d.ttl = seg.ttl;
    if (d.ttl_base == 0) d.ttl_base = seg.ttl;
    d.ip_id = seg.ip_id;
    d.window = seg.window;
    peer.ka_probes = 0;  // anything from this side answers the peer's keepalives

    if (seg.has(syn)) {
        if (!d.syn) {
            d.isn = seg.seq;
            d.wscale = seg.wscale;
            if (side == client && !seg.has(ack) && seg.has_ts) syn_tsval = seg.tsval;
        } else if (side == client && !seg.has(ack) && seg.seq != d.isn && !established) {
            syn_conflict = 1;  // not a retransmission: another ISN on a half-open connection
        }
        d.syn = 1;
        bump(d.syn_count);
        if (seg.has(ack) && side != client && client != kNoSide && !synack) {
            synack = 1;
            synack_ms = now;
            const Direction& cl = dir[client];
            if ((cl.syn && seg.ack != cl.isn + 1) ||
                (syn_tsval != 0 && seg.has_ts && seg.tsecr != syn_tsval))
                bad_synack = 1;
        }
    } else if (seg.has(ack) && side != client && client != kNoSide && !synack &&
               dir[client].syn && !established) {
        // A SYN answered by a bare ACK: a TIME_WAIT socket's challenge, or a forged segment.
        syn_answered_by_ack = 1;
    }

    const uint32_t len = seg.seq_len();
    const uint32_t end = seg.seq + len;
    const bool new_data = !d.seq_known || seq_gt(end, d.snd_nxt);
    // Keepalive probe: seq = snd_una - 1 with everything acknowledged, 0 or 1 (garbage) byte.
    const bool keepalive = d.seq_known && seg.has(ack) && !seg.has(syn) && !seg.has(fin) &&
                           seg.payload_len <= 1 && seg.seq + 1 == d.snd_nxt && peer.ack_known &&
                           peer.max_ack == d.snd_nxt;
    if (keepalive)
        bump(d.ka_probes);
    else if (d.seq_known && len > 0 && !new_data)
        bump(d.rexmit_run);  // re-sent sequence space: a retransmission
    if (seg.payload_len > 0 && new_data) {
        d.payload = 1;
        last_payload_side = side;
        if (peer.fin) d.data_after_peer_fin = 1;
    }
    if (new_data) d.snd_nxt = end;
    d.seq_known = 1;

    if (seg.has(ack)) {
        if (!d.ack_known || seq_gt(seg.ack, d.max_ack)) {
            d.max_ack = seg.ack;
            peer.rexmit_run = 0;  // the peer's data is getting through
        }
        d.last_ack = seg.ack;
        d.ack_known = 1;
        if (synack && side == client && !seg.has(syn) && !established) {
            if (seg.ack == peer.isn + 1)
                established = 1;
            else
                bad_handshake_ack = 1;  // acknowledges something the server never sent
        }
    }
    if (seg.has(fin)) d.fin = 1;
}

void Connection::note_rst(const packet::TcpSegment& seg, Side side) {
    (void)seg;
    dir[side].rst = 1;
    bump(rst_count);
}

}  // namespace rstmon::tcp
