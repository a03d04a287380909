#include "flow/flow_table.hpp"

#include <rte_malloc.h>
#include <rte_prefetch.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstring>
#include <stdexcept>

namespace rstmon::flow {
namespace {
constexpr uint32_t kEvictSample = 64;  // slots looked at to find a stale victim when full
// Index entries per flow of the capacity: buckets about 80% full at capacity, where linear
// probing ends in the home bucket or the next for almost every key.
constexpr double kIndexLoad = 0.8;

template <typename T>
T* zalloc(const std::string& name, const char* what, size_t n, int socket_id) {
    auto* p = static_cast<T*>(
        rte_zmalloc_socket((name + "_" + what).c_str(), sizeof(T) * n, 64, socket_id));
    if (p == nullptr)
        throw std::runtime_error("cannot allocate flow table '" + name + "': " +
                                 std::to_string(sizeof(T) * n) + " bytes of " + what);
    return p;
}

// Ways of a bucket whose signature is `sig`, as two bits per way (way w: bits 2w and 2w+1).
template <typename Bucket>
uint32_t sig_mask(const Bucket& b, uint16_t sig) {
#if defined(__SSE2__)
    const __m128i sigs = _mm_load_si128(reinterpret_cast<const __m128i*>(b.sig));
    return static_cast<uint32_t>(
        _mm_movemask_epi8(_mm_cmpeq_epi16(sigs, _mm_set1_epi16(static_cast<short>(sig)))));
#else
    uint32_t m = 0;
    for (uint32_t w = 0; w < sizeof b.sig / sizeof b.sig[0]; ++w)
        if (b.sig[w] == sig) m |= 3u << (2 * w);
    return m;
#endif
}
// The lowest way of a mask from sig_mask, taken out of it.
inline uint32_t take_way(uint32_t& m) {
    const uint32_t w = static_cast<uint32_t>(__builtin_ctz(m)) >> 1;
    m &= ~(3u << (2 * w));
    return w;
}
}  // namespace

FlowTable::FlowTable(const std::string& name, uint32_t capacity, int socket_id,
                     FlowTimeouts timeouts)
    : capacity_(capacity), slots_(capacity), timeouts_(timeouts) {
    if (capacity < 8) throw std::invalid_argument("flow table capacity must be at least 8");
    nbuckets_ = static_cast<uint32_t>(capacity / (kWays * kIndexLoad)) + 1;
    try {
        buckets_ = zalloc<Bucket>(name, "index", nbuckets_, socket_id);
        keys_ = zalloc<KeySlot>(name, "keys", slots_, socket_id);
        records_ = zalloc<FlowRecord>(name, "records", slots_, socket_id);
        free_ = zalloc<uint32_t>(name, "free positions", slots_, socket_id);
    } catch (...) {
        rte_free(free_);
        rte_free(records_);
        rte_free(keys_);
        rte_free(buckets_);
        throw;
    }
    // Position 0 is handed out first, then 1, ...
    for (uint32_t i = 0; i < slots_; ++i) free_[i] = slots_ - 1 - i;
    nfree_ = slots_;
}

FlowTable::~FlowTable() {
    rte_free(free_);
    rte_free(records_);
    rte_free(keys_);
    rte_free(buckets_);
}

size_t FlowTable::bytes_per_flow() {
    // The record, the key's line, the free-position stack's entry and the index's share (one
    // 64-byte bucket per kWays x kIndexLoad flows). Within a few bytes of what
    // `bench_micro --memory-per-flow` measures from DPDK's allocator.
    return sizeof(FlowRecord) + sizeof(KeySlot) + sizeof(uint32_t) +
           static_cast<size_t>(sizeof(Bucket) / (kWays * kIndexLoad) + 0.5);
}

// Six 8-byte words compared at once, no branch per word (no libc call either).
bool FlowTable::same_key(const FlowKey& a, const FlowKey& b) {
    static_assert(sizeof(FlowKey) == 48);
    uint64_t wa[6], wb[6];
    std::memcpy(wa, &a, sizeof wa);
    std::memcpy(wb, &b, sizeof wb);
    return ((wa[0] ^ wb[0]) | (wa[1] ^ wb[1]) | (wa[2] ^ wb[2]) | (wa[3] ^ wb[3]) |
            (wa[4] ^ wb[4]) | (wa[5] ^ wb[5])) == 0;
}

int64_t FlowTable::find(const FlowKey& key, uint32_t hash) const {
    const uint16_t sig = sig_of(hash);
    uint32_t b = home(hash);
    for (uint32_t n = 0; n < nbuckets_; ++n, b = next(b)) {
        const Bucket& bk = buckets_[b];
        for (uint32_t m = sig_mask(bk, sig); m != 0;) {
            const uint32_t pos = bk.pos[take_way(m)];
            if (same_key(keys_[pos].key, key)) return pos;
        }
        if (bk.spilled == 0) break;
    }
    return -1;
}

FlowRecord* FlowTable::lookup(const FlowKey& key, uint32_t hash) {
    const int64_t pos = find(key, hash);
    return pos < 0 ? nullptr : &records_[pos];
}

// Two steps over the whole batch, each starting every load of the next before using one: the
// home buckets; then, for each bucket's first signature match, the key and the record together.
// Keys whose first candidate is not theirs, or that may have spilled, take find().
void FlowTable::lookup_bulk(const FlowKey* const* keys, const uint32_t* hashes, uint32_t n,
                            FlowRecord** out) {
    if (n > kBulkMax) n = kBulkMax;
    uint32_t at[kBulkMax];
    for (uint32_t i = 0; i < n; ++i) {
        at[i] = home(hashes[i]);
        rte_prefetch0(&buckets_[at[i]]);
    }
    constexpr uint32_t kMiss = UINT32_MAX, kSlow = UINT32_MAX - 1;
    for (uint32_t i = 0; i < n; ++i) {
        const Bucket& bk = buckets_[at[i]];
        uint32_t m = sig_mask(bk, sig_of(hashes[i]));
        if (m == 0) {
            at[i] = bk.spilled == 0 ? kMiss : kSlow;
            continue;
        }
        const uint32_t pos = bk.pos[take_way(m)];
        at[i] = pos;
        rte_prefetch0(&keys_[pos]);
        rte_prefetch0(&records_[pos]);
        rte_prefetch0(reinterpret_cast<const uint8_t*>(&records_[pos]) + 64);
    }
    for (uint32_t i = 0; i < n; ++i) {
        if (at[i] == kMiss) {
            out[i] = nullptr;
        } else if (at[i] != kSlow && same_key(keys_[at[i]].key, *keys[i])) {
            out[i] = &records_[at[i]];
        } else {
            out[i] = lookup(*keys[i], hashes[i]);
            if (out[i] != nullptr) {
                rte_prefetch0(out[i]);
                rte_prefetch0(reinterpret_cast<const uint8_t*>(out[i]) + 64);
            }
        }
    }
}

// The caller has looked `key` up and not found it.
FlowRecord* FlowTable::insert(const FlowKey& key, uint32_t hash, uint64_t now_ns, bool is_syn) {
    if (active_ >= capacity_) {
        stats_.full++;
        if (!is_syn || !evict_one(now_ns)) return nullptr;  // admit SYNs first
    }
    const uint32_t pos = free_[--nfree_];
    // The first bucket with a free way from the home bucket on; the full ones passed count it.
    uint32_t b = home(hash);
    for (;;) {
        Bucket& bk = buckets_[b];
        const uint32_t empty = sig_mask(bk, 0);
        if (empty != 0) {
            uint32_t m = empty;
            const uint32_t w = take_way(m);
            bk.sig[w] = sig_of(hash);
            bk.pos[w] = pos;
            break;
        }
        bk.spilled++;
        b = next(b);
    }
    keys_[pos].key = key;
    keys_[pos].hash = hash;
    FlowRecord& r = records_[pos];
    const uint16_t gen = static_cast<uint16_t>(r.gen + 1);
    r = FlowRecord{};
    r.gen = gen;
    r.first_ns = r.last_ns = now_ns;
    r.in_use = 1;
    active_++;
    inserts_++;
    stats_.created++;
    return &r;
}

void FlowTable::unlink(uint32_t pos) {
    const uint32_t hash = keys_[pos].hash;
    const uint16_t sig = sig_of(hash);
    uint32_t b = home(hash);
    for (uint32_t n = 0; n < nbuckets_; ++n) {
        Bucket& bk = buckets_[b];
        for (uint32_t m = sig_mask(bk, sig); m != 0;) {
            const uint32_t w = take_way(m);
            if (bk.pos[w] != pos) continue;
            bk.sig[w] = 0;
            // The buckets it had passed no longer hold it up.
            for (uint32_t c = home(hash); c != b; c = next(c)) buckets_[c].spilled--;
            records_[pos].in_use = 0;
            free_[nfree_++] = pos;
            active_--;
            removals_++;
            return;
        }
        b = next(b);
    }
}

void FlowTable::erase_at(uint32_t pos, RemoveReason why) {
    if (hook_) hook_(hook_ctx_, records_[pos], why);
    unlink(pos);
}

void FlowTable::remove(const FlowKey& key) {
    const int64_t pos = find(key, flow_hash(key));
    if (pos >= 0 && records_[pos].in_use) unlink(static_cast<uint32_t>(pos));
}

bool FlowTable::expired(const FlowRecord& r, uint64_t now_ns) const {
    const tcp::Connection& c = r.conn;
    uint64_t timeout = timeouts_.established_ns;
    if (c.any_fin() || c.any_rst())
        timeout = timeouts_.closing_ns;
    else if (!c.established && c.origin == tcp::Origin::handshake)
        timeout = timeouts_.handshake_ns;
    return now_ns > r.last_ns && now_ns - r.last_ns > timeout;
}

void FlowTable::sweep(uint64_t now_ns, uint32_t budget) {
    for (uint32_t i = 0; i < budget && active_ > 0; ++i) {
        const uint32_t pos = cursor_;
        cursor_ = cursor_ + 1 == slots_ ? 0 : cursor_ + 1;
        if (records_[pos].in_use && expired(records_[pos], now_ns)) {
            erase_at(pos, RemoveReason::expired);
            stats_.expired++;
        }
    }
}

// A SYN flood must not push out the connections being monitored: in the sample, a flow that
// never completed its handshake or has already closed (FIN/RST) goes first, the stalest of those;
// a live connection is evicted only when the whole sample is live. It costs nothing until the
// table is full.
bool FlowTable::evict_one(uint64_t now_ns) {
    uint32_t victim = UINT32_MAX;
    uint64_t oldest = UINT64_MAX;
    bool victim_live = true;
    for (uint32_t i = 0; i < kEvictSample; ++i) {
        const uint32_t pos = cursor_;
        cursor_ = cursor_ + 1 == slots_ ? 0 : cursor_ + 1;
        const FlowRecord& r = records_[pos];
        if (!r.in_use) continue;
        const tcp::Connection& c = r.conn;
        const bool live = !c.any_fin() && !c.any_rst() &&
                          (c.established || c.origin != tcp::Origin::handshake);
        if ((victim_live && !live) || (live == victim_live && r.last_ns < oldest)) {
            oldest = r.last_ns;
            victim = pos;
            victim_live = live;
        }
    }
    if (victim == UINT32_MAX) return false;
    (void)now_ns;
    erase_at(victim, RemoveReason::evicted);
    stats_.evicted++;
    return true;
}

}  // namespace rstmon::flow
