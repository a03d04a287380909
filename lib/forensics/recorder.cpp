#include "forensics/recorder.hpp"

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace rstmon::forensics {

namespace {
constexpr uint32_t kHeaderBytes = 64;  // Capture header, rounded to a cache line
static_assert(sizeof(Capture) <= kHeaderBytes);
constexpr uint64_t kPcapFileHeader = 24, kPcapRecordHeader = 16;

uint32_t round8(uint32_t n) { return (n + 7u) & ~7u; }

rte_ring* make_ring(const char* what, uint16_t worker, uint32_t size) {
    // rte_ring names are process-wide: several recorders (tests) must not collide.
    static std::atomic<uint32_t> serial{0};
    const std::string name = std::string("rstmon_f") + what + std::to_string(worker) + "_" +
                             std::to_string(serial.fetch_add(1));
    rte_ring* r = rte_ring_create(name.c_str(), size, static_cast<int>(rte_socket_id()),
                                  RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
    if (r == nullptr)
        throw std::runtime_error("forensics: cannot create ring " + name + ": " +
                                 rte_strerror(rte_errno));
    return r;
}
}  // namespace

size_t Recorder::bytes_per_flow(const Settings& s) {
    return sizeof(FlowRingHeader) +
           static_cast<size_t>(s.packets_before) * round8(sizeof(FrameCopy) + s.snaplen);
}

Recorder::Recorder(const Settings& s, uint16_t worker, uint32_t flow_slots,
                   const std::array<int, metrics::kMaxPorts>& dlt)
    : s_(s), worker_(worker), flow_slots_(flow_slots), dlt_(dlt) {
    if (s_.in_flight == 0) s_.in_flight = 1;
    frame_stride_ = round8(static_cast<uint32_t>(sizeof(FrameCopy)) + s_.snaplen);
    ring_stride_ = static_cast<uint32_t>(bytes_per_flow(s_));
    capture_frames_ = s_.packets_before + s_.packets_after;
    capture_stride_ = kHeaderBytes + capture_frames_ * frame_stride_;
    // Zeroed and lazily committed by the kernel: slots never used cost no memory.
    rings_ = static_cast<uint8_t*>(std::calloc(flow_slots_, ring_stride_));
    pool_ = static_cast<uint8_t*>(std::calloc(s_.in_flight, capture_stride_));
    if (rings_ == nullptr || pool_ == nullptr) {
        std::free(rings_);
        std::free(pool_);
        throw std::runtime_error("forensics: cannot allocate " +
                                 std::to_string(uint64_t{flow_slots_} * ring_stride_) +
                                 " bytes of per-flow rings");
    }
    for (uint32_t i = 0; i < s_.in_flight; ++i) new (slot(i)) Capture{};
    free_.reserve(s_.in_flight);
    for (uint32_t i = s_.in_flight; i-- > 0;) free_.push_back(i);
    outcome_.resize(s_.in_flight);
    try {
        to_writer_ = make_ring("w", worker, s_.in_flight);
        returns_ = make_ring("r", worker, s_.in_flight);
    } catch (...) {
        rte_ring_free(to_writer_);
        std::free(rings_);
        std::free(pool_);
        throw;
    }
}

Recorder::~Recorder() {
    rte_ring_free(to_writer_);
    rte_ring_free(returns_);
    std::free(rings_);
    std::free(pool_);
}

Capture* Recorder::slot(uint32_t i) const {
    return reinterpret_cast<Capture*>(pool_ + static_cast<size_t>(i) * capture_stride_);
}

FrameCopy* Recorder::capture_frame(Capture* c, uint32_t i) const {
    return reinterpret_cast<FrameCopy*>(reinterpret_cast<uint8_t*>(c) + kHeaderBytes +
                                        static_cast<size_t>(i) * frame_stride_);
}

void Recorder::copy_frame(FrameCopy* dst, const uint8_t* data, uint32_t len, uint32_t wire_len,
                          uint64_t ts_ns, uint16_t port) const {
    const uint32_t n = std::min(len, s_.snaplen);
    dst->ts_ns = ts_ns;
    dst->wire_len = wire_len > n ? wire_len : n;
    dst->caplen = static_cast<uint16_t>(n);
    dst->port = static_cast<uint8_t>(port);
    std::memcpy(dst->data, data, n);
}

int Recorder::append(uint32_t id, const uint8_t* data, uint32_t len, uint32_t wire_len,
                     uint64_t ts_ns, uint16_t port) {
    if (id == 0) return -1;
    Capture* c = slot(slot_of(id));
    if (c->id != id || !c->filling || ts_ns > c->end_ns || c->count >= capture_frames_)
        return -1;
    // One pcap file holds one link type: a frame from a port of another kind stays out.
    if (port >= metrics::kMaxPorts || dlt_[port] != c->dlt) return -1;
    copy_frame(capture_frame(c, c->count), data, len, wire_len, ts_ns, port);
    return c->count++;
}

int Recorder::note(uint32_t pos, uint16_t gen, const uint8_t* data, uint32_t len,
                   uint32_t wire_len, uint64_t ts_ns, uint16_t port) {
    if (pos >= flow_slots_) return -1;
    FlowRingHeader* h = ring_of(pos);
    if (h->gen != gen) *h = FlowRingHeader{gen, 0, 0, 0, {}};  // the slot holds another flow now
    if (s_.packets_before > 0) {
        copy_frame(ring_frame(h, h->head), data, len, wire_len, ts_ns, port);
        h->head = static_cast<uint8_t>(h->head + 1u == s_.packets_before ? 0 : h->head + 1);
        if (h->count < s_.packets_before) h->count++;
    }
    if (h->capture == 0) return -1;
    const int index = append(h->capture, data, len, wire_len, ts_ns, port);
    if (index < 0 && ts_ns > slot(slot_of(h->capture))->end_ns) h->capture = 0;  // episode over
    return index;
}

bool Recorder::take_slot(uint32_t& index) {
    while (free_.empty()) {  // captures the writer has finished with come back over the ring
        void* back[64];
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst(returns_, back, 64, nullptr)) > 0) {
            for (unsigned i = 0; i < n; ++i)
                free_.push_back(static_cast<uint32_t>(
                    (static_cast<uint8_t*>(back[i]) - pool_) / capture_stride_));
            at_writer_ -= n;
        }
        if (!free_.empty() || !s_.lossless || at_writer_ == 0) break;
        rte_pause();
    }
    if (free_.empty()) return false;
    index = free_.back();
    free_.pop_back();
    return true;
}

uint32_t Recorder::attached(uint32_t pos, uint16_t gen) const {
    if (pos >= flow_slots_) return 0;
    const FlowRingHeader* h = ring_of(pos);
    return h->gen == gen ? h->capture : 0;
}

uint32_t Recorder::open(uint32_t pos, uint16_t gen, uint64_t end_ns, classify::Cause cause,
                        uint16_t port) {
    // Race evidence may still turn the episode into `injected`; no other cause changes.
    if (!s_.causes[static_cast<size_t>(cause)] &&
        !s_.causes[static_cast<size_t>(classify::Cause::injected)])
        return 0;
    uint32_t index;
    if (!take_slot(index)) {
        stats_.no_slot.inc();
        return 0;
    }
    // Ids encode their slot and never repeat within ~4G captures / in_flight; 0 means none.
    serial_ = (serial_ + 1) % (UINT32_MAX / s_.in_flight - 1);
    const uint32_t id = serial_ * s_.in_flight + index + 1;
    Capture* c = slot(index);
    *c = Capture{};
    c->id = id;
    c->worker = worker_;
    c->dlt = port < metrics::kMaxPorts ? dlt_[port] : 1;
    c->end_ns = end_ns;
    c->pos = pos;
    c->gen = gen;
    c->filling = 1;
    outcome_[index] = Outcome{id, 0, 0, 0, 0};
    if (pos < flow_slots_) {
        FlowRingHeader* h = ring_of(pos);
        if (h->gen != gen) *h = FlowRingHeader{gen, 0, 0, 0, {}};
        const uint32_t k = s_.packets_before;
        for (uint32_t i = 0; i < h->count; ++i) {  // oldest first
            const FrameCopy* f = ring_frame(h, (h->head + k - h->count + i) % k);
            if (f->port >= metrics::kMaxPorts || dlt_[f->port] != c->dlt) continue;
            std::memcpy(capture_frame(c, c->count++), f, sizeof(FrameCopy) + f->caplen);
        }
        h->capture = id;
    }
    return id;
}

// Where the capture goes: the next frames of the worker's current file, or a new file when it
// would outgrow max_file_size or has another link type. The writer opens files by these numbers.
void Recorder::place(Capture* c, Outcome& o) {
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < c->count; ++i) bytes += kPcapRecordHeader + capture_frame(c, i)->caplen;
    if (file_no_ == 0 || c->dlt != file_dlt_ ||
        (file_frames_ > 0 && file_bytes_ + bytes > s_.max_file_size)) {
        file_no_++;
        file_bytes_ = kPcapFileHeader;
        file_frames_ = 0;
        file_dlt_ = c->dlt;
    }
    o.file_no = c->file_no = file_no_;
    o.first = file_frames_ + 1;
    o.count = c->count;
    file_frames_ += c->count;
    file_bytes_ += bytes;
}

void Recorder::decide(uint32_t index, classify::Cause cause) {
    Capture* c = slot(index);
    Outcome& o = outcome_[index];
    o.decided = 1;
    c->filling = 0;
    if (c->pos < flow_slots_) {
        FlowRingHeader* h = ring_of(c->pos);
        if (h->gen == c->gen && h->capture == c->id) h->capture = 0;
    }
    if (!s_.causes[static_cast<size_t>(cause)] || c->count == 0) {
        free_.push_back(index);
        return;
    }
    // Only this worker enqueues: a free entry seen now is still free at the enqueue.
    if (rte_ring_free_count(to_writer_) == 0) {  // (cannot happen: the ring holds every slot)
        stats_.ring_full.inc();
        free_.push_back(index);
        return;
    }
    place(c, o);
    rte_ring_sp_enqueue(to_writer_, c);
    at_writer_++;
    stats_.queued.inc();
}

void Recorder::settle(events::RstEvent& e) {
    if (e.capture_id == 0) return;
    const uint32_t index = slot_of(e.capture_id);
    Outcome& o = outcome_[index];
    if (o.id != e.capture_id) return;  // the slot was reused since: no file to name
    if (!o.decided) decide(index, e.cause);
    if (o.file_no == 0) return;
    e.pcap_file = o.file_no;
    e.pcap_first = o.first;
    e.pcap_packets = o.count;
}

}  // namespace rstmon::forensics
