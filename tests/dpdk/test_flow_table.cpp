#include <gtest/gtest.h>

#include <rte_memory.h>

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
