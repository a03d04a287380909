#include <rte_bus_vdev.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_version.h>

#include <array>
#include <chrono>
#include <stdexcept>

#include "dpdk/eal.hpp"
#include "events/rst_event.hpp"

namespace rstmon::dpdk {
namespace {

constexpr size_t kScratch = 512;  // header bytes copied out of a multi-segment mbuf

std::runtime_error dpdk_error(const std::string& what, int err) {
    return std::runtime_error(what + ": " + rte_strerror(err < 0 ? -err : err));
}

// Symmetric Toeplitz key: with 0x6d5a repeated, hash(a->b) == hash(b->a), so both directions of
// a connection land on the same queue and worker.
uint8_t kSymmetricRssKey[40] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

int ts_dynfield_offset = -1;
uint64_t ts_dynflag = 0;

}  // namespace

std::string dpdk_version() { return rte_version(); }

Eal::Eal(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    static std::vector<std::string> keep;  // EAL may keep pointers into argv
    keep = args;
    for (auto& a : keep) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(keep.size()), argv.data()) < 0)
        throw std::runtime_error(std::string("EAL initialisation failed: ") +
                                 rte_strerror(rte_errno));
}

Eal::~Eal() { rte_eal_cleanup(); }

struct Engine::WorkerCtx {
    Engine* engine = nullptr;
    unsigned lcore = 0;
    uint16_t id = 0;
    std::vector<std::pair<uint16_t, uint16_t>> queues;  // (port index, queue)
    std::unique_ptr<flow::FlowTable> table;
    std::unique_ptr<metrics::LcoreStats> stats;
    std::unique_ptr<pipeline::Worker> worker;
    std::atomic<bool> done{false};
    bool capture_time = false;  // timestamps come from the capture (offline): no wall-clock expiry
    std::vector<std::array<uint8_t, kScratch>> scratch = std::vector<std::array<uint8_t, kScratch>>(512);
};

static int worker_main(void* arg);

Engine::Engine(const EngineConfig& cfg) : cfg_(cfg), ports_(cfg.ports) {
    // DPDK object names are global to the process: make ours unique per engine.
    static std::atomic<unsigned> instances{0};
    const std::string tag = std::to_string(instances.fetch_add(1));
    if (ports_.empty()) throw std::runtime_error("no ports configured");
    if (rte_lcore_count() < cfg.workers + 1)
        throw std::runtime_error("need " + std::to_string(cfg.workers) +
                                 " worker lcore(s) plus the main lcore, the EAL has " +
                                 std::to_string(rte_lcore_count()) + " (EAL option -l)");

    const unsigned socket = rte_socket_id();
    pool_ = rte_pktmbuf_pool_create(("rstmon_rx" + tag).c_str(), cfg.mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                    static_cast<int>(socket));
    if (pool_ == nullptr) throw dpdk_error("cannot create the mbuf pool", rte_errno);

    bool any_ts = false;
    for (const PortSpec& p : ports_) any_ts |= p.want_timestamps;
    if (any_ts && rte_mbuf_dyn_rx_timestamp_register(&ts_dynfield_offset, &ts_dynflag) != 0)
        throw dpdk_error("cannot register the mbuf timestamp field", rte_errno);

    for (size_t pi = 0; pi < ports_.size(); ++pi) {
        const PortSpec& ps = ports_[pi];
        int rc = rte_dev_probe(ps.device.c_str());
        if (rc != 0 && rc != -EEXIST)
            throw dpdk_error("cannot probe device '" + ps.device + "'", rc);
        const std::string devname = ps.device.substr(0, ps.device.find(','));
        uint16_t pid;
        if (rte_eth_dev_get_port_by_name(devname.c_str(), &pid) != 0)
            throw std::runtime_error("device '" + devname + "' is not an ethdev port");
        port_ids_.push_back(pid);

        rte_eth_dev_info info{};
        if ((rc = rte_eth_dev_info_get(pid, &info)) != 0)
            throw dpdk_error("cannot query port " + ps.name, rc);
        const uint16_t nq = static_cast<uint16_t>(cfg.workers);
        if (nq > info.max_rx_queues)
            throw std::runtime_error("port " + ps.name + " has " +
                                     std::to_string(info.max_rx_queues) + " RX queue(s); " +
                                     std::to_string(cfg.workers) +
                                     " workers need one queue each with RSS (set workers: 1)");
        rte_eth_conf conf{};
        if (nq > 1) {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = kSymmetricRssKey;
            conf.rx_adv_conf.rss_conf.rss_key_len = sizeof kSymmetricRssKey;
            conf.rx_adv_conf.rss_conf.rss_hf =
                (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
        }
        if (ps.want_timestamps && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP))
            conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
        const uint16_t ntx = info.max_tx_queues > 0 ? 1 : 0;
        if ((rc = rte_eth_dev_configure(pid, nq, ntx, &conf)) != 0)
            throw dpdk_error("cannot configure port " + ps.name, rc);
        uint16_t nrx = cfg.descriptors, ntxd = 512;
        rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nrx, &ntxd);
        const int psock = rte_eth_dev_socket_id(pid) < 0 ? static_cast<int>(socket)
                                                          : rte_eth_dev_socket_id(pid);
        for (uint16_t q = 0; q < nq; ++q)
            if ((rc = rte_eth_rx_queue_setup(pid, q, nrx, psock, nullptr, pool_)) != 0)
                throw dpdk_error("cannot set up RX queue of port " + ps.name, rc);
        if (ntx && (rc = rte_eth_tx_queue_setup(pid, 0, ntxd, psock, nullptr)) != 0)
            throw dpdk_error("cannot set up TX queue of port " + ps.name, rc);
        if ((rc = rte_eth_dev_start(pid)) != 0)
            throw dpdk_error("cannot start port " + ps.name, rc);
        rte_eth_promiscuous_enable(pid);  // a SPAN port sees other hosts' MACs; some PMDs refuse
        if (nq > 1 && info.reta_size > 0) {
            std::vector<rte_eth_rss_reta_entry64> reta(info.reta_size / RTE_ETH_RETA_GROUP_SIZE + 1);
            for (uint16_t i = 0; i < info.reta_size; ++i) {
                auto& e = reta[i / RTE_ETH_RETA_GROUP_SIZE];
                e.mask |= 1ull << (i % RTE_ETH_RETA_GROUP_SIZE);
                e.reta[i % RTE_ETH_RETA_GROUP_SIZE] = i % nq;
            }
            rte_eth_dev_rss_reta_update(pid, reta.data(), info.reta_size);
        }
    }

    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    for (uint32_t w = 0; w < cfg.workers; ++w, lcore = rte_get_next_lcore(lcore, 1, 0)) {
        auto ctx = std::make_unique<WorkerCtx>();
        ctx->engine = this;
        ctx->lcore = lcore;
        ctx->id = static_cast<uint16_t>(w);
        for (size_t pi = 0; pi < ports_.size(); ++pi) {
            ctx->queues.emplace_back(static_cast<uint16_t>(pi), static_cast<uint16_t>(w));
            ctx->capture_time |= ports_[pi].want_timestamps;
        }
        const int sock = static_cast<int>(rte_lcore_to_socket_id(lcore));
        ctx->table = std::make_unique<flow::FlowTable>("rstmon_flows" + tag + "_" + std::to_string(w),
                                                       cfg.flow_table_size, sock, cfg.timeouts);
        ctx->stats = std::make_unique<metrics::LcoreStats>();
        pipeline::WorkerConfig wc = cfg.worker;
        wc.worker_id = static_cast<uint16_t>(w);
        for (size_t pi = 0; pi < ports_.size() && pi < metrics::kMaxPorts; ++pi)
            wc.link[pi] = ports_[pi].link;
        wc.events = nullptr;
        if (cfg.events) {
            const std::string rn = "rstmon_ev" + tag + "_" + std::to_string(w);
            rte_ring* r = rte_ring_create_elem(rn.c_str(), sizeof(events::RstEvent),
                                               cfg.events_ring_size, sock,
                                               RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (r == nullptr) throw dpdk_error("cannot create event ring", rte_errno);
            event_rings_.push_back(r);
            wc.events = r;
        }
        ctx->worker = std::make_unique<pipeline::Worker>(wc, *ctx->table, *ctx->stats);
        workers_.push_back(std::move(ctx));
    }
}

Engine::~Engine() {
    if (launched_) {
        request_stop();
        rte_eal_mp_wait_lcore();
    }
    for (uint16_t pid : port_ids_) {
        rte_eth_dev_stop(pid);
        rte_eth_dev_close(pid);
    }
    workers_.clear();
    for (rte_ring* r : event_rings_) rte_ring_free(r);
    rte_mempool_free(pool_);
}

void Engine::launch() {
    for (auto& w : workers_) {
        const int rc = rte_eal_remote_launch(worker_main, w.get(), w->lcore);
        if (rc != 0) throw dpdk_error("cannot launch worker lcore", rc);
    }
    launched_ = true;
}

bool Engine::all_stopped() const {
    for (const auto& w : workers_)
        if (!w->done.load(std::memory_order_acquire)) return false;
    return true;
}

void Engine::join() {
    if (!launched_) return;
    rte_eal_mp_wait_lcore();
    launched_ = false;
}

std::vector<const metrics::LcoreStats*> Engine::stats() const {
    std::vector<const metrics::LcoreStats*> v;
    for (const auto& w : workers_) v.push_back(w->stats.get());
    return v;
}

uint64_t Engine::frames_received() const {
    uint64_t n = 0;
    for (const auto& w : workers_)
        for (const auto& c : w->stats->port_packets) n += c.load();
    return n;
}

PortCounters Engine::port_counters(size_t i) const {
    rte_eth_stats s{};
    PortCounters pc;
    if (i < port_ids_.size() && rte_eth_stats_get(port_ids_[i], &s) == 0) {
        pc.ipackets = s.ipackets;
        pc.imissed = s.imissed;
        pc.ierrors = s.ierrors;
        pc.rx_nombuf = s.rx_nombuf;
    }
    return pc;
}

// The per-lcore loop: burst receive, hand frames to the pipeline, free. Stops when the engine
// asks; periodic work (busy ratio, idle expiry) is timed by TSC, not per packet.
static int worker_main(void* arg) {
    auto* ctx = static_cast<Engine::WorkerCtx*>(arg);
    Engine& eng = *ctx->engine;
    const uint16_t burst = eng.burst_size();
    const auto& port_ids = eng.port_ids();
    pipeline::Worker& worker = *ctx->worker;
    metrics::LcoreStats& stats = *ctx->stats;

    rte_mbuf* mbufs[512];
    pipeline::Frame frames[512];
    // Header copies of multi-segment frames. Per worker on the heap: thread_local storage this
    // large would inflate every thread's static TLS (civetweb's 100 KiB stacks then fail).
    auto& scratch = ctx->scratch;

    const uint64_t hz = rte_get_tsc_hz();
    const uint64_t tsc0 = rte_rdtsc();
    const uint64_t wall0 = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    uint64_t busy = 0, polled = 0, last_flush = tsc0;

    while (!eng.stop_requested()) {
        const uint64_t t0 = rte_rdtsc();
        bool any = false;
        const uint64_t now_ns = wall0 + static_cast<uint64_t>(
                                            static_cast<double>(t0 - tsc0) * 1e9 / static_cast<double>(hz));
        for (const auto& [pi, q] : ctx->queues) {
            const uint16_t n = rte_eth_rx_burst(port_ids[pi], q, mbufs, burst);
            if (n == 0) continue;
            any = true;
            for (uint16_t i = 0; i < n; ++i) {
                rte_mbuf* m = mbufs[i];
                pipeline::Frame& f = frames[i];
                f.port = pi;
                f.wire_len = m->pkt_len;
                if (rte_pktmbuf_is_contiguous(m)) {
                    f.data = rte_pktmbuf_mtod(m, const uint8_t*);
                    f.len = m->data_len;
                } else {
                    const uint32_t want = m->pkt_len < kScratch ? m->pkt_len : kScratch;
                    f.data = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, want, scratch[i].data()));
                    f.len = f.data ? want : 0;
                }
                if (ts_dynflag && (m->ol_flags & ts_dynflag))
                    // net_pcap (DPDK 22.11) stores the capture time in microseconds.
                    f.ts_ns = *RTE_MBUF_DYNFIELD(m, ts_dynfield_offset, rte_mbuf_timestamp_t*) * 1000;
                else
                    f.ts_ns = now_ns;
            }
            worker.process(frames, n);
            rte_pktmbuf_free_bulk(mbufs, n);
        }
        const uint64_t t1 = rte_rdtsc();
        if (any)
            busy += t1 - t0;
        else if (!ctx->capture_time)
            worker.idle(now_ns);
        polled += t1 - t0;
        if (t1 - last_flush > hz / 10) {  // 10 times a second
            stats.busy_cycles.add(busy);
            stats.poll_cycles.add(polled);
            busy = polled = 0;
            last_flush = t1;
        }
    }
    stats.busy_cycles.add(busy);
    stats.poll_cycles.add(polled);
    // Pending RSTs become final; at the end of a replay, flows whose timeouts passed by the last
    // packet's time end too (their outcome is counted).
    worker.finish(ctx->capture_time);
    ctx->done.store(true, std::memory_order_release);
    return 0;
}

}  // namespace rstmon::dpdk
