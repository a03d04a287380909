#include <gtest/gtest.h>

#include <rte_memory.h>

#include <map>
#include <random>
#include <vector>

#include "flow/flow_table.hpp"

using namespace rstmon;

namespace {
flow::FlowKey key(uint32_t n) {
    flow::FlowKey k;
    k.family = 4;
    k.lo_addr.b[0] = 10;
    k.lo_addr.b[3] = 1;
    k.hi_addr.b[0] = 10;
    k.hi_addr.b[3] = 2;
    k.lo_port = static_cast<uint16_t>(n);
    k.hi_port = static_cast<uint16_t>(n >> 16);
    return k;
}
constexpr uint64_t kSec = 1000000000ull;
int table_id = 0;
std::string unique_name() { return "ft_test_" + std::to_string(table_id++); }
}  // namespace

TEST(FlowTable, InsertLookupRemove) {
    flow::FlowTable t(unique_name(), 1024, SOCKET_ID_ANY, {});
    EXPECT_EQ(t.lookup(key(1)), nullptr);
    flow::FlowRecord* r = t.insert(key(1), 5 * kSec, true);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->first_ns, 5 * kSec);
    r->conn.service = 7;
    EXPECT_EQ(t.lookup(key(1)), r);
    EXPECT_EQ(t.lookup(key(1))->conn.service, 7);
    EXPECT_EQ(t.active(), 1u);
    t.remove(key(1));
    EXPECT_EQ(t.lookup(key(1)), nullptr);
    EXPECT_EQ(t.active(), 0u);
    EXPECT_EQ(t.stats().created, 1u);
}

TEST(FlowTable, FullTableEvictsForSynsAndRefusesOthers) {
    constexpr uint32_t cap = 1024;
    flow::FlowTable t(unique_name(), cap, SOCKET_ID_ANY, {});
    for (uint32_t i = 0; i < cap; ++i) ASSERT_NE(t.insert(key(i), (i + 1) * kSec, true), nullptr) << i;
    EXPECT_EQ(t.active(), cap);
    // A mid-stream packet of a new flow is refused: tracked flows are kept.
    EXPECT_EQ(t.insert(key(cap), 5000 * kSec, false), nullptr);
    EXPECT_EQ(t.stats().full, 1u);
    EXPECT_EQ(t.stats().evicted, 0u);
    // A SYN evicts the stalest flow of the sample and gets in.
    ASSERT_NE(t.insert(key(cap + 1), 5000 * kSec, true), nullptr);
    EXPECT_EQ(t.stats().evicted, 1u);
    EXPECT_EQ(t.active(), cap);
    EXPECT_NE(t.lookup(key(cap + 1)), nullptr);
    // The victim was the oldest of the slots sampled from the start: key 0.
    EXPECT_EQ(t.lookup(key(0)), nullptr);
    EXPECT_NE(t.lookup(key(cap - 1)), nullptr);
}

TEST(FlowTable, SweepExpiresIdleFlowsByState) {
    flow::FlowTimeouts to;
    to.handshake_ns = 10 * kSec;
    to.established_ns = 100 * kSec;
    to.closing_ns = 5 * kSec;
    flow::FlowTable t(unique_name(), 1024, SOCKET_ID_ANY, to);
    auto* hs = t.insert(key(1), 0, true);  // handshake in progress
    hs->conn.origin = tcp::Origin::handshake;
    auto* est = t.insert(key(2), 0, true);
    est->conn.origin = tcp::Origin::handshake;
    est->conn.established = 1;
    auto* closing = t.insert(key(3), 0, true);
    closing->conn.origin = tcp::Origin::handshake;
    closing->conn.established = 1;
    closing->conn.dir[0].fin = 1;

    t.sweep(6 * kSec, 2048);
    EXPECT_EQ(t.lookup(key(3)), nullptr);  // closing: 5 s
    EXPECT_NE(t.lookup(key(1)), nullptr);
    t.sweep(11 * kSec, 2048);
    EXPECT_EQ(t.lookup(key(1)), nullptr);  // handshake: 10 s
    EXPECT_NE(t.lookup(key(2)), nullptr);
    t.sweep(101 * kSec, 2048);
    EXPECT_EQ(t.lookup(key(2)), nullptr);  // established: 100 s
    EXPECT_EQ(t.stats().expired, 3u);
    EXPECT_EQ(t.active(), 0u);
}

TEST(FlowTable, SweepIsIncremental) {
    flow::FlowTable t(unique_name(), 1024, SOCKET_ID_ANY, {});
    for (uint32_t i = 0; i < 100; ++i) t.insert(key(i), 0, true);
    t.sweep(1000000 * kSec, 8);  // looks at 8 slots only
    EXPECT_LE(t.stats().expired, 8u);
    for (int i = 0; i < 200; ++i) t.sweep(1000000 * kSec, 8);
    EXPECT_EQ(t.active(), 0u);
}

// Every key in one home bucket (the caller hands the hash in): the index spills them over the
// following buckets, finds each, and finds the rest after some are removed from the middle.
TEST(FlowTable, KeysSharingOneHashAreAllFoundAcrossSpilledBuckets) {
    constexpr uint32_t cap = 200;
    flow::FlowTable t(unique_name(), cap, SOCKET_ID_ANY, {});
    constexpr uint32_t h = 0x12345678;
    std::vector<flow::FlowRecord*> recs;
    for (uint32_t i = 0; i < cap; ++i) {
        ASSERT_EQ(t.lookup(key(i), h), nullptr) << i;
        recs.push_back(t.insert(key(i), h, kSec, true));
        ASSERT_NE(recs.back(), nullptr) << i;
    }
    for (uint32_t i = 0; i < cap; ++i) ASSERT_EQ(t.lookup(key(i), h), recs[i]) << i;
    for (uint32_t i = 0; i < cap; i += 3) {  // out of the middle of the chain: by expiry
        recs[i]->last_ns = 0;
        ASSERT_TRUE(t.expire_if_stale(recs[i], 100000 * kSec)) << i;
    }
    for (uint32_t i = 0; i < cap; ++i)
        ASSERT_EQ(t.lookup(key(i), h), i % 3 == 0 ? nullptr : recs[i]) << i;
    EXPECT_EQ(t.active(), cap - (cap + 2) / 3);
    for (uint32_t i = 0; i < cap; i += 3) ASSERT_NE(t.insert(key(i), h, kSec, true), nullptr) << i;
    for (uint32_t i = 1; i < cap; i += 3) ASSERT_EQ(t.lookup(key(i), h), recs[i]) << i;
    EXPECT_EQ(t.active(), cap);
}

// Random inserts, lookups (single and bulk) and removals against a std::map, with the real
// hash and with hashes squeezed into 4 values (long spill chains), through a full table.
TEST(FlowTable, AgreesWithAModelUnderChurn) {
    for (const uint32_t squeeze : {0u, 4u}) {
        constexpr uint32_t cap = 512;
        flow::FlowTable t(unique_name(), cap, SOCKET_ID_ANY, {});
        auto hash_of = [&](uint32_t k) {
            const uint32_t h = flow::flow_hash(key(k));
            return squeeze ? (h % squeeze) * 0x40000001u : h;
        };
        std::map<uint32_t, flow::FlowRecord*> model;
        std::mt19937 rng(squeeze + 1);
        uint32_t removed_by_hook = 0;
        for (int step = 0; step < 40000; ++step) {
            const uint32_t k = rng() % 1500;
            const uint32_t h = hash_of(k);
            const auto it = model.find(k);
            flow::FlowRecord* found = t.lookup(key(k), h);
            ASSERT_EQ(found, it == model.end() ? nullptr : it->second) << step;
            switch (rng() % 3) {
            case 0:
                if (it == model.end() && t.active() < cap) {
                    flow::FlowRecord* r = t.insert(key(k), h, kSec, true);
                    ASSERT_NE(r, nullptr);
                    for (const auto& [mk, mr] : model) ASSERT_NE(mr, r) << "position reused";
                    model[k] = r;
                }
                break;
            case 1:
                if (it != model.end()) {
                    // remove() hashes the key with flow_hash: with squeezed hashes the record
                    // leaves by expiry (the table's own removal, which keeps the hash).
                    if (!squeeze) {
                        t.remove(key(k));
                    } else {
                        it->second->last_ns = 0;
                        t.set_remove_hook([](void* n, const flow::FlowRecord&, flow::RemoveReason) {
                            ++*static_cast<uint32_t*>(n);
                        }, &removed_by_hook);
                        ASSERT_TRUE(t.expire_if_stale(it->second, 1000000 * kSec));
                    }
                    model.erase(it);
                }
                break;
            default: {
                std::vector<flow::FlowKey> ks;
                std::vector<uint32_t> hs, ids;
                for (uint32_t j = 0; j < 32; ++j) {
                    ids.push_back(rng() % 1500);
                    ks.push_back(key(ids.back()));
                    hs.push_back(hash_of(ids.back()));
                }
                std::vector<const flow::FlowKey*> kp;
                for (auto& x : ks) kp.push_back(&x);
                flow::FlowRecord* out[32];
                t.lookup_bulk(kp.data(), hs.data(), 32, out);
                for (uint32_t j = 0; j < 32; ++j) {
                    const auto m = model.find(ids[j]);
                    ASSERT_EQ(out[j], m == model.end() ? nullptr : m->second) << step << " " << j;
                }
            }
            }
            ASSERT_EQ(t.active(), model.size());
        }
        EXPECT_GT(model.size(), cap / 2);  // it ran near full
        if (squeeze) EXPECT_GT(removed_by_hook, 1000u);
    }
}
