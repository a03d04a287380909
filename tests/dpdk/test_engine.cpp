// The engine through a real EAL with net_pcap vdevs: software dispatch keeps both directions of
// a flow on one worker, inline mode forwards every frame unchanged, several ports feed one
// appliance, and the symmetric RSS key really is symmetric.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <rte_thash.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "dpdk/eal.hpp"
#include "dpdk/port.hpp"
#include "metrics/exporter.hpp"

using namespace rstmon;

namespace {

const std::string kLab = std::string(RSTMON_SOURCE_ROOT) + "/tests/data/rst-lab.pcap";

struct Packet {
    std::vector<uint8_t> bytes;
    uint64_t ts_us = 0;
};

std::vector<Packet> read_pcap(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE];
    std::vector<Packet> v;
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    if (!p) return v;
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1)
        v.push_back({{d, d + h->caplen},
                     static_cast<uint64_t>(h->ts.tv_sec) * 1000000 +
                         static_cast<uint64_t>(h->ts.tv_usec)});
    pcap_close(p);
    return v;
}

// Writes Ethernet frames with increasing microsecond timestamps.
void write_pcap(const std::string& path, const std::vector<Packet>& pkts, uint64_t t0_us = 0) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
    pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
    uint64_t t = t0_us;
    for (const auto& p : pkts) {
        pcap_pkthdr h{};
        h.ts.tv_sec = static_cast<time_t>(t / 1000000);
        h.ts.tv_usec = static_cast<suseconds_t>(t % 1000000);
        h.caplen = h.len = static_cast<bpf_u_int32>(p.bytes.size());
        pcap_dump(reinterpret_cast<u_char*>(d), &h, p.bytes.data());
        t += 10;
    }
    pcap_dump_close(d);
    pcap_close(dead);
}

std::string tmp_path(const std::string& name) {
    return "/tmp/rstmon_engine_" + std::to_string(getpid()) + "_" + name;
}

std::string unique_dev(const std::string& base) {
    static int n = 0;
    return base + std::to_string(getpid() % 1000) + "x" + std::to_string(n++);
}

// Runs the engine until `frames` were processed by the workers (or a deadline), then stops it.
metrics::Totals run(dpdk::Engine& engine, uint64_t frames) {
    engine.launch();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (engine.frames_received() < frames && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    engine.request_stop();
    while (!engine.all_stopped()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    engine.join();
    return metrics::sum(engine.stats());
}

dpdk::EngineConfig base_config() {
    dpdk::EngineConfig ec;
    ec.mbufs = 2047;
    ec.flow_table_size = 4096;
    ec.lossless = true;
    return ec;
}

}  // namespace

TEST(Engine, SymmetricRssKeyHashesBothDirectionsAlike) {
    const uint32_t a = 0x0a000001, b = 0xc0a80102;
    for (uint32_t sp : {1024u, 40000u, 65535u}) {
        for (uint32_t dp : {80u, 443u, 12345u}) {
            uint32_t fwd[3] = {a, b, sp << 16 | dp};
            uint32_t rev[3] = {b, a, dp << 16 | sp};
            EXPECT_EQ(rte_softrss(fwd, 3, dpdk::kSymmetricRssKey),
                      rte_softrss(rev, 3, dpdk::kSymmetricRssKey));
        }
    }
}

TEST(Engine, RssKeyLengthFollowsTheNic) {
    EXPECT_EQ(dpdk::rss_key_len(0), 40);   // unknown: the common size
    EXPECT_EQ(dpdk::rss_key_len(40), 40);  // ixgbe, mlx5, most
    EXPECT_EQ(dpdk::rss_key_len(52), 52);  // i40e (XL710), ice (E810)
    EXPECT_EQ(dpdk::rss_key_len(41), 0);   // odd: the 2-byte pattern would not be symmetric
    EXPECT_EQ(dpdk::rss_key_len(64), 0);   // longer than our key
    // The whole 52-byte key hashes IPv6 tuples (36 bytes of input use 40 key bytes) symmetrically.
    uint32_t fwd[9] = {0x20010db8, 0, 0, 1, 0x20010db8, 0, 0, 2, 40000u << 16 | 443};
    uint32_t rev[9] = {0x20010db8, 0, 0, 2, 0x20010db8, 0, 0, 1, 443u << 16 | 40000};
    EXPECT_EQ(rte_softrss(fwd, 9, dpdk::kSymmetricRssKey), rte_softrss(rev, 9, dpdk::kSymmetricRssKey));
    EXPECT_NE(rte_softrss(fwd, 9, dpdk::kSymmetricRssKey), 0u);
}

TEST(Engine, SoftwareDispatchKeepsBothDirectionsOnOneWorker) {
    const auto frames = read_pcap(kLab);
    ASSERT_FALSE(frames.empty());
    dpdk::EngineConfig ec = base_config();
    ec.workers = 2;
    dpdk::PortSpec p;
    p.name = "pcap0";
    p.device = unique_dev("net_pcap_sd") + ",rx_pcap=" + kLab;
    p.want_timestamps = true;
    ec.ports = {p};
    dpdk::Engine engine(ec);
    ASSERT_EQ(engine.mode(), dpdk::DispatchMode::software);  // net_pcap cannot hash
    const metrics::Totals t = run(engine, frames.size());
    EXPECT_EQ(t.packets(), frames.size());
    // A direction landing on the wrong worker would create a second, mid-stream flow there and
    // turn the verdicts into no_state.
    EXPECT_EQ(t.flows_created, 24u);
    EXPECT_EQ(t.rst_by_cause(static_cast<size_t>(classify::Cause::no_state)), 0u);
    EXPECT_EQ(t.rst_by_cause(static_cast<size_t>(classify::Cause::port_closed)), 6u);
    EXPECT_EQ(t.rst_by_cause(static_cast<size_t>(classify::Cause::linger_abort)), 6u);
    EXPECT_EQ(t.rst_by_cause(static_cast<size_t>(classify::Cause::unread_data_close)), 6u);
    const auto per = engine.stats();
    ASSERT_EQ(per.size(), 3u);  // two workers and the dispatcher
    EXPECT_GT(per[0]->flows_created.load(), 0u);  // both workers got flows
    EXPECT_GT(per[1]->flows_created.load(), 0u);
    EXPECT_EQ(t.dispatch_dropped, 0u);
}

TEST(Engine, InlineModeForwardsEveryFrameUnchanged) {
    const auto in = read_pcap(kLab);
    const std::string empty = tmp_path("empty.pcap"), out_a = tmp_path("out_a.pcap"),
                      out_b = tmp_path("out_b.pcap");
    write_pcap(empty, {});
    {
        dpdk::EngineConfig ec = base_config();
        ec.workers = 1;
        dpdk::PortSpec a, b;
        a.name = "wire_a";
        a.device = unique_dev("net_pcap_ia") + ",rx_pcap=" + kLab + ",tx_pcap=" + out_a;
        a.forward_to = 1;
        b.name = "wire_b";
        b.device = unique_dev("net_pcap_ib") + ",rx_pcap=" + empty + ",tx_pcap=" + out_b;
        b.forward_to = 0;
        ec.ports = {a, b};
        dpdk::Engine engine(ec);
        const metrics::Totals t = run(engine, in.size());
        EXPECT_EQ(t.port_packets[0], in.size());
        EXPECT_EQ(t.tx_packets[1], in.size());
        EXPECT_EQ(t.tx_dropped[1], 0u);
        EXPECT_EQ(t.rst_packets, 18u);  // and it was analysed on the way
    }  // closing the ports flushes the TX captures
    const auto out = read_pcap(out_b);
    ASSERT_EQ(out.size(), in.size());
    for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i].bytes, in[i].bytes) << "frame " << i;
    EXPECT_TRUE(read_pcap(out_a).empty());
    std::remove(empty.c_str());
    std::remove(out_a.c_str());
    std::remove(out_b.c_str());
}

TEST(Engine, SeveralPortsFeedOneAppliance) {
    // Port 2 carries the IPv4 half of the lab capture moved to other addresses: other flows.
    auto in = read_pcap(kLab);
    std::vector<Packet> moved;
    for (auto p : in) {
        if (p.bytes.size() < 34 || p.bytes[12] != 0x08 || p.bytes[13] != 0x00) continue;
        p.bytes[14 + 13] = 98;  // 10.99.0.x -> 10.98.0.x (checksums are not verified)
        p.bytes[14 + 17] = 98;
        moved.push_back(p);
    }
    const std::string second = tmp_path("second.pcap");
    // Same clock as the first port, as two ports of one appliance would see.
    write_pcap(second, moved, in.front().ts_us);
    dpdk::EngineConfig ec = base_config();
    ec.workers = 1;
    dpdk::PortSpec a, b;
    a.name = "span_a";
    a.device = unique_dev("net_pcap_ma") + ",rx_pcap=" + kLab;
    a.want_timestamps = true;
    b.name = "span_b";
    b.device = unique_dev("net_pcap_mb") + ",rx_pcap=" + second;
    b.want_timestamps = true;
    ec.ports = {a, b};
    dpdk::Engine engine(ec);
    const metrics::Totals t = run(engine, in.size() + moved.size());
    EXPECT_EQ(t.port_packets[0], in.size());
    EXPECT_EQ(t.port_packets[1], moved.size());
    EXPECT_EQ(t.rst_packets, 18u + 9u);
    EXPECT_EQ(t.rst_by_cause(static_cast<size_t>(classify::Cause::port_closed)), 6u + 3u);
    EXPECT_EQ(t.flows_created, 24u + 12u);
    std::remove(second.c_str());
}
