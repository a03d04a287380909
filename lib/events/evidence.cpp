#include "events/evidence.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace rstmon::events {

uint32_t bytes_sent(const tcp::Direction& d) {
    if (!d.seq_known) return 0;
    // isn is the SYN's seq, or the seq just before the first segment seen mid-stream: either way
    // snd_nxt - isn - 1 is the payload plus a FIN.
    return d.snd_nxt - d.isn - 1u - (d.fin ? 1u : 0u);
}

void fill_evidence(RstEvent& e, const tcp::Connection* c, tcp::Side side, uint8_t host_ttl,
                   const classify::Verdict& v) {
    auto miss = [&e](Missing m) { e.missing |= static_cast<uint8_t>(1u << static_cast<unsigned>(m)); };
    e.host_ttl = host_ttl;
    if (v.sender == classify::Sender::unknown) miss(Missing::roles);
    if (v.validity == classify::Validity::unverifiable) miss(Missing::sequence);
    if (c == nullptr) {
        miss(Missing::flow);
        if (host_ttl == 0) miss(Missing::sender_ttl);
        return;
    }
    const tcp::Direction& sx = c->dir[side];
    const tcp::Direction& sy = c->dir[tcp::other(side)];
    e.flow_ttl = sx.ttl_base;
    e.rexmit_run = sx.rexmit_run;
    e.peer_rexmit_run = sy.rexmit_run;
    e.ka_probes = sx.ka_probes;
    e.src_bytes = bytes_sent(sx);
    e.dst_bytes = bytes_sent(sy);
    if (c->origin != tcp::Origin::handshake) miss(Missing::handshake);
    if (sx.ttl_base == 0 && host_ttl == 0) miss(Missing::sender_ttl);
    if (!sy.spoke && !sy.rst) miss(Missing::peer);
    if (sx.hole || sy.hole) miss(Missing::capture_loss);
}

void keep_payload(RstEvent& e, const packet::TcpSegment& seg) {
    const uint32_t n = std::min<uint32_t>(seg.payload_caplen, RstEvent::kPayloadMax);
    if (n == 0 || seg.payload == nullptr) return;
    std::memcpy(e.payload, seg.payload, n);
    e.payload_caplen = static_cast<uint8_t>(n);
}

std::string pcap_file_name(const std::string& prefix, uint16_t worker, uint32_t file_no) {
    char tail[48];
    std::snprintf(tail, sizeof tail, "w%u-%06u.pcap", static_cast<unsigned>(worker),
                  static_cast<unsigned>(file_no));
    return prefix + tail;
}

}  // namespace rstmon::events
