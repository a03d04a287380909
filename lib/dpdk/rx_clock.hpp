// The unit of a driver's RX timestamps, measured rather than assumed. net_pcap puts each frame's
// capture time into the mbuf timestamp dynfield, but the dynfield has no unit of its own and
// drivers differ (DPDK 22.11's net_pcap writes microseconds, other drivers and versions
// nanoseconds, rte_eth_read_clock is not offered by net_pcap). libpcap tells rstmon the capture
// time of a frame in nanoseconds before the replay; the lcore that polls the port compares it with
// the value the driver delivers for that frame and takes the power of 1000 that relates them.
#pragma once

#include <cmath>
#include <cstdint>

namespace rstmon::dpdk {

// ns per driver unit: 1 (ns), 1000 (us), 1000000 (ms) or 1000000000 (s), whichever makes `raw`
// closest to `expect_ns` (a pcap read in nanoseconds against a driver that truncated it to
// microseconds is 1000 and a bit). `fallback` when either is 0 (nothing to compare).
inline uint64_t measure_timestamp_unit_ns(uint64_t expect_ns, uint64_t raw, uint64_t fallback) {
    if (expect_ns == 0 || raw == 0) return fallback;
    const double ratio = std::log10(static_cast<double>(expect_ns) / static_cast<double>(raw));
    uint64_t best = 1;
    double best_miss = std::fabs(ratio);
    for (uint64_t unit = 1000, exp = 3; exp <= 9; unit *= 1000, exp += 3) {
        const double miss = std::fabs(ratio - static_cast<double>(exp));
        if (miss < best_miss) {
            best_miss = miss;
            best = unit;
        }
    }
    return best;
}

}  // namespace rstmon::dpdk
