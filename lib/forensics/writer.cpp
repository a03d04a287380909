#include "forensics/writer.hpp"

#include <pcap/pcap.h>
#include <rte_ring.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "events/evidence.hpp"

namespace rstmon::forensics {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kPcapFileHeader = 24, kPcapRecordHeader = 16;

FrameCopy* frame_at(Capture* c, uint32_t i, uint32_t stride) {
    return reinterpret_cast<FrameCopy*>(reinterpret_cast<uint8_t*>(c) + 64 +
                                        static_cast<size_t>(i) * stride);
}
}  // namespace

int dlt_of(packet::LinkType t) {
    switch (t) {
        case packet::LinkType::ethernet: return DLT_EN10MB;
        case packet::LinkType::linux_sll: return DLT_LINUX_SLL;
        case packet::LinkType::linux_sll2: return DLT_LINUX_SLL2;
        case packet::LinkType::raw_ip: return DLT_RAW;
        case packet::LinkType::bsd_loopback_host: return DLT_NULL;
        case packet::LinkType::bsd_loopback_net: return DLT_LOOP;
    }
    return DLT_EN10MB;
}

Forensics::Forensics(const Settings& s, uint32_t workers, uint32_t flow_slots,
                     const std::array<int, metrics::kMaxPorts>& dlt, double start_unix_s)
    : s_(s) {
    std::error_code ec;
    fs::create_directories(s_.dir, ec);
    if (!fs::is_directory(s_.dir, ec))
        throw std::runtime_error("forensics.dir: cannot create directory '" + s_.dir + "'");
    if (access(s_.dir.c_str(), W_OK) != 0)
        throw std::runtime_error("forensics.dir: '" + s_.dir + "' is not writable");
    prefix_ = (fs::path(s_.dir) / ("rstmon-" + std::to_string(static_cast<uint64_t>(start_unix_s)) +
                                   "-")).string();
    // Files of earlier runs count toward the cap, oldest first.
    std::vector<std::pair<fs::file_time_type, std::pair<std::string, uint64_t>>> old;
    for (const auto& de : fs::directory_iterator(s_.dir, ec)) {
        const std::string name = de.path().filename().string();
        if (name.rfind("rstmon-", 0) != 0 || name.size() < 5 ||
            name.compare(name.size() - 5, 5, ".pcap") != 0 || !de.is_regular_file(ec))
            continue;
        old.push_back({de.last_write_time(ec), {de.path().string(), de.file_size(ec)}});
    }
    std::sort(old.begin(), old.end());
    for (auto& o : old) closed_.push_back(o.second);
    for (uint32_t w = 0; w < workers; ++w)
        recorders_.push_back(
            std::make_unique<Recorder>(s_, static_cast<uint16_t>(w), flow_slots, dlt));
    open_.resize(workers);
}

Forensics::~Forensics() { stop(); }

void Forensics::start() {
    if (thread_.joinable()) return;
    stop_.store(false);
    thread_ = std::thread([this] { run(); });
}

void Forensics::stop() {
    if (thread_.joinable()) {
        stop_.store(true);
        thread_.join();
    }
    drain();  // what was queued after the thread's last pass
    for (auto& f : open_) close(f);
}

void Forensics::run() {
    // A capture is at most a few dozen frames: polling every few milliseconds keeps the rings
    // short without a busy thread.
    while (!stop_.load()) {
        if (!drain()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool Forensics::drain() {
    bool any = false;
    for (auto& r : recorders_) {
        void* caps[32];
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst(r->to_writer(), caps, 32, nullptr)) > 0) {
            for (unsigned i = 0; i < n; ++i) write(static_cast<Capture*>(caps[i]));
            // Buffers go back to their worker; the return ring holds every slot, so this fits.
            rte_ring_sp_enqueue_bulk(r->returns(), caps, n, nullptr);
            any = true;
        }
    }
    if (any) enforce_cap();  // (each capture was flushed: readable by tshark while rstmon runs)
    return any;
}

void Forensics::close(OpenFile& f) {
    if (f.dumper) {
        pcap_dump_close(f.dumper);
        closed_.push_back({f.path, f.bytes});
    } else if (f.failed && f.good_bytes >= kPcapFileHeader) {
        // Kept as far as it is whole: the failed write (or the close after it) may have left
        // half a capture past good_bytes. Cutting a file shorter needs no space, so this works
        // on a disk that is still full; if it does not, the file is not kept.
        if (::truncate(f.path.c_str(), static_cast<off_t>(f.good_bytes)) == 0)
            closed_.push_back({f.path, f.good_bytes});
        else
            ::unlink(f.path.c_str());
    } else if (f.failed && !f.path.empty()) {  // not even its header was written: nothing kept
        ::unlink(f.path.c_str());
    }
    if (f.dead) pcap_close(f.dead);
    f = OpenFile{};
}

bool Forensics::switch_file(OpenFile& f, uint16_t worker, uint32_t file_no, int dlt) {
    close(f);
    f.file_no = file_no;  // set even if the open fails
    f.dlt = dlt;
    f.path = events::pcap_file_name(prefix_, worker, file_no);
    f.dead = pcap_open_dead_with_tstamp_precision(dlt, static_cast<int>(s_.snaplen),
                                                  PCAP_TSTAMP_PRECISION_NANO);
    if (f.dead != nullptr) f.dumper = pcap_dump_open(f.dead, f.path.c_str());
    f.good_bytes = 0;
    // The header must reach the disk for the file to be appended to after a failure. A file
    // that cannot be opened or started is tried again at a later capture (a directory made
    // writable, space freed).
    if (f.dumper == nullptr || pcap_dump_flush(f.dumper) != 0) {
        fail(f);
        return false;
    }
    f.bytes = f.good_bytes = kPcapFileHeader;
    return true;
}

// The file stops at its last whole capture (good_bytes): what it is cut back to when it is
// appended to again (reopen) or closed (close).
void Forensics::fail(OpenFile& f) {
    if (f.dumper) pcap_dump_close(f.dumper);  // (its own flush fails too: nothing more written)
    if (f.dead) pcap_close(f.dead);
    f.dumper = nullptr;
    f.dead = nullptr;
    f.failed = true;
    f.failed_at = std::chrono::steady_clock::now();
    f.bytes = f.good_bytes;
}

// After a failed write: cut the file back to its last whole capture (a full disk may have taken
// half a record) and append from there, header kept; a file whose header never made it starts
// over. At most every 200 ms: a disk that stays full costs one try per interval, not per capture.
bool Forensics::reopen(OpenFile& f) {
    const auto now = std::chrono::steady_clock::now();
    if (now - f.failed_at < std::chrono::milliseconds(200)) return false;
    f.failed_at = now;
    const bool fresh = f.good_bytes < kPcapFileHeader;
    if (!fresh && ::truncate(f.path.c_str(), static_cast<off_t>(f.good_bytes)) != 0) return false;
    f.dead = pcap_open_dead_with_tstamp_precision(f.dlt, static_cast<int>(s_.snaplen),
                                                  PCAP_TSTAMP_PRECISION_NANO);
    if (f.dead != nullptr)
        f.dumper = fresh ? pcap_dump_open(f.dead, f.path.c_str())
                         : pcap_dump_open_append(f.dead, f.path.c_str());
    if (f.dumper == nullptr || (fresh && pcap_dump_flush(f.dumper) != 0)) {
        fail(f);
        return false;
    }
    f.bytes = f.good_bytes = fresh ? kPcapFileHeader : f.good_bytes;
    f.failed = false;
    return true;
}

void Forensics::write(Capture* c) {
    if (c->worker >= open_.size()) return;
    OpenFile& f = open_[c->worker];
    const uint32_t stride = recorders_[c->worker]->frame_stride();
    // The worker placed the capture: a new file number means the previous file is complete.
    // A file that cannot be opened is not retried for every capture placed in it.
    if (f.file_no != c->file_no) {
        switch_file(f, c->worker, c->file_no, c->dlt);
    } else if (f.failed) {
        reopen(f);
    }
    if (f.dumper == nullptr) {
        stats_.errors.fetch_add(1);
        return;
    }
    for (uint32_t i = 0; i < c->count; ++i) {
        const FrameCopy* fr = frame_at(c, i, stride);
        pcap_pkthdr h{};
        h.ts.tv_sec = static_cast<time_t>(fr->ts_ns / 1000000000ull);
        h.ts.tv_usec = static_cast<suseconds_t>(fr->ts_ns % 1000000000ull);  // nanoseconds
        h.caplen = fr->caplen;
        h.len = fr->wire_len;
        pcap_dump(reinterpret_cast<u_char*>(f.dumper), &h, fr->data);
        f.bytes += kPcapRecordHeader + fr->caplen;
    }
    // pcap_dump() reports nothing: the flush says whether the capture reached the disk. If not
    // (a full disk), the capture counts as a write error, and the file is closed at its last
    // whole capture, to be appended to when a later capture finds room.
    if (pcap_dump_flush(f.dumper) != 0) {
        stats_.errors.fetch_add(1);
        fail(f);
        return;
    }
    stats_.bytes.fetch_add(f.bytes - f.good_bytes, std::memory_order_relaxed);
    f.good_bytes = f.bytes;
    stats_.frames.fetch_add(c->count, std::memory_order_relaxed);
    stats_.captures.fetch_add(1, std::memory_order_relaxed);
}

// Oldest complete files go first; a worker's file being written is never removed, so the
// directory can exceed the cap by at most one file per worker.
void Forensics::enforce_cap() {
    uint64_t total = 0;
    for (const auto& c : closed_) total += c.second;
    for (const auto& f : open_) total += f.bytes;
    while (total > s_.max_total_size && !closed_.empty()) {
        std::error_code ec;
        fs::remove(closed_.front().first, ec);
        total -= closed_.front().second;
        closed_.pop_front();
        stats_.files_removed.fetch_add(1);
    }
}

void Forensics::append_metrics(std::vector<prometheus::MetricFamily>& out,
                               const std::string& appliance) const {
    using prometheus::ClientMetric;
    uint64_t no_slot = 0, ring_full = 0;
    for (const auto& r : recorders_) {
        no_slot += r->stats().no_slot.load();
        ring_full += r->stats().ring_full.load();
    }
    auto counter = [&](double v, std::vector<ClientMetric::Label> labels) {
        ClientMetric m;
        m.label.push_back({"appliance", appliance});
        for (auto& l : labels) m.label.push_back(std::move(l));
        m.counter.value = v;
        return m;
    };
    prometheus::MetricFamily caps;
    caps.name = "rstmon_forensic_captures_total";
    caps.help = "Forensic captures around RST episodes of the configured causes, by result "
                "(written; skipped: no free capture slot, writer ring full, write error)";
    caps.type = prometheus::MetricType::Counter;
    caps.metric.push_back(counter(static_cast<double>(stats_.captures.load()), {{"result", "written"}}));
    caps.metric.push_back(counter(static_cast<double>(no_slot), {{"result", "no_slot"}}));
    caps.metric.push_back(counter(static_cast<double>(ring_full), {{"result", "ring_full"}}));
    caps.metric.push_back(counter(static_cast<double>(stats_.errors.load()), {{"result", "write_error"}}));
    out.push_back(std::move(caps));
    prometheus::MetricFamily rm;
    rm.name = "rstmon_forensic_files_removed_total";
    rm.help = "Forensic pcap files removed to keep forensics.dir under forensics.max_total_size";
    rm.type = prometheus::MetricType::Counter;
    rm.metric.push_back(counter(static_cast<double>(stats_.files_removed.load()), {}));
    out.push_back(std::move(rm));
}

}  // namespace rstmon::forensics
