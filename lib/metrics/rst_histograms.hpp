// Bucket bounds of the per-cause RST histograms, defined once: the worker counts into them and the
// exporter labels them, so a bucket can never drift from its `le`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace rstmon::metrics {

// Silence before an RST, in seconds. The bounds sit on the idle timeouts operators meet most:
// 30/60 s (short LB/proxy timeouts), 240-350 s (mobile cores, AWS NLB 350 s, Linux conntrack
// variants around 300 s), 600/900 s (cloud NAT gateways, firewalls), 3600 s (long TCP timeouts).
inline constexpr std::array<double, 14> kIdleBucketsS = {1,   5,   10,  30,   60,   120,  240,
                                                         300, 350, 600, 900, 1800, 3600, 7200};
// Age of the flow at its RST, in seconds: from handshake-time resets to day-long sessions.
inline constexpr std::array<double, 12> kAgeBucketsS = {0.001, 0.01, 0.1, 1,    10,    30,
                                                        60,    300,  900, 3600, 14400, 86400};

inline constexpr size_t kIdleBuckets = kIdleBucketsS.size() + 1;  // + the +Inf bucket
inline constexpr size_t kAgeBuckets = kAgeBucketsS.size() + 1;

// Index of the first bucket whose upper bound holds `us` microseconds (the last index is +Inf).
// Per RST, not per packet: a short linear scan is cheaper than anything clever.
template <size_t N>
inline size_t bucket_of(const std::array<double, N>& bounds_s, uint64_t us) {
    const double s = static_cast<double>(us) / 1e6;
    for (size_t i = 0; i < N; ++i)
        if (s <= bounds_s[i]) return i;
    return N;
}

}  // namespace rstmon::metrics
