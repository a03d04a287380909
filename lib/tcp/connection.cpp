#include "tcp/connection.hpp"

namespace rstmon::tcp {

using packet::tcpflag::ack;
using packet::tcpflag::fin;
using packet::tcpflag::syn;

void Connection::start(const packet::TcpSegment& seg, Side side) {
    *this = Connection{};
    if (seg.has(syn) && !seg.has(ack)) {
        client = side;
        origin = Origin::handshake;
    } else if (seg.has(syn) && seg.has(ack)) {
        client = other(side);  // we missed the SYN: roles known, start not seen
    }
}

void Connection::update(const packet::TcpSegment& seg, Side side) {
    Direction& d = dir[side];
    const Direction& peer = dir[other(side)];
    d.packets++;
    d.ttl = seg.ttl;
    d.ip_id = seg.ip_id;
    d.window = seg.window;

    if (seg.has(syn)) {
        if (!d.syn) {
            d.isn = seg.seq;
            d.wscale = seg.wscale;
        }
        d.syn = 1;
        if (seg.has(ack) && side != client && client != kNoSide) synack = 1;
    }

    const uint32_t end = seg.seq + seg.seq_len();
    const bool new_data = !d.seq_known || seq_gt(end, d.snd_nxt);
    if (seg.payload_len > 0 && new_data) {
        d.payload = 1;
        last_payload_side = side;
        if (peer.fin) d.data_after_peer_fin = 1;
    }
    if (new_data) d.snd_nxt = end;
    d.seq_known = 1;

    if (seg.has(ack)) {
        if (!d.ack_known || seq_gt(seg.ack, d.max_ack)) d.max_ack = seg.ack;
        d.ack_known = 1;
        if (synack && side == client && !seg.has(syn)) established = 1;
    }
    if (seg.has(fin)) d.fin = 1;
}

void Connection::note_rst(const packet::TcpSegment& seg, Side side) {
    Direction& d = dir[side];
    d.packets++;
    d.rst = 1;
    d.ttl = seg.ttl;
    d.ip_id = seg.ip_id;
    if (rst_count < UINT16_MAX) rst_count++;
}

}  // namespace rstmon::tcp
