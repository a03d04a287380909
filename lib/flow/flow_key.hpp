// Direction-independent flow key: both directions of a connection map to the same key, and the
// side (0 = low endpoint, 1 = high endpoint) tells which way a packet travels.
#pragma once

#include <cstdint>
#include <bit>
#include <cstddef>
#include <cstring>

#include "packet/packet.hpp"
#include "tcp/connection.hpp"

namespace rstmon::flow {

struct FlowKey {
    packet::IpAddr lo_addr, hi_addr;
    uint16_t lo_port = 0, hi_port = 0;
    uint8_t family = 0;
    // Zeroed: the key is compared as six 8-byte words (the fields need 40 bytes). The flow
    // table keeps each key in a cache line of its own with its hash (flow_table.hpp), so the
    // padding costs no memory there.
    uint8_t pad_[11] = {};
};
static_assert(sizeof(FlowKey) == 48);
// Bytes of a FlowKey that can differ: hashed (the padding is always zero).
inline constexpr uint32_t kFlowKeyHashed = 40;

// Builds the key of `seg` and returns the sender's side. The low endpoint is the one whose
// address memcmp() sorts first (then the lower port). The key is written as six 8-byte words:
// the hash reads it back as such right away, and a store of each field on its own (ports,
// family, padding) could not be forwarded to those loads (a stall per frame on the benchmark).
// GCC does not inline a 16-byte memcmp() whose sign is used: the addresses are compared as two
// byte-swapped words instead.
inline tcp::Side make_key(const packet::TcpSegment& seg, FlowKey& key) {
    static_assert(std::endian::native == std::endian::little, "the key's last word is built LE");
    static_assert(offsetof(FlowKey, lo_port) == 32 && offsetof(FlowKey, hi_port) == 34 &&
                  offsetof(FlowKey, family) == 36);
    uint64_t s0, s1, d0, d1;
    std::memcpy(&s0, seg.src.b.data(), 8);
    std::memcpy(&s1, seg.src.b.data() + 8, 8);
    std::memcpy(&d0, seg.dst.b.data(), 8);
    std::memcpy(&d1, seg.dst.b.data() + 8, 8);
    const uint64_t sb0 = __builtin_bswap64(s0), sb1 = __builtin_bswap64(s1);
    const uint64_t db0 = __builtin_bswap64(d0), db1 = __builtin_bswap64(d1);
    const bool src_low = sb0 < db0 || (sb0 == db0 && (sb1 < db1 || (sb1 == db1 &&
                                                                   seg.sport <= seg.dport)));
    const uint64_t tail = uint64_t{src_low ? seg.sport : seg.dport} |
                          (uint64_t{src_low ? seg.dport : seg.sport} << 16) |
                          (uint64_t{seg.family} << 32);
    // Separate 8-byte stores (an array copied in would be stored in words and reloaded
    // in 16-byte pieces: another failed forward).
    auto* k = reinterpret_cast<uint8_t*>(&key);
    const uint64_t lo0 = src_low ? s0 : d0, lo1 = src_low ? s1 : d1;
    const uint64_t hi0 = src_low ? d0 : s0, hi1 = src_low ? d1 : s1;
    std::memcpy(k, &lo0, 8);
    std::memcpy(k + 8, &lo1, 8);
    std::memcpy(k + 16, &hi0, 8);
    std::memcpy(k + 24, &hi1, 8);
    std::memcpy(k + 32, &tail, 8);
    const uint64_t zero = 0;
    std::memcpy(k + 40, &zero, 8);
    return src_low ? 0 : 1;
}

// The flow's hash: CRC32-C of the normalised key, so both directions get the same value. One
// function for every use, computed once per frame: the software dispatcher picks the worker from
// it and hands it over, and the worker's flow table indexes flows by the same value
// (flow_table.hpp), so the bulk lookup takes it as is. It is
// DPDK's rte_hash_crc (same polynomial, seed, 8 bytes a step) without the EAL's CPU-flag
// dispatch, which this header cannot link (the pure library has no DPDK): SSE4.2 where the
// compiler targets it (DPDK's -march=corei7), bit by bit otherwise. Never a symmetric Toeplitz
// RSS hash: its two 16-bit halves are equal.
inline constexpr uint32_t kFlowHashSeed = 0x9e3779b9;

inline uint32_t crc32c_u64(uint32_t crc, uint64_t v) {
#if defined(__SSE4_2__)
    return static_cast<uint32_t>(__builtin_ia32_crc32di(crc, v));
#else
    for (int i = 0; i < 64; ++i, v >>= 1) {
        const uint32_t bit = (crc ^ static_cast<uint32_t>(v)) & 1u;
        crc = (crc >> 1) ^ (bit ? 0x82f63b78u : 0u);
    }
    return crc;
#endif
}

inline uint32_t flow_hash(const void* key, uint32_t len, uint32_t seed) {
    const auto* p = static_cast<const uint8_t*>(key);
    uint32_t h = seed;
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = crc32c_u64(h, w);
    }
    for (; i < len; ++i) {  // (a FlowKey has none: 40 bytes hashed)
        h ^= p[i];
        for (int b = 0; b < 8; ++b) h = (h >> 1) ^ ((h & 1u) ? 0x82f63b78u : 0u);
    }
    return h;
}

inline uint32_t flow_hash(const FlowKey& k) { return flow_hash(&k, kFlowKeyHashed, kFlowHashSeed); }

// Which of `n` workers a flow of hash `h` belongs to. The hash is first multiplied by an odd
// constant: the worker then depends on all its bits, not only on the high bits the flow table
// picks a bucket with, nor on the low bits of its signatures (h % n would leave each worker's
// table half its signatures with n = 2; taking the high bits, half its buckets).
inline uint32_t worker_of(uint32_t h, uint32_t n) {
    return static_cast<uint32_t>((static_cast<uint64_t>(h * 0x9e3779b1u) * n) >> 32);
}

}  // namespace rstmon::flow
