// The bundled capture through the real DPDK pipeline: net_pcap vdev -> worker lcore -> parse ->
// rte_hash flow table -> TCP state -> classifier -> stats and the event ring.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "dpdk/eal.hpp"
#include "events/rst_event.hpp"
#include "metrics/exporter.hpp"

using namespace rstmon;

namespace {

const std::string kRoot = RSTMON_SOURCE_ROOT;

struct Truth {
    std::string src, dst, cause;
    uint16_t sport = 0, dport = 0;
};

std::vector<Truth> read_truth(const std::string& path) {
    std::ifstream in(path);
    std::vector<Truth> rows;
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        Truth t;
        std::string kr;
        ss >> t.src >> t.sport >> t.dst >> t.dport >> t.cause >> kr;
        rows.push_back(t);
    }
    return rows;
}

struct PcapFrame {
    uint64_t ts_ns;
};

std::vector<PcapFrame> read_pcap(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    std::vector<PcapFrame> v;
    if (!p) return v;
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1)
        v.push_back({static_cast<uint64_t>(h->ts.tv_sec) * 1000000000ull +
                     static_cast<uint64_t>(h->ts.tv_usec) * 1000ull});
    pcap_close(p);
    return v;
}

struct RunResult {
    std::vector<events::RstEvent> events;
    metrics::Totals totals;
};

RunResult replay(const std::string& pcap, uint64_t frames) {
    static int n = 0;
    dpdk::EngineConfig ec;
    dpdk::PortSpec ps;
    ps.name = "pcap0";
    ps.device = "net_pcap_pt" + std::to_string(n++) + ",rx_pcap=" + pcap;
    ps.want_timestamps = true;
    ec.ports = {ps};
    ec.workers = 1;
    ec.mbufs = 2047;
    ec.flow_table_size = 4096;
    ec.events = true;
    ec.events_ring_size = 64;  // small on purpose: the lossless path must wait, not drop
    ec.worker.events_lossless = true;
    dpdk::Engine engine(ec);
    RunResult r;
    auto drain = [&] {
        events::RstEvent ev[16];
        unsigned got;
        while ((got = rte_ring_sc_dequeue_burst_elem(engine.event_rings()[0], ev, sizeof ev[0], 16,
                                                     nullptr)) > 0)
            r.events.insert(r.events.end(), ev, ev + got);
    };
    engine.launch();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (engine.frames_received() < frames && std::chrono::steady_clock::now() < deadline) {
        drain();
        std::this_thread::yield();
    }
    engine.request_stop();
    while (!engine.all_stopped()) drain();
    engine.join();
    drain();
    r.totals = metrics::sum(engine.stats());
    return r;
}

}  // namespace

TEST(Pipeline, BundledCaptureEveryRstHasItsProvokedCause) {
    const std::string pcap = kRoot + "/tests/data/rst-lab.pcap";
    const auto truth = read_truth(kRoot + "/tests/data/rst-lab.truth.tsv");
    const auto frames = read_pcap(pcap);
    ASSERT_GE(truth.size(), 15u);
    ASSERT_FALSE(frames.empty());

    const RunResult r = replay(pcap, frames.size());
    EXPECT_EQ(r.totals.packets(), frames.size());
    EXPECT_EQ(r.totals.rst_packets, truth.size());
    ASSERT_EQ(r.events.size(), truth.size());

    std::map<std::string, int> per_cause;
    for (size_t i = 0; i < truth.size(); ++i) {
        const events::RstEvent& e = r.events[i];  // one worker: capture order is kept
        const Truth& t = truth[i];
        SCOPED_TRACE("RST #" + std::to_string(i) + " " + t.src + ":" + std::to_string(t.sport));
        EXPECT_EQ(packet::to_string(e.src, e.family), t.src);
        EXPECT_EQ(e.sport, t.sport);
        EXPECT_EQ(packet::to_string(e.dst, e.family), t.dst);
        EXPECT_EQ(e.dport, t.dport);
        EXPECT_EQ(classify::name(e.cause), t.cause);
        EXPECT_EQ(e.sender, classify::Sender::server);
        EXPECT_EQ(e.validity, classify::Validity::exact);
        EXPECT_NE(e.sport, 8080);  // FIN-closed connections never yield an RST
        per_cause[t.cause]++;
        // The capture's own timestamps reach the classifier (net_pcap timestamp offload).
        bool ts_match = false;
        for (const auto& f : frames) ts_match |= f.ts_ns == e.ts_ns;
        EXPECT_TRUE(ts_match) << e.ts_ns;
    }
    for (const auto& [cause, count] : per_cause)
        EXPECT_EQ(r.totals.rst_by_cause(static_cast<size_t>(*classify::cause_from_name(cause))),
                  static_cast<uint64_t>(count))
            << cause;
    EXPECT_EQ(r.totals.rst_by_cause(static_cast<size_t>(classify::Cause::unclassified)), 0u);
    EXPECT_EQ(r.totals.flows_created, 24u);
    for (uint64_t m : r.totals.malformed) EXPECT_EQ(m, 0u);
}
