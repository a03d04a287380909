// Per-worker flow table: records, their keys and an index of signatures, allocated from DPDK's
// heap (hugepages when the EAL has them) at start-up, never grown. One table per worker lcore:
// single writer, no locks. Not rte_hash: its lookup reads two candidate buckets and then the key
// slot, three dependent DRAM lines before the record at 1 M flows, where this index reads one
// bucket and then the key and the record at once (README "Where the time goes").
#pragma once

#include <cstdint>
#include <string>

#include "flow/flow_key.hpp"
#include "tcp/connection.hpp"

namespace rstmon::flow {

// Two whole cache lines, aligned: a record never straddles a third line, and both are prefetched.
struct alignas(64) FlowRecord {
    uint64_t first_ns = 0;  // time of the first packet
    uint64_t last_ns = 0;   // time of the last packet
    tcp::Connection conn;
    uint16_t gen = 0;       // bumped each time the slot is reused: stale references can tell
    uint8_t in_use = 0;
    // SPAN copies of this flow's segments came with another TTL: it is mirrored on both sides of
    // a router (flow/dedup.hpp), so an RST seen on one side only was made between the two.
    uint8_t two_sided = 0;

    // Milliseconds since the flow's first packet, as the connection state keeps time.
    tcp::Ms ms(uint64_t ts_ns) const {
        if (ts_ns <= first_ns) return 0;
        const uint64_t ms = (ts_ns - first_ns) / 1000000ull;
        return ms > UINT32_MAX ? UINT32_MAX : static_cast<tcp::Ms>(ms);
    }
};
static_assert(sizeof(FlowRecord) == 128, "hot per-flow record: exactly two cache lines");

struct FlowTimeouts {
    uint64_t handshake_ns = 30ull * 1000000000ull;     // until the handshake completes
    uint64_t established_ns = 3600ull * 1000000000ull;  // idle established flow
    uint64_t closing_ns = 60ull * 1000000000ull;       // after FIN or RST
};

enum class RemoveReason : uint8_t { expired, evicted };
// Called for every flow the table drops by itself (expiry, eviction), before the slot is reused.
using RemoveHook = void (*)(void* ctx, const FlowRecord& rec, RemoveReason why);

struct FlowTableStats {
    uint64_t created = 0, expired = 0, evicted = 0, full = 0;
};

class FlowTable {
public:
    // `name` names its memory in DPDK's heap. Throws on failure.
    FlowTable(const std::string& name, uint32_t capacity, int socket_id, FlowTimeouts timeouts);
    ~FlowTable();
    FlowTable(const FlowTable&) = delete;
    FlowTable& operator=(const FlowTable&) = delete;

    // Every key comes with its flow_hash(key) (flow_key.hpp), computed once per frame (by the
    // software dispatcher, or the worker): the table is built on that very function.
    FlowRecord* lookup(const FlowKey& key, uint32_t hash);
    FlowRecord* lookup(const FlowKey& key) { return lookup(key, flow_hash(key)); }
    // Looks up `n` (at most kBulkMax) keys at once and prefetches the records found: `out[i]` is
    // the record of keys[i] or null. A record found stays valid while no flow is removed (see
    // removals()): an insert moves no key's slot, it only turns a miss into a hit.
    static constexpr uint32_t kBulkMax = 64;
    void lookup_bulk(const FlowKey* const* keys, const uint32_t* hashes, uint32_t n,
                     FlowRecord** out);
    // Changes whenever a flow is removed (expiry, eviction, remove()): records found before
    // may have been freed, or reused for another key.
    uint64_t removals() const { return removals_; }
    // Changes whenever a flow is inserted: a miss found before may be a hit now.
    uint64_t inserts() const { return inserts_; }
    // Inserts a new flow at `now`. When the table is full, a SYN evicts the stalest of a sample of
    // flows, half-open or closed ones before live connections (RemoveReason::evicted); any other
    // packet is refused (nullptr) so live flows keep being tracked.
    FlowRecord* insert(const FlowKey& key, uint32_t hash, uint64_t now_ns, bool is_syn);
    FlowRecord* insert(const FlowKey& key, uint64_t now_ns, bool is_syn) {
        return insert(key, flow_hash(key), now_ns, is_syn);
    }
    void remove(const FlowKey& key);
    // Lazy refresh: a record found by lookup whose timeout has passed at `now_ns` is removed here
    // (as the sweep would have, hook and all) and true is returned: the caller starts afresh.
    // So expiry does not depend on when the incremental sweep reaches a slot.
    bool expire_if_stale(FlowRecord* r, uint64_t now_ns) {
        if (!expired(*r, now_ns)) return false;
        erase_at(position(r), RemoveReason::expired);
        stats_.expired++;
        return true;
    }
    void set_remove_hook(RemoveHook hook, void* ctx) {
        hook_ = hook;
        hook_ctx_ = ctx;
    }

    // Slot positions, so a pending record can refer to its flow without a pointer that a reuse
    // would silently redirect (check `gen`).
    uint32_t position(const FlowRecord* r) const { return static_cast<uint32_t>(r - records_); }
    FlowRecord* at(uint32_t pos) { return pos < slots_ ? &records_[pos] : nullptr; }

    // Expires up to `budget` slots from the sweep cursor: incremental, no per-packet timer work.
    void sweep(uint64_t now_ns, uint32_t budget);
    // Removes every flow `pred` selects, through the remove hook (end of a run only: walks the
    // whole table).
    template <typename Pred>
    void erase_if(Pred pred) {
        for (uint32_t pos = 0; pos < slots_ && active_ > 0; ++pos)
            if (records_[pos].in_use && pred(records_[pos])) {
                erase_at(pos, RemoveReason::expired);
                stats_.expired++;
            }
    }

    uint32_t capacity() const { return capacity_; }
    uint32_t active() const { return active_; }
    const FlowTableStats& stats() const { return stats_; }
    static size_t bytes_per_flow();

private:
    // The index: buckets of kWays (16-bit signature, position) entries, one cache line each.
    // A flow goes in the first bucket with room from its home bucket on (linear probing); each
    // full bucket it passes counts it in `spilled`, so a lookup stops at the first bucket that
    // nothing passed. The key lives in its own line beside the record (KeySlot, same position):
    // a lookup reads the home bucket, then the key and the record together.
    static constexpr uint32_t kWays = 8;
    struct alignas(64) Bucket {
        uint16_t sig[kWays];  // 0: empty way
        uint32_t pos[kWays];
        uint32_t spilled;     // flows stored past this bucket whose home is here or before it
    };
    static_assert(sizeof(Bucket) == 64);
    struct alignas(64) KeySlot {
        FlowKey key;
        uint32_t hash;  // flow_hash(key): removal finds the entry without hashing again
    };
    static_assert(sizeof(KeySlot) == 64);

    uint32_t home(uint32_t hash) const {
        return static_cast<uint32_t>((static_cast<uint64_t>(hash) * nbuckets_) >> 32);
    }
    static uint16_t sig_of(uint32_t hash) { return static_cast<uint16_t>(hash | 1u); }
    uint32_t next(uint32_t b) const { return b + 1 == nbuckets_ ? 0 : b + 1; }
    static bool same_key(const FlowKey& a, const FlowKey& b);
    int64_t find(const FlowKey& key, uint32_t hash) const;  // position or -1
    void unlink(uint32_t pos);  // takes `pos` out of the index

    bool expired(const FlowRecord& r, uint64_t now_ns) const;
    bool evict_one(uint64_t now_ns);
    void erase_at(uint32_t pos, RemoveReason why);

    Bucket* buckets_ = nullptr;
    KeySlot* keys_ = nullptr;
    FlowRecord* records_ = nullptr;
    uint32_t* free_ = nullptr;  // stack of free positions
    uint32_t nfree_ = 0;
    uint32_t nbuckets_ = 0;
    uint32_t capacity_ = 0;
    uint32_t slots_ = 0;  // positions: one per flow of the capacity
    uint32_t active_ = 0;
    uint32_t cursor_ = 0;
    uint64_t removals_ = 0;
    uint64_t inserts_ = 0;
    FlowTimeouts timeouts_;
    FlowTableStats stats_;
    RemoveHook hook_ = nullptr;
    void* hook_ctx_ = nullptr;
};

}  // namespace rstmon::flow
