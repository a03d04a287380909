// Per-worker memory of the TTL each host's packets arrive with, for flows where the purported RST
// sender has not spoken yet (a firewall refusing a SYN on the server's behalf). Direct-mapped and
// fixed-size: a collision just replaces the older host; a 32-bit tag avoids false matches.
#pragma once

#include <cstdint>
#include <vector>

#include "packet/packet.hpp"

namespace rstmon::flow {

class HostTtlTable {
public:
    explicit HostTtlTable(uint32_t slots_pow2 = 1u << 16) : mask_(slots_pow2 - 1), slots_(slots_pow2) {}

    void learn(const packet::IpAddr& a, uint8_t ttl) {
        const uint32_t h = hash(a);
        slots_[h & mask_] = Slot{h | 1u, ttl};
    }
    // 0 when unknown.
    uint8_t lookup(const packet::IpAddr& a) const {
        const uint32_t h = hash(a);
        const Slot& s = slots_[h & mask_];
        return s.tag == (h | 1u) ? s.ttl : 0;
    }

private:
    struct Slot {
        uint32_t tag = 0;  // 0 = empty (learned tags have the low bit set)
        uint8_t ttl = 0;
    };
    static uint32_t hash(const packet::IpAddr& a) {
        uint64_t x = 0, y = 0;
        __builtin_memcpy(&x, a.b.data(), 8);
        __builtin_memcpy(&y, a.b.data() + 8, 8);
        uint64_t h = (x ^ (y * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
        return static_cast<uint32_t>(h ^ (h >> 31) ^ (h >> 45));
    }
    uint32_t mask_;
    std::vector<Slot> slots_;
};

}  // namespace rstmon::flow
