#include "top/feed.hpp"

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace rstmon::top {

Feed::Feed(uint32_t workers, uint32_t ring_size, bool lossless) : w_(workers), lossless_(lossless) {
    static std::atomic<uint32_t> serial{0};  // ring names are process-wide
    const uint32_t tag = serial.fetch_add(1);
    for (uint32_t i = 0; i < workers; ++i) {
        const std::string name = "rstmon_top" + std::to_string(tag) + "_" + std::to_string(i);
        w_[i].ring = rte_ring_create_elem(name.c_str(), sizeof(Record), ring_size,
                                          static_cast<int>(rte_socket_id()),
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (w_[i].ring == nullptr) {
            for (auto& p : w_) rte_ring_free(p.ring);
            throw std::runtime_error("cannot create the top summary ring " + name + ": " +
                                     rte_strerror(rte_errno));
        }
    }
}

Feed::~Feed() {
    for (auto& p : w_) rte_ring_free(p.ring);
}

void Feed::push(uint16_t w, const Record& r) {
    if (w >= w_.size()) return;
    while (rte_ring_sp_enqueue_elem(w_[w].ring, const_cast<Record*>(&r), sizeof r) != 0) {
        if (!lossless_) {
            w_[w].dropped.inc();
            return;
        }
        rte_pause();  // offline replay: the control thread drains
    }
}

// At most one ring's worth per worker and call: workers that refill faster than the summary
// takes records must not hold the control loop (events, signals, reloads) here; what does not
// fit meanwhile is dropped and counted (live) or waits (offline).
size_t Feed::drain(TopSummary& t) {
    size_t moved = 0;
    Record buf[64];
    for (auto& p : w_) {
        unsigned n;
        for (unsigned budget = rte_ring_get_capacity(p.ring); budget > 0; budget -= n) {
            n = rte_ring_sc_dequeue_burst_elem(p.ring, buf, sizeof(Record),
                                               budget < 64 ? budget : 64, nullptr);
            if (n == 0) break;
            for (unsigned i = 0; i < n; ++i) t.add(buf[i]);
            moved += n;
        }
    }
    return moved;
}

uint64_t Feed::dropped() const {
    uint64_t n = 0;
    for (const auto& p : w_) n += p.dropped.load();
    return n;
}

}  // namespace rstmon::top
