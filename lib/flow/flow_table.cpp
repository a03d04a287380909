#include "flow/flow_table.hpp"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>

#include <stdexcept>

namespace rstmon::flow {
namespace {
constexpr uint32_t kEvictSample = 64;  // slots looked at to find a stale victim when full

// rte_hash hashes a key with this when the caller gives no hash (deletes): the same value as
// flow_hash(key), which covers the key's fields and not its zero padding.
uint32_t table_hash(const void* key, uint32_t len, uint32_t seed) {
    return flow_hash(key, len < kFlowKeyHashed ? len : kFlowKeyHashed, seed);
}
}  // namespace

FlowTable::FlowTable(const std::string& name, uint32_t capacity, int socket_id,
                     FlowTimeouts timeouts)
    : capacity_(capacity), slots_(capacity), timeouts_(timeouts) {
    if (capacity < 8) throw std::invalid_argument("flow table capacity must be at least 8");
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = capacity;
    p.key_len = sizeof(FlowKey);
    p.hash_func = table_hash;  // flow_hash: what callers hand in with each key
    p.hash_func_init_val = kFlowHashSeed;
    p.socket_id = socket_id;
    // The extendable bucket table guarantees `capacity` keys fit whatever the hash collisions.
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    hash_ = rte_hash_create(&p);
    if (hash_ == nullptr)
        throw std::runtime_error("cannot create flow table '" + name +
                                 "': " + rte_strerror(rte_errno));
    records_ = static_cast<FlowRecord*>(
        rte_zmalloc_socket(name.c_str(), sizeof(FlowRecord) * slots_, 64, socket_id));
    if (records_ == nullptr) {
        rte_hash_free(hash_);
        throw std::runtime_error("cannot allocate " + std::to_string(slots_) + " flow records");
    }
}

FlowTable::~FlowTable() {
    rte_free(records_);
    rte_hash_free(hash_);
}

size_t FlowTable::bytes_per_flow() {
    // Our record; in rte_hash: the key slot (data pointer + key, rounded up to 16 bytes: one
    // 64-byte line), the bucket entry (signature and index, 8 per 64-byte bucket), as much again
    // for the extendable buckets, and the free-slot ring's entry (a power of two, up to twice
    // the entries). Within a few bytes of what `bench_micro --memory-per-flow` measures from
    // DPDK's allocator.
    constexpr size_t key_slot = (sizeof(void*) + sizeof(FlowKey) + 15) / 16 * 16;
    return sizeof(FlowRecord) + key_slot + 8 + 8 + 8;
}

FlowRecord* FlowTable::lookup(const FlowKey& key, uint32_t hash) {
    const int32_t pos = rte_hash_lookup_with_hash(hash_, &key, hash);
    if (pos < 0 || static_cast<uint32_t>(pos) >= slots_) return nullptr;
    return &records_[pos];
}

void FlowTable::lookup_bulk(const FlowKey* const* keys, const uint32_t* hashes, uint32_t n,
                            FlowRecord** out) {
    int32_t pos[kBulkMax];
    if (n > kBulkMax) n = kBulkMax;
    rte_hash_lookup_with_hash_bulk(
        hash_, reinterpret_cast<const void**>(const_cast<const FlowKey**>(keys)),
        const_cast<hash_sig_t*>(hashes), n, pos);
    for (uint32_t i = 0; i < n; ++i) {
        if (pos[i] >= 0 && static_cast<uint32_t>(pos[i]) < slots_) {
            out[i] = &records_[pos[i]];
            rte_prefetch0(out[i]);
            rte_prefetch0(reinterpret_cast<const uint8_t*>(out[i]) + 64);
        } else {
            out[i] = nullptr;
        }
    }
}

FlowRecord* FlowTable::insert(const FlowKey& key, uint32_t hash, uint64_t now_ns, bool is_syn) {
    if (active_ >= capacity_) {
        stats_.full++;
        if (!is_syn || !evict_one(now_ns)) return nullptr;  // admit SYNs first
    }
    int32_t pos = rte_hash_add_key_with_hash(hash_, &key, hash);
    if (pos < 0) {
        stats_.full++;
        if (!is_syn || !evict_one(now_ns)) return nullptr;
        pos = rte_hash_add_key_with_hash(hash_, &key, hash);
        if (pos < 0) return nullptr;
    }
    if (static_cast<uint32_t>(pos) >= slots_) {  // cannot happen with single-writer rte_hash
        rte_hash_del_key_with_hash(hash_, &key, hash);
        return nullptr;
    }
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

void FlowTable::erase_at(uint32_t pos, RemoveReason why) {
    if (hook_) hook_(hook_ctx_, records_[pos], why);
    void* key = nullptr;
    if (rte_hash_get_key_with_position(hash_, static_cast<int32_t>(pos), &key) == 0)
        rte_hash_del_key(hash_, key);
    records_[pos].in_use = 0;
    active_--;
    removals_++;
}

void FlowTable::remove(const FlowKey& key) {
    const int32_t pos = rte_hash_del_key(hash_, &key);
    if (pos >= 0 && static_cast<uint32_t>(pos) < slots_ && records_[pos].in_use) {
        records_[pos].in_use = 0;
        active_--;
        removals_++;
    }
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
