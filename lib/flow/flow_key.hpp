// Direction-independent flow key: both directions of a connection map to the same key, and the
// side (0 = low endpoint, 1 = high endpoint) tells which way a packet travels.
#pragma once

#include <cstdint>
#include <cstring>

#include "packet/packet.hpp"
#include "tcp/connection.hpp"

namespace rstmon::flow {

struct FlowKey {
    packet::IpAddr lo_addr, hi_addr;
    uint16_t lo_port = 0, hi_port = 0;
    uint8_t family = 0;
    uint8_t pad_[3] = {};  // zeroed: the key is hashed and compared as bytes
};
static_assert(sizeof(FlowKey) == 40);

// Builds the key of `seg` and returns the sender's side.
inline tcp::Side make_key(const packet::TcpSegment& seg, FlowKey& key) {
    const int c = std::memcmp(seg.src.b.data(), seg.dst.b.data(), 16);
    const bool src_low = c < 0 || (c == 0 && seg.sport <= seg.dport);
    key.family = seg.family;
    std::memset(key.pad_, 0, sizeof key.pad_);
    if (src_low) {
        key.lo_addr = seg.src;
        key.hi_addr = seg.dst;
        key.lo_port = seg.sport;
        key.hi_port = seg.dport;
        return 0;
    }
    key.lo_addr = seg.dst;
    key.hi_addr = seg.src;
    key.lo_port = seg.dport;
    key.hi_port = seg.sport;
    return 1;
}

// A symmetric hash of the 4-tuple (same value for both directions), for software dispatch.
inline uint32_t symmetric_hash(const FlowKey& k) {
    uint32_t h = 2166136261u;  // FNV-1a over the normalised key: order-independent by construction
    const auto* p = reinterpret_cast<const uint8_t*>(&k);
    for (size_t i = 0; i < sizeof k; ++i) h = (h ^ p[i]) * 16777619u;
    return h;
}

}  // namespace rstmon::flow
