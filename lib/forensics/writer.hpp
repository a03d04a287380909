// Forensic captures, writer side: one thread (never a worker lcore) takes finished captures from
// every worker's ring, writes them with libpcap's pcap_dump into per-worker rotating files, keeps
// the directory under a total size cap (oldest files go first) and hands the buffers back.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

#include "forensics/recorder.hpp"
#include "packet/packet.hpp"

typedef struct pcap pcap_t;
typedef struct pcap_dumper pcap_dumper_t;

namespace rstmon::forensics {

// The pcap link type (DLT_) of frames of our link type.
int dlt_of(packet::LinkType t);

struct WriterStats {
    std::atomic<uint64_t> captures{0}, frames{0}, bytes{0}, files_removed{0}, errors{0};
};

// Everything forensic for one run: a recorder per worker (the workers reach theirs through
// WorkerConfig) and the writer thread.
class Forensics {
public:
    // Creates the directory if needed and takes stock of the files earlier runs left there
    // (they count toward max_total_size). Throws std::runtime_error naming the directory.
    Forensics(const Settings& s, uint32_t workers, uint32_t flow_slots,
              const std::array<int, metrics::kMaxPorts>& dlt, double start_unix_s);
    ~Forensics();

    Recorder* recorder(uint16_t worker) { return recorders_.at(worker).get(); }
    // File names are prefix() + "w<worker>-<6 digits>.pcap" (events::pcap_file_name).
    const std::string& prefix() const { return prefix_; }

    void start();
    // Writes whatever the workers queued (call after they have stopped), closes the files.
    void stop();

    const WriterStats& stats() const { return stats_; }
    // rstmon_forensic_captures_total{result}, rstmon_forensic_files_removed_total.
    void append_metrics(std::vector<prometheus::MetricFamily>& out, const std::string& appliance) const;

private:
    struct OpenFile {
        pcap_t* dead = nullptr;
        pcap_dumper_t* dumper = nullptr;
        uint32_t file_no = 0;
        std::string path;
        uint64_t bytes = 0;
        uint64_t good_bytes = 0;  // through the last capture that reached the disk whole
        int dlt = 0;
        // A write failed (full disk): the file was closed at its last whole capture and is
        // reopened for appending at the next capture, when there is room again.
        bool failed = false;
        std::chrono::steady_clock::time_point failed_at{};  // retried at most every 200 ms
    };

    void run();
    bool drain();  // one pass over the rings; true if anything was written
    void write(Capture* c);
    bool switch_file(OpenFile& f, uint16_t worker, uint32_t file_no, int dlt);
    bool reopen(OpenFile& f);
    void fail(OpenFile& f);
    void close(OpenFile& f);
    void enforce_cap();

    Settings s_;
    std::string prefix_;
    std::vector<std::unique_ptr<Recorder>> recorders_;
    std::vector<OpenFile> open_;                          // by worker
    std::deque<std::pair<std::string, uint64_t>> closed_;  // oldest first
    WriterStats stats_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace rstmon::forensics
