// EAL lifetime, ports and the worker lcores: the thin DPDK layer under the app.
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

struct PortSpec {
    std::string name;    // metrics label
    std::string device;  // devargs for rte_dev_probe: PCI address or vdev string
    packet::LinkType link = packet::LinkType::ethernet;
    bool want_timestamps = false;  // net_pcap: keep the capture's timestamps
};

struct EngineConfig {
    std::vector<PortSpec> ports;
    uint32_t workers = 1;
    uint32_t mbufs = 16383;
    uint16_t burst = 32;
    uint16_t descriptors = 1024;
    uint32_t flow_table_size = 1u << 20;
    flow::FlowTimeouts timeouts;
    pipeline::WorkerConfig worker;  // template; worker_id, link, events set per worker
    bool events = false;
    uint32_t events_ring_size = 4096;
};

struct PortCounters {
    uint64_t ipackets = 0, imissed = 0, ierrors = 0, rx_nombuf = 0;
};

// Ports, mempool, per-worker flow tables, stats and event rings, and the lcore loops.
class Engine {
public:
    explicit Engine(const EngineConfig& cfg);  // probes and starts the ports; throws on failure
    ~Engine();

    void launch();       // starts one loop per worker lcore
    void request_stop() { stop_.store(true, std::memory_order_relaxed); }
    bool all_stopped() const;  // every worker loop has returned
    void join();         // waits for the lcores (call after all_stopped or request_stop)

    std::vector<const metrics::LcoreStats*> stats() const;
    const std::vector<rte_ring*>& event_rings() const { return event_rings_; }
    PortCounters port_counters(size_t port_index) const;
    size_t port_count() const { return ports_.size(); }
    uint64_t frames_received() const;  // summed over workers

    bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }
    uint16_t burst_size() const { return cfg_.burst; }
    const std::vector<uint16_t>& port_ids() const { return port_ids_; }

    struct WorkerCtx;

private:
    EngineConfig cfg_;
    std::vector<uint16_t> port_ids_;
    std::vector<PortSpec> ports_;
    rte_mempool* pool_ = nullptr;
    std::vector<std::unique_ptr<WorkerCtx>> workers_;
    std::vector<rte_ring*> event_rings_;
    std::atomic<bool> stop_{false};
    bool launched_ = false;
};

std::string dpdk_version();

}  // namespace rstmon::dpdk
