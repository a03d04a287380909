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


// SYN retransmissions span at most about two minutes (Linux: 6 retries, 127 s); at 1 kHz, the
// usual timestamp clock, that many ticks. A SYN-ACK may echo any SYN of the attempt, also one
// the capture missed, so only an echo further away than this is from the past (PAWS).
constexpr uint32_t kSynTsSpan = 130000;

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
    if (episode.active && side != episode.side) episode.peer_spoke = 1;
    // (ID 0, which Linux gives its SYN-ACKs, numbers nothing: skipped.)
    const auto id_bit = static_cast<uint8_t>(1u << side);
    if (seg.family != 4) {
        ids_consecutive = static_cast<uint8_t>(ids_consecutive & ~id_bit);
    } else if (seg.ip_id != 0) {
        if (d.spoke && d.ip_id != 0) {
            const auto step = static_cast<uint16_t>(seg.ip_id - d.ip_id);
            const auto forgiven = static_cast<uint8_t>(id_bit << 2);
            if (step != 1) {
                if (step <= kIdLossStep && step != 0 && !(ids_consecutive & forgiven))
                    ids_consecutive |= forgiven;  // the one lossy step allowed
                else
                    ids_consecutive = static_cast<uint8_t>(ids_consecutive & ~id_bit);
            }
        } else if (d.segs <= 1) {
            ids_consecutive |= id_bit;  // the side's first numbered segment
        }
    }
    d.spoke = 1;
    if (d.segs < 7) d.segs++;
    d.last_ms = now;
    d.ttl = seg.ttl;
    if (d.ttl_base == 0) d.ttl_base = seg.ttl;
    d.ip_id = seg.ip_id;
    const uint64_t window_before = receive_window(d, peer);  // what the peer may have in flight
    // A SYN's window is never scaled (RFC 7323): kept in the units of the later, scaled ones.
    d.window = seg.has(syn) && seg.wscale != 0xff && seg.wscale <= 14
                   ? static_cast<uint16_t>(seg.window >> seg.wscale)
                   : seg.window;
    peer.ka_probes = 0;  // anything from this side answers the peer's keepalives

    // The client acknowledges a SYN-ACK the capture missed: it can only send a plain ACK after
    // one arrived. The handshake happened; the server's side starts at what the ACK says.
    if (side == client && !seg.has(syn) && seg.has(ack) && d.syn && !synack && !peer.spoke &&
        !peer.rst) {
        synack = 1;
        synack_ms = now;
        peer.syn = 1;
        peer.isn = seg.ack - 1;
        peer.snd_nxt = seg.ack;
        peer.seq_known = 1;
        peer.hole = 1;
    }
    // This side acknowledges more of the peer's sequence space than the capture showed: the
    // monitor missed segments of the peer's (within the window; beyond it the ACK is bogus and
    // stays visible as such). The missed bytes are the peer's newest.
    if (established && seg.has(ack) && peer.seq_known && seq_gt(seg.ack, peer.snd_nxt) &&
        seg.ack - peer.snd_nxt <= window_before) {
        if (seg.ack - peer.snd_nxt > 1) {  // payload (one byte could be a lost FIN)
            peer.payload = 1;
            last_payload_side = other(side);
        }
        peer.snd_nxt = seg.ack;
        peer.hole = 1;
    }

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
            const uint32_t ts_off = seg.tsecr - syn_tsval;
            const bool ts_differs = syn_tsval != 0 && seg.has_ts && ts_off != 0;
            if ((cl.syn && seg.ack != cl.isn + 1) ||
                (ts_differs && ts_off > kSynTsSpan && ts_off < 0u - kSynTsSpan))
                bad_synack = 1;
            else if (ts_differs)
                dir[client].hole = 1;  // it echoes a SYN the capture missed, or one from the past
        }
    } else if (seg.has(ack) && side != client && client != kNoSide && !synack &&
               dir[client].syn && !established && seg.payload_len == 0 && !seg.has(fin)) {
        // A SYN answered by a bare ACK: a TIME_WAIT socket's challenge, or a forged segment.
        // (Payload or a FIN means a handshake took place that the capture missed.)
        syn_answered_by_ack = 1;
    }

    // A side first seen mid-stream: its sequence origin is just before this segment, so
    // snd_nxt - isn - 1 counts its bytes as for a side whose SYN was seen (event evidence).
    if (!d.seq_known && !seg.has(syn)) d.isn = seg.seq - 1;
    const uint32_t len = seg.seq_len();
    const uint32_t end = seg.seq + len;
    const bool new_data = !d.seq_known || seq_gt(end, d.snd_nxt);
    // Keepalive probe: seq = snd_una - 1 with everything acknowledged, 0 or 1 (garbage) byte.
    // Without a byte nothing else looks like this (a pure ACK has seq = snd_nxt), so a lost ACK
    // of the peer's need not hide it; a 1-byte one could be the last byte re-sent.
    const bool keepalive = d.seq_known && seg.has(ack) && !seg.has(syn) && !seg.has(fin) &&
                           seg.payload_len <= 1 && seg.seq + 1 == d.snd_nxt &&
                           (seg.payload_len == 0 || (peer.ack_known && peer.max_ack == d.snd_nxt));
    if (keepalive)
        bump(d.ka_probes);
    else if (d.seq_known && len > 0 && !new_data)
        bump(d.rexmit_run);  // re-sent sequence space: a retransmission
    if (seg.payload_len > 0 && new_data) {
        d.payload = 1;
        last_payload_side = side;
    }
    // Payload reaching a peer that has sent its FIN and not acknowledged it, new or re-sent: the
    // peer receives it after its close.
    if (seg.payload_len > 0 && peer.fin &&
        (new_data || !peer.ack_known || seq_gt(seg.seq + seg.payload_len, peer.max_ack)))
        d.data_after_peer_fin = 1;
    if (new_data) d.snd_nxt = end;
    if (new_data && len > 0) d.hole = 0;  // the side went on past what the capture missed
    d.seq_known = 1;

    if (seg.has(ack)) {
        if (!d.ack_known || seq_gt(seg.ack, d.max_ack)) {
            d.max_ack = seg.ack;
            peer.rexmit_run = 0;  // the peer's data is getting through
        }
        d.last_ack = seg.ack;
        d.ack_known = 1;
        if (synack && side == client && !seg.has(syn) && !established) {
            // The SYN-ACK, or data the server sent after it (the handshake's own ACK missed).
            if (!seq_lt(seg.ack, peer.isn + 1) && !seq_gt(seg.ack, peer.snd_nxt))
                established = 1;
            else
                bad_handshake_ack = 1;  // acknowledges something the server never sent
        }
    }
    if (seg.has(fin)) {
        // Payload of the peer's that this FIN does not acknowledge crossed it: it reaches this
        // side after its close, as data sent after the FIN would (BSD, Windows and embedded
        // stacks answer it with an RST just the same).
        const uint32_t peer_data_end = peer.snd_nxt - (peer.fin ? 1u : 0u);
        if (!d.fin && seg.has(ack) && peer.payload && seq_lt(seg.ack, peer_data_end))
            peer.data_after_peer_fin = 1;
        d.fin = 1;
    }
}

void Connection::note_rst(const packet::TcpSegment& seg, Side side) {
    Direction& d = dir[side];
    if (episode.active && side == episode.side && !episode.noted) {
        episode.noted = 1;
        const auto id_step = static_cast<uint16_t>(seg.ip_id - d.ip_id);
        episode.same_stack = d.spoke && seg.family == 4 && seg.ttl == d.ttl && d.ip_id != 0 &&
                             id_step != 0 && id_step <= kIpIdStep;
        // A client in SYN_SENT refusing what the capture did not show (a SYN-ACK with a bad ack
        // or timestamp): a bare RST at ISN + 1 from its kernel (IPv4 ID 0: no connection counter,
        // its own TTL) before the server was heard. Its connection lives on (RFC 9293 3.10.7.3):
        // its later segments are no race evidence. (Found by the loss measurement: the crafted
        // SYN-ACK and the retransmitted SYN both lost read as injected.)
        if (side == client && d.syn && !dir[other(side)].spoke && !seg.has(packet::tcpflag::ack) &&
            seg.family == 4 && seg.ip_id == 0 && seg.ttl == d.ttl && seg.seq == d.isn + 1)
            episode.same_stack = 1;
        episode.ttl_differs = d.spoke && seg.ttl != d.ttl;
        episode.rst_ttl = seg.ttl;
        const Direction& cl = dir[client == kNoSide ? other(side) : client];
        episode.answers_syn = side != client && client != kNoSide && !d.syn && cl.syn &&
                              seg.has(ack) && seg.ack == cl.isn + 1;
    }
    d.rst = 1;
    bump(rst_count);
}

}  // namespace rstmon::tcp
