// The summary feed: one SP/SC rte_ring of top::Record per worker, always on (unlike the
// rate-limited event ring). Workers push one record per finalized RST and per survived idle gap;
// the control thread drains them into the TopSummary. A full ring drops and counts live; an
// offline replay waits (nothing is lost, counts are exact).
#pragma once

#include <cstdint>
#include <vector>

#include "metrics/lcore_stats.hpp"
#include "top/top_summary.hpp"

struct rte_ring;

namespace rstmon::top {

class Feed {
public:
    Feed(uint32_t workers, uint32_t ring_size, bool lossless);  // EAL required; throws
    ~Feed();
    Feed(const Feed&) = delete;
    Feed& operator=(const Feed&) = delete;

    // Worker `w` only.
    void push(uint16_t w, const Record& r);
    // Control thread: moves everything queued into `t`; returns the records moved.
    size_t drain(TopSummary& t);
    uint64_t dropped() const;

private:
    struct alignas(64) PerWorker {
        rte_ring* ring = nullptr;
        metrics::Counter dropped;
    };
    std::vector<PerWorker> w_;
    bool lossless_;
};

}  // namespace rstmon::top
