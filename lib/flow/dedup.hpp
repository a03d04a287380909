// SPAN duplicates: the same frame delivered twice or more within a short window (a SPAN of both
// ingress and egress of a port, or of two interfaces along the path). Each copy after the first
// is recognised and dropped before the TCP tracker, so copies never look like retransmissions,
// extra RSTs or race evidence. No DPDK here: tested on buffers.
//
// What makes two captured frames the same segment: everything the sender put in the TCP segment
// and the IP fields a router leaves alone. TTL (hop limit) and the L2 header are left out on
// purpose: a frame mirrored on both sides of a router is the same segment with TTL - 1 and new
// MAC addresses, seen twice, and counts once. The TCP checksum covers the pseudo header, ports,
// seq, ack, flags, window, options and payload, so it stands in for the bytes not hashed. IPv4's
// IP ID tells a retransmission (a new ID from the sender's stack) from a copy (the same ID).
//
// IPv6 has no IP ID, and IPv4 stacks send some segments with ID 0 (Linux: the RSTs it sends for
// no socket). There the rest of the definition has to do, and an endpoint that repeats a segment
// byte for byte within the window is taken for a copy: a closed endpoint answering each of its
// peer's segments with the same RST microseconds apart (two public captures do) has its RSTs
// counted once. It changes no cause: they are one RST episode. (Telling such repeats from copies
// by what the peer sent in between was tried: copies that lag behind new data from the peer,
// 10-500 us on a busy SPAN, were then tracked as retransmissions and SYN retransmissions, which
// does change causes.)
//
// Memory: a per-worker set-associative table of (32-bit tag, 32-bit time) entries, 8 per set
// (one cache line), sized at start-up and never grown; no allocation per packet. It is keyed by
// the segment (and so by its 4-tuple: per flow and per direction), not by the flow's slot, so
// lone RSTs of untracked flows are recognised too and the flow record stays at 128 bytes. The
// pipeline hashes and prefetches each segment's set while it parses a burst, and asks after the
// flow lookup (to learn from copies about the path), before the TCP tracker. A copy is
// missed only when 8 newer segments landed in its set between the original and the copy: with
// 8192 sets (the default 64 Ki entries, 512 KiB) and copies 500 us late at 10 Mpps per worker
// (5000 segments in between, 0.6 per set) about 1 in a million. (4-way sets of the same memory
// missed about 1 in 700: a missed copy is remembered as new and pushes the next one out of its
// crowded set.) A missed copy is tracked as the original would have been.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "packet/packet.hpp"

namespace rstmon::flow {

// 64-bit signature of a segment as defined above (same value for every copy of a frame). The
// pipeline computes it while it parses a burst and prefetches the filter's set.
//
// The seven 64-bit words are folded pairwise by full 64x64->128-bit multiplies (the two halves
// of the product XORed, as wyhash does), three independent products and then one of them: two
// multiplies deep rather than a chain of seven multiply-xorshift rounds, which was a third of
// the chunk loop's time at 1K flows. Each word is offset by its own odd constant first, so a
// zero word (an IPv4 address's high half) still contributes.
inline uint64_t segment_signature(const packet::TcpSegment& s) {
    auto word = [](const uint8_t* p) {
        uint64_t w;
        std::memcpy(&w, p, sizeof w);
        return w;
    };
    auto fold = [](uint64_t a, uint64_t b) {
        const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
        return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
    };
    const uint64_t src0 = word(s.src.b.data()), src1 = word(s.src.b.data() + 8);
    const uint64_t dst0 = word(s.dst.b.data()), dst1 = word(s.dst.b.data() + 8);
    const uint64_t ports_seq = (uint64_t{s.sport} << 48) | (uint64_t{s.dport} << 32) | s.seq;
    const uint64_t ack_len = (uint64_t{s.ack} << 32) | s.payload_len;
    const uint64_t rest = (uint64_t{s.ip_id} << 32) | (uint64_t{s.checksum} << 16) |
                          (uint64_t{s.flags} << 8) | s.family;
    const uint64_t a = fold(src0 ^ 0xa0761d6478bd642full, ports_seq ^ 0xe7037ed1a0b428dbull);
    const uint64_t b = fold(dst0 ^ 0x8ebc6af09c88c6e3ull, ack_len ^ 0x589965cc75374cc3ull);
    const uint64_t c = fold(src1 ^ (dst1 * 0x9e3779b97f4a7c15ull) ^ 0x1d8e4e27c47d124full,
                            rest ^ 0xbf58476d1ce4e5b9ull);
    return fold(a ^ 0x94d049bb133111ebull, b ^ c ^ 0x2545f4914f6cdd1dull);
}

class DuplicateFilter {
public:
    static constexpr uint32_t kWays = 8;
    // Time is kept in units of 1024 ns (about 1 us) in 32 bits: it wraps after 73 minutes, far
    // beyond any window (at most 1 s by config), and comparisons are modulo 2^32.
    static constexpr unsigned kTickShift = 10;

    // `window_ns` 0 turns the filter off (no memory). `entries` is rounded up to a power of two
    // and to at least one set.
    DuplicateFilter(uint64_t window_ns, uint32_t entries) {
        if (window_ns == 0) return;
        window_ = static_cast<uint32_t>((window_ns + (1u << kTickShift) - 1) >> kTickShift);
        uint32_t sets = 1;
        while (sets * kWays < entries && sets < (1u << 28)) sets <<= 1;
        sets_.resize(sets);
        mask_ = sets - 1;
    }

    bool enabled() const { return window_ != 0; }
    size_t bytes() const { return sets_.size() * sizeof(Set); }

    // Starts loading the set `sig` (segment_signature) maps to: call a few segments ahead.
    void prefetch(uint64_t sig) const { __builtin_prefetch(&sets_[sig & mask_], 1, 3); }

    // True when the segment of signature `sig` (segment_signature), seen at `ts_ns`, is a copy
    // of one seen at most the window earlier or later (two mirror ports need not deliver in
    // order). Otherwise remembers it and returns false. The window runs from the first
    // sighting: a third copy still has to come within it.
    bool is_copy(uint64_t sig, uint64_t ts_ns) {
        Set& set = sets_[sig & mask_];
        const uint32_t tag = static_cast<uint32_t>(sig >> 32) | 1u;  // 0 marks an empty entry
        const uint32_t now = static_cast<uint32_t>(ts_ns >> kTickShift);
        if (may_hold(set, tag)) {
            for (const Entry& e : set.e) {
                if (e.tag != tag) continue;
                const int32_t d = static_cast<int32_t>(now - e.t);
                if ((d < 0 ? -static_cast<int64_t>(d) : d) <= window_) return true;
            }
        }
        // First-in first-out within the set: the oldest entry makes room. Copied out and back
        // (fixed size, registers) rather than memmove()d in place, which GCC left a libc call.
        Entry kept[kWays - 1];
        std::memcpy(kept, &set.e[0], sizeof kept);
        std::memcpy(&set.e[1], kept, sizeof kept);
        set.e[0] = Entry{tag, now};
        return false;
    }
    bool is_copy(const packet::TcpSegment& s, uint64_t ts_ns) {
        return is_copy(segment_signature(s), ts_ns);
    }

private:
    struct Entry {
        uint32_t tag = 0;
        uint32_t t = 0;
    };
    struct alignas(64) Set {
        Entry e[kWays];
    };
    static_assert(sizeof(Set) == 64, "a set is one cache line");

    // Whether any 32-bit word of the set equals `tag`, four at a time without a branch per
    // entry: almost every segment is no copy, and the entry-by-entry scan (a data-dependent
    // branch each) was half of the worker's per-segment handling at 1K flows. A time word equal
    // to the tag by chance only sends the caller to the exact scan.
    static bool may_hold(const Set& set, uint32_t tag) {
        using Lanes = uint32_t __attribute__((vector_size(16)));
        Lanes w[4];
        std::memcpy(w, set.e, sizeof w);
        const Lanes t = {tag, tag, tag, tag};
        const auto hit = (w[0] == t) | (w[1] == t) | (w[2] == t) | (w[3] == t);
        uint64_t h[2];
        std::memcpy(h, &hit, sizeof h);
        return (h[0] | h[1]) != 0;
    }

    std::vector<Set> sets_;
    uint64_t mask_ = 0;
    uint32_t window_ = 0;  // ticks
};

}  // namespace rstmon::flow
