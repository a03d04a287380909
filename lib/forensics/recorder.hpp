// Forensic captures, worker side: the last K frames of every tracked flow, and around each RST
// episode a capture (those K frames, the RST, what follows in its episode) handed to the writer
// thread (forensics/writer.hpp) over an rte_ring. No locks, no allocation per packet: every
// buffer is sized at start.
//
// Memory: each flow slot of the worker's table owns a ring of K frame copies of `snaplen` bytes,
// in an array beside the table (the 128-byte hot flow record is untouched):
// bytes_per_flow() = 16 + K * (16 + snaplen rounded up to 8). The array is allocated zeroed and
// untouched pages are never committed, so it costs what the table's occupied slots use. Captures
// in flight (being filled during their episode, or queued for the writer) come from a fixed pool
// of `in_flight` slots per worker; when it is empty a capture is skipped and counted.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "classify/taxonomy.hpp"
#include "events/rst_event.hpp"
#include "metrics/lcore_stats.hpp"

struct rte_ring;

namespace rstmon::forensics {

struct Settings {
    bool enabled = false;
    std::array<bool, classify::kCauseCount> causes{};  // causes whose captures are written
    uint32_t packets_before = 4;    // K: frames of the flow kept before its RST
    uint32_t packets_after = 16;    // frames kept from the first RST on, within its episode
    uint32_t snaplen = 128;         // bytes kept of each frame
    uint32_t in_flight = 64;        // capture slots per worker (being filled or written)
    uint64_t max_file_size = 16ull << 20;
    uint64_t max_total_size = 1ull << 30;
    std::string dir;
    // Offline replay: wait for the writer to hand a buffer back rather than skip a capture (only
    // while it holds some; buffers still being filled come back only through this worker).
    bool lossless = false;
};

// pcap's own record header plus the frame bytes, as the writer needs them.
struct FrameCopy {
    uint64_t ts_ns;
    uint32_t wire_len;
    uint16_t caplen;
    uint8_t port;
    uint8_t pad_;
    uint8_t data[];  // caplen bytes (snaplen reserved)
};

// A capture in flight: header, then frames at a fixed stride. Owned by the worker until it is
// queued for the writer, then by the writer until it comes back over the return ring.
struct Capture {
    uint32_t id = 0;
    uint32_t file_no = 0;     // where the worker placed it (see Recorder::place)
    uint16_t worker = 0;
    uint16_t count = 0;       // frames held
    int32_t dlt = 1;          // pcap link type of its frames
    uint64_t end_ns = 0;      // frames after this time no longer belong to its episode
    uint32_t pos = UINT32_MAX;  // flow slot it is attached to, UINT32_MAX = none
    uint16_t gen = 0;
    uint8_t filling = 0;      // still accepting its episode's frames
};

// Counters of one worker's captures (the worker is the only writer).
struct RecorderStats {
    metrics::Counter queued;      // handed to the writer
    metrics::Counter no_slot;     // skipped: every in-flight slot busy
    metrics::Counter ring_full;   // dropped: the writer's ring was full
};

class Recorder {
public:
    // `flow_slots`: positions the worker's flow table hands out; `dlt[port]`: pcap link type of
    // each port. Creates the worker -> writer ring and the return ring (EAL required).
    Recorder(const Settings& s, uint16_t worker, uint32_t flow_slots,
             const std::array<int, metrics::kMaxPorts>& dlt);
    ~Recorder();
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;

    static size_t bytes_per_flow(const Settings& s);

    // A frame of the flow at slot `pos` (generation `gen`): kept in its ring, and appended to its
    // open capture while the episode lasts. Returns the frame's index in that capture, or -1.
    int note(uint32_t pos, uint16_t gen, const uint8_t* data, uint32_t len, uint32_t wire_len,
             uint64_t ts_ns, uint16_t port);
    // The first RST of an episode is about to be noted: opens a capture holding the flow's last K
    // frames (pos UINT32_MAX: an RST without a flow, the capture starts empty), attached to the
    // flow until `end_ns`, if the episode's cause (now `cause`; only `injected` can replace it)
    // could be one that is written. `port` is the RST's (the capture's link type). Returns its
    // id, 0 if none.
    uint32_t open(uint32_t pos, uint16_t gen, uint64_t end_ns, classify::Cause cause,
                  uint16_t port);
    // Prefetches, for a flow about to be noted, its ring's header (stage 1, right after the
    // flow lookup) and the frame slot the next note writes (stage 2, once the header is in).
    void prefetch_header(uint32_t pos) const {
        if (pos < flow_slots_) __builtin_prefetch(ring_of(pos), 1);
    }
    void prefetch_slot(uint32_t pos) const {
        if (pos >= flow_slots_ || s_.packets_before == 0) return;
        FlowRingHeader* h = ring_of(pos);
        const FrameCopy* f = ring_frame(h, h->head < s_.packets_before ? h->head : 0);
        __builtin_prefetch(f, 1);
        __builtin_prefetch(reinterpret_cast<const uint8_t*>(f) + 64, 1);
    }
    // The capture attached to the flow at `pos` (0 = none): later RSTs of its episode.
    uint32_t attached(uint32_t pos, uint16_t gen) const;
    // Appends a frame to capture `id` directly (an RST without a flow). Index or -1.
    int append(uint32_t id, const uint8_t* data, uint32_t len, uint32_t wire_len, uint64_t ts_ns,
               uint16_t port);
    // An RST event of capture `e.capture_id` becomes final: the first one decides (its cause
    // written or not) and queues the capture; every one gets the file and frame numbers.
    void settle(events::RstEvent& e);

    const RecorderStats& stats() const { return stats_; }
    rte_ring* to_writer() const { return to_writer_; }
    rte_ring* returns() const { return returns_; }
    uint32_t frame_stride() const { return frame_stride_; }
    const Settings& settings() const { return s_; }

private:
    struct FlowRingHeader {
        uint16_t gen;
        uint8_t head;      // next frame slot to write
        uint8_t count;     // frames held (<= K)
        uint32_t capture;  // id of the open capture attached to this flow, 0 = none
        uint8_t pad_[8];
    };
    static_assert(sizeof(FlowRingHeader) == 16);
    // What the worker remembers of a capture after handing it over (the writer owns the memory).
    struct Outcome {
        uint32_t id = 0;
        uint32_t file_no = 0;  // 0 = not written
        uint32_t first = 0;    // 1-based frame number of its first frame in that file
        uint16_t count = 0;
        uint8_t decided = 0;
    };

    FlowRingHeader* ring_of(uint32_t pos) const {
        return reinterpret_cast<FlowRingHeader*>(rings_ + static_cast<size_t>(pos) * ring_stride_);
    }
    FrameCopy* ring_frame(FlowRingHeader* h, uint32_t i) const {
        return reinterpret_cast<FrameCopy*>(reinterpret_cast<uint8_t*>(h + 1) +
                                            static_cast<size_t>(i) * frame_stride_);
    }
    Capture* slot(uint32_t i) const;
    FrameCopy* capture_frame(Capture* c, uint32_t i) const;
    uint32_t slot_of(uint32_t id) const { return (id - 1) % s_.in_flight; }
    void copy_frame(FrameCopy* dst, const uint8_t* data, uint32_t len, uint32_t wire_len,
                    uint64_t ts_ns, uint16_t port) const;
    bool take_slot(uint32_t& index);
    void decide(uint32_t index, classify::Cause cause);
    void place(Capture* c, Outcome& o);

    Settings s_;
    uint16_t worker_;
    uint32_t flow_slots_;
    std::array<int, metrics::kMaxPorts> dlt_;
    uint32_t frame_stride_, ring_stride_, capture_stride_, capture_frames_;
    uint8_t* rings_ = nullptr;   // flow_slots_ * ring_stride_, calloc'ed
    uint8_t* pool_ = nullptr;    // in_flight * capture_stride_
    std::vector<uint32_t> free_;  // slot indices owned by the worker and unused
    std::vector<Outcome> outcome_;  // by slot
    uint32_t serial_ = 0;
    uint32_t at_writer_ = 0;  // captures queued and not yet handed back
    // Worker-side placement into files: the writer follows it, so events can name the file and
    // frame numbers before the frames are on disk.
    uint32_t file_no_ = 0;
    uint64_t file_bytes_ = 0;
    uint32_t file_frames_ = 0;
    int file_dlt_ = -1;
    rte_ring* to_writer_ = nullptr;
    rte_ring* returns_ = nullptr;
    RecorderStats stats_;
};

}  // namespace rstmon::forensics
