// Space-saving heavy hitters (Metwally, Agrawal, El Abbadi, "Efficient computation of frequent
// and top-k elements in data streams", ICDT 2005): at most `capacity` counters; a new key takes
// over the smallest counter and inherits its count as its error. Every key whose true count
// exceeds total/capacity is kept, and count - error <= true count <= count.
// Counters sit in an indexed min-heap: an update is O(log capacity). Not thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

namespace rstmon::top {

template <typename Key, typename Hash = std::hash<Key>>
class SpaceSaving {
public:
    struct Entry {
        Key key;
        uint64_t count = 0;
        uint64_t error = 0;  // count may overstate the key's true count by at most this
    };

    explicit SpaceSaving(size_t capacity) : capacity_(capacity ? capacity : 1) {
        index_.reserve(capacity_);
    }

    void add(const Key& k, uint64_t n = 1) {
        total_ += n;
        if (auto it = index_.find(k); it != index_.end()) {
            heap_[it->second].count += n;
            sift_down(it->second);
            return;
        }
        if (heap_.size() < capacity_) {
            heap_.push_back({k, n, 0});
            index_[k] = heap_.size() - 1;
            sift_up(heap_.size() - 1);
            return;
        }
        // Full: the smallest counter (the heap's root) is handed to the new key.
        Entry& root = heap_[0];
        index_.erase(root.key);
        root.error = root.count;
        root.count += n;
        root.key = k;
        index_[k] = 0;
        sift_down(0);
    }

    // The `n` largest counters, largest first; ties: smaller error first, then `tie_less` on the
    // keys (so equal counts list in a stable order).
    template <typename Less = std::less<Key>>
    std::vector<Entry> top(size_t n, Less tie_less = {}) const {
        std::vector<Entry> v(heap_);
        const size_t m = std::min(n, v.size());
        std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m), v.end(),
                          [&](const Entry& a, const Entry& b) {
                              if (a.count != b.count) return a.count > b.count;
                              if (a.error != b.error) return a.error < b.error;
                              return tie_less(a.key, b.key);
                          });
        v.resize(m);
        return v;
    }

    uint64_t total() const { return total_; }
    size_t size() const { return heap_.size(); }
    size_t capacity() const { return capacity_; }

private:
    void swap_at(size_t a, size_t b) {
        std::swap(heap_[a], heap_[b]);
        index_[heap_[a].key] = a;
        index_[heap_[b].key] = b;
    }
    void sift_up(size_t i) {
        while (i > 0) {
            const size_t p = (i - 1) / 2;
            if (heap_[p].count <= heap_[i].count) break;
            swap_at(i, p);
            i = p;
        }
    }
    void sift_down(size_t i) {
        for (;;) {
            const size_t l = 2 * i + 1, r = l + 1;
            size_t m = i;
            if (l < heap_.size() && heap_[l].count < heap_[m].count) m = l;
            if (r < heap_.size() && heap_[r].count < heap_[m].count) m = r;
            if (m == i) return;
            swap_at(i, m);
            i = m;
        }
    }

    size_t capacity_;
    uint64_t total_ = 0;
    std::vector<Entry> heap_;
    std::unordered_map<Key, size_t, Hash> index_;
};

}  // namespace rstmon::top
