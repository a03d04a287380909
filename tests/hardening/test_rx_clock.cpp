// The driver timestamp unit is measured on one frame whose capture time libpcap told us
// (dpdk/rx_clock.hpp): whatever unit a net_pcap version writes, rstmon's times come out in ns.
#include <gtest/gtest.h>

#include "dpdk/rx_clock.hpp"

using rstmon::dpdk::measure_timestamp_unit_ns;

namespace {
constexpr uint64_t kNs = 1'700'000'000'123'456'789ull;  // 2023-11-14, to the nanosecond
}

TEST(RxClock, MicrosecondsFromANanosecondCapture) {
    // A ns-resolution file replayed by a driver that truncates to us (DPDK 22.11's net_pcap).
    EXPECT_EQ(measure_timestamp_unit_ns(kNs, kNs / 1000, 7), 1000u);
}

TEST(RxClock, MicrosecondsFromAMicrosecondCapture) {
    EXPECT_EQ(measure_timestamp_unit_ns(1'700'000'000'123'456'000ull, 1'700'000'000'123'456ull, 7),
              1000u);
}

TEST(RxClock, NanosecondsWhenTheDriverKeepsThem) {
    EXPECT_EQ(measure_timestamp_unit_ns(kNs, kNs, 7), 1u);
}

TEST(RxClock, MillisecondsAndSeconds) {
    EXPECT_EQ(measure_timestamp_unit_ns(kNs, kNs / 1'000'000, 7), 1'000'000u);
    EXPECT_EQ(measure_timestamp_unit_ns(kNs, kNs / 1'000'000'000, 7), 1'000'000'000u);
}

TEST(RxClock, EarlyCaptureTimesStillResolve) {
    // A capture that starts 1.5 s after the epoch (synthetic files): 1500000 us.
    EXPECT_EQ(measure_timestamp_unit_ns(1'500'000'000ull, 1'500'000ull, 7), 1000u);
    EXPECT_EQ(measure_timestamp_unit_ns(1'500'000'000ull, 1'500'000'000ull, 7), 1u);
    // Sub-microsecond time truncated to 0 us by the driver: nothing to compare, the fallback.
    EXPECT_EQ(measure_timestamp_unit_ns(999, 0, 7), 7u);
}

TEST(RxClock, NothingToCompareGivesTheFallback) {
    EXPECT_EQ(measure_timestamp_unit_ns(0, 0, 1000), 1000u);
    EXPECT_EQ(measure_timestamp_unit_ns(0, 12345, 1000), 1000u);
}
