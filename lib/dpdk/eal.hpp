// The thin DPDK layer under the app: EAL lifetime, ports, the worker (and dispatch) lcores.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flow/flow_table.hpp"
#include "metrics/lcore_stats.hpp"
#include "packet/packet.hpp"
#include "pipeline/worker.hpp"

struct rte_mempool;
struct rte_ring;

namespace rstmon::dpdk {

// rte_eal_init / rte_eal_cleanup. Throws with DPDK's reason when init fails.
class Eal {
public:
    explicit Eal(const std::vector<std::string>& args);
    ~Eal();
    Eal(const Eal&) = delete;
    Eal& operator=(const Eal&) = delete;
};

std::string dpdk_version();

struct PortSpec {
    std::string name;    // metrics label
    std::string device;  // devargs for rte_dev_probe: PCI address or vdev string
    packet::LinkType link = packet::LinkType::ethernet;
    bool want_timestamps = false;  // net_pcap: keep the capture's timestamps
    // With want_timestamps: frame number (1-based) and capture time in ns of a frame known
    // before the replay, against which the driver's timestamp unit is measured (rx_clock.hpp).
    uint64_t clock_frame = 0, clock_ns = 0;
    int forward_to = -1;  // inline mode: index of the port every received frame is sent out of
};

struct EngineConfig {
    std::vector<PortSpec> ports;
    uint32_t workers = 1;
    uint32_t mbufs = 16383;
    uint16_t mbuf_data_room = 0;  // 0 = DPDK's default (2 KiB + headroom)
    uint16_t burst = 32;
    uint16_t descriptors = 1024;
    uint32_t dispatch_ring = 4096;  // per worker, software dispatch only
    bool lossless = false;  // offline: a full dispatch ring waits instead of dropping
    uint32_t flow_table_size = 1u << 20;
    flow::FlowTimeouts timeouts;
    pipeline::WorkerConfig worker;  // template; worker_id, link, events set per worker
    bool events = false;
    uint32_t events_ring_size = 4096;
    // Benchmark only (--bench-dispatch-only): workers count and free every frame unprocessed,
    // so a run measures the software dispatcher alone (the scaling ceiling without RSS).
    bool dispatch_only = false;
    // One worker behind the software dispatcher anyway (an RX lcore): the port's reading
    // (net_pcap: libpcap's file reads and copies), parsing and hashing run beside the worker's
    // tracking instead of before it. Offline replays with a CPU to spare.
    bool rx_lcore = false;
};

struct PortCounters {
    uint64_t ipackets = 0, imissed = 0, ierrors = 0, rx_nombuf = 0;
    uint64_t opackets = 0, oerrors = 0;
};

// How received frames reach the workers.
enum class DispatchMode : uint8_t {
    direct,    // one worker polls queue 0 of every port
    rss,       // worker w polls queue w of every port; the NIC hashes symmetrically
    software,  // one RX lcore polls every port and hands frames to workers over SP/SC rings
};

// Ports, mempool, per-worker flow tables, stats and event rings, and the lcore loops.
class Engine {
public:
    explicit Engine(const EngineConfig& cfg);  // probes and starts the ports; throws on failure
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    void launch();  // starts the lcore loops
    void request_stop() { stop_.store(true, std::memory_order_relaxed); }
    bool all_stopped() const;  // every worker loop has returned
    void join();               // waits for the lcores

    DispatchMode mode() const { return mode_; }
    // One name per entry of stats(): "worker0".., then "dispatch" in software dispatch mode.
    std::vector<std::string> lcore_names() const;
    std::vector<const metrics::LcoreStats*> stats() const;
    const std::vector<rte_ring*>& event_rings() const { return event_rings_; }
    // Each worker's slot for recompiled match databases (SIGHUP; see pipeline::MatchSwap).
    std::vector<pipeline::MatchMailbox*> match_mailboxes() const;
    PortCounters port_counters(size_t port_index) const;
    size_t port_count() const { return ports_.size(); }
    uint64_t frames_received() const;  // processed by workers, summed
    uint64_t frames_dropped() const;   // lost before a worker (dispatch ring full), summed
    // ns per unit of a port's RX timestamps as measured on its PortSpec::clock_frame (1000,
    // net_pcap's microseconds, until then); 0 for a port without capture timestamps.
    uint64_t rx_timestamp_unit_ns(size_t port_index) const;
    // Lcores the engine needs besides the main one, for `workers` on ports of this kind.
    static unsigned lcores_needed(uint32_t workers, bool software_dispatch, bool rx_lcore = false);

    // For the lcore loops.
    struct WorkerCtx;
    struct DispatchCtx;
    struct RxClock;
    RxClock& rx_clock(size_t port_index) const;
    bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }
    const EngineConfig& config() const { return cfg_; }
    const std::vector<uint16_t>& port_ids() const { return port_ids_; }
    uint16_t port_index(uint16_t port_id) const { return port_index_[port_id]; }
    const std::vector<rte_ring*>& dispatch_rings() const { return dispatch_rings_; }
    bool all_stopped_dispatch() const;
    flow::HostTtlTable& host_ttls() const { return *host_ttls_; }

private:
    EngineConfig cfg_;
    DispatchMode mode_ = DispatchMode::direct;
    std::vector<uint16_t> port_ids_;
    std::vector<uint16_t> port_index_;  // port id -> index in ports_
    std::vector<PortSpec> ports_;
    rte_mempool* pool_ = nullptr;
    std::vector<std::unique_ptr<WorkerCtx>> workers_;
    std::unique_ptr<DispatchCtx> dispatch_;
    std::vector<rte_ring*> event_rings_;
    std::vector<rte_ring*> dispatch_rings_;
    std::unique_ptr<RxClock[]> rx_clocks_;  // by port index
    std::unique_ptr<flow::HostTtlTable> host_ttls_;  // shared by the workers
    std::atomic<bool> stop_{false};
    bool launched_ = false;
};

}  // namespace rstmon::dpdk
