// Memory of the TTL each host's packets arrive with, for flows where the purported RST sender has
// not spoken yet (a firewall refusing a SYN on the server's behalf).
//
// A host's flows are spread over the workers, so this memory cannot live in a worker: a verdict
// must not depend on which worker learned the host. It belongs to the stage that sees every
// frame in arrival order: the software dispatcher (several workers behind it), or the lone
// worker. That stage shows every TCP frame to observe() before the flow tracker sees it: a SYN,
// SYN-ACK or FIN teaches its source's TTL, an RST gets the TTL its source had before (every
// frame taught the same but cost a fifth of a worker's time on the benchmark, a million client
// addresses passing through: a connection's opening and closing segments are enough; other
// segments are not looked at). So the answer is
// the same for 1, 2 or N workers. (With RSS every worker is its own dispatch stage and they
// share one table: plain 64-bit loads and stores, no read-modify-write; live traffic has no
// replayable order anyway.)
//
// What a host's TTL is: the highest seen lately. A SPAN that mirrors both sides of a router
// shows each frame twice, the second copy with TTL - 1 microseconds later; the first sighting
// (before the router) is what the host's RSTs arrive with at that mirror too. A lower TTL
// replaces the entry only once the higher one has not been seen for kForgetMs (a route that
// got longer). RSTs never teach: a forged one would teach the forger's TTL.
//
// Fixed size, set-associative: 8 entries of 64 bits to a set, one cache line; a new host takes
// the place of the entry refreshed least recently, so busy servers stay while a stream of new
// client addresses passes through (direct-mapped, one in 1400 firewall resets in the benchmark
// mix lost its server's TTL to a client's address). A 24-bit tag (and the set index) avoid
// false matches.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "packet/packet.hpp"

namespace rstmon::flow {

class HostTtlTable {
public:
    static constexpr uint32_t kForgetMs = 60000;

    static constexpr uint32_t kWays = 8;

    // `entries` is rounded up to a power of two of whole sets.
    explicit HostTtlTable(uint32_t entries = 1u << 16) {
        uint32_t sets = 1;
        while (sets * kWays < entries) sets <<= 1;
        mask_ = sets - 1;
        sets_ = std::make_unique<Set[]>(sets);
        for (uint32_t i = 0; i < sets; ++i)
            for (auto& w : sets_[i].w) w.store(0, std::memory_order_relaxed);
    }

    // The dispatch stage's one call per TCP frame, in arrival order (`ts_ns`: the frame's time,
    // capture time offline). Returns, for an RST, its source's TTL learned before (0: unknown);
    // for any other frame 0, after learning from it.
    uint8_t observe(const packet::TcpSegment& seg, uint64_t ts_ns) {
        if (seg.has(packet::tcpflag::rst)) return lookup(seg.src);
        if (seg.flags & (packet::tcpflag::syn | packet::tcpflag::fin)) learn(seg.src, seg.ttl, ts_ns);
        return 0;
    }
    // Whether observe() touches the table for this segment (what is worth prefetching).
    static bool consulted(const packet::TcpSegment& seg) {
        return seg.flags & (packet::tcpflag::rst | packet::tcpflag::syn | packet::tcpflag::fin);
    }
    void prefetch(const packet::IpAddr& a) const { __builtin_prefetch(&sets_[hash(a) & mask_], 1, 3); }

    void learn(const packet::IpAddr& a, uint8_t ttl, uint64_t ts_ns) {
        if (ttl == 0) return;  // 0 means unknown
        const uint64_t h = hash(a);
        Set& set = sets_[h & mask_];
        const uint32_t now = ms(ts_ns);
        std::atomic<uint64_t>* oldest = &set.w[0];
        uint32_t oldest_age = 0;
        for (auto& w : set.w) {
            const uint64_t cur = w.load(std::memory_order_relaxed);
            const uint32_t age = now - static_cast<uint32_t>(cur);
            if ((cur >> 40) == tag(h)) {
                const auto known = static_cast<uint8_t>(cur >> 32);
                // The same TTL: refreshed once a millisecond at most (a store per frame would
                // write the line each time); the refresh time is what keeps a busy host in its
                // set. A lower one: a copy behind a router, unless the higher is old.
                if ((ttl == known && age == 0) || (ttl < known && age < kForgetMs)) return;
                oldest = &w;
                break;
            }
            if (cur == 0) {  // empty
                oldest = &w;
                oldest_age = UINT32_MAX;
            } else if (age > oldest_age) {
                oldest = &w;
                oldest_age = age;
            }
        }
        oldest->store((tag(h) << 40) | (uint64_t{ttl} << 32) | now, std::memory_order_relaxed);
    }
    // 0 when unknown.
    uint8_t lookup(const packet::IpAddr& a) const {
        const uint64_t h = hash(a);
        for (const auto& w : sets_[h & mask_].w) {
            const uint64_t cur = w.load(std::memory_order_relaxed);
            if ((cur >> 40) == tag(h)) return static_cast<uint8_t>(cur >> 32);
        }
        return 0;
    }
    size_t bytes() const { return (mask_ + 1) * sizeof(Set); }

private:
    // Milliseconds modulo 2^32 (49 days; ages are unsigned differences).
    static uint32_t ms(uint64_t ts_ns) { return static_cast<uint32_t>(ts_ns / 1000000ull); }
    static uint64_t tag(uint64_t h) { return ((h >> 40) & 0xffffffull) | 1u; }  // never 0 (empty)
    static uint64_t hash(const packet::IpAddr& a) {
        uint64_t x = 0, y = 0;
        __builtin_memcpy(&x, a.b.data(), 8);
        __builtin_memcpy(&y, a.b.data() + 8, 8);
        uint64_t h = (x ^ (y * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
        return h ^ (h >> 31);
    }
    struct alignas(64) Set {
        std::atomic<uint64_t> w[kWays];  // tag (24 bits) | TTL (8) | ms refreshed (32); 0: empty
    };
    uint64_t mask_ = 0;
    std::unique_ptr<Set[]> sets_;
};

}  // namespace rstmon::flow
