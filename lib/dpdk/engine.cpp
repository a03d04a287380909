#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <stdexcept>

#include "dpdk/eal.hpp"
#include "dpdk/port.hpp"
#include "dpdk/rx_clock.hpp"
#include "events/rst_event.hpp"
#include "flow/flow_key.hpp"

namespace rstmon::dpdk {
namespace {

constexpr size_t kScratch = 512;  // header bytes copied out of a multi-segment mbuf
constexpr uint16_t kMaxBurst = 512;

std::runtime_error dpdk_error(const std::string& what, int err) {
    return std::runtime_error(what + ": " + rte_strerror(err < 0 ? -err : err));
}

int ts_dynfield_offset = -1;
uint64_t ts_dynflag = 0;

// What the software dispatcher hands a worker with each frame besides the mbuf: the flow hash it
// computed to choose the worker (flow::flow_hash), so the worker's table lookup does not hash
// again. An mbuf dynamic field: DPDK's place for per-packet metadata of an application's own.
struct DispatchNote {
    uint32_t flow_hash;
    uint8_t hashed;    // 1: flow_hash is set (the frame is TCP the worker will track)
    uint8_t host_ttl;  // an RST's source TTL before it (flow/host_ttl.hpp), 0: unknown
};
int note_dynfield_offset = -1;

inline DispatchNote& dispatch_note(rte_mbuf* m) {
    return *RTE_MBUF_DYNFIELD(m, note_dynfield_offset, DispatchNote*);
}

uint64_t wall_ns() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

// TSC-timed wall clock: read once per burst, never per packet.
struct BurstClock {
    uint64_t hz = rte_get_tsc_hz(), tsc0 = rte_rdtsc(), wall0 = wall_ns();
    uint64_t now(uint64_t tsc) const {
        return wall0 + static_cast<uint64_t>(static_cast<double>(tsc - tsc0) * 1e9 /
                                             static_cast<double>(hz));
    }
};

// An lcore's busy share (rstmon_lcore_busy_ratio{lcore}): TSC cycles of the poll rounds that
// found frames, over all rounds, added to its stats ten times a second (never per packet). The
// workers and the dispatch lcore keep it the same way.
class BusyMeter {
public:
    explicit BusyMeter(metrics::LcoreStats& stats) : stats_(stats) {}
    // One poll round, from t0 to t1 (TSC); `any`: it handled frames.
    void round(uint64_t t0, uint64_t t1, bool any) {
        if (any) busy_ += t1 - t0;
        polled_ += t1 - t0;
        if (t1 - last_flush_ > hz_ / 10) {
            flush();
            last_flush_ = t1;
        }
    }
    void flush() {
        stats_.busy_cycles.add(busy_);
        stats_.poll_cycles.add(polled_);
        busy_ = polled_ = 0;
    }

private:
    metrics::LcoreStats& stats_;
    uint64_t hz_ = rte_get_tsc_hz(), busy_ = 0, polled_ = 0, last_flush_ = rte_rdtsc();
};

using Scratch = std::array<uint8_t, kScratch>;

inline uint64_t rx_timestamp(const rte_mbuf* m) {
    return *RTE_MBUF_DYNFIELD(m, ts_dynfield_offset, const rte_mbuf_timestamp_t*);
}

// mbuf -> Frame: contiguous data in place, else the headers copied out. A driver timestamp
// (capture time, offline) counts `ts_unit_ns` per unit (Engine::RxClock).
inline void to_frame(rte_mbuf* m, uint16_t port_index, uint64_t now_ns, uint64_t ts_unit_ns,
                     Scratch& scratch, pipeline::Frame& f) {
    f.port = port_index;
    f.wire_len = m->pkt_len;
    if (rte_pktmbuf_is_contiguous(m)) {
        f.data = rte_pktmbuf_mtod(m, const uint8_t*);
        f.len = m->data_len;
    } else {
        const uint32_t want = m->pkt_len < kScratch ? m->pkt_len : kScratch;
        f.data = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, want, scratch.data()));
        f.len = f.data ? want : 0;
    }
    if (ts_dynflag && (m->ol_flags & ts_dynflag))
        f.ts_ns = rx_timestamp(m) * ts_unit_ns;
    else
        f.ts_ns = now_ns;
}

}  // namespace

// Per port: the unit of its RX timestamps, measured on one frame whose capture time is known
// (rx_clock.hpp) by the one lcore that polls the port, before any of that burst's frames is used.
// Workers behind the dispatcher read it after their ring hand-off, which orders it.
struct Engine::RxClock {
    uint64_t frame = 0;      // 1-based frame number to measure on; 0: nothing to measure
    uint64_t expect_ns = 0;  // its capture time
    uint64_t seen = 0;       // frames received so far (until the measurement)
    std::atomic<uint64_t> unit_ns{1000};  // DPDK 22.11 net_pcap's microseconds until measured

    void observe(rte_mbuf* const* m, uint16_t n) {
        if (seen >= frame) return;
        for (uint16_t i = 0; i < n; ++i)
            if (++seen == frame) {
                if (ts_dynflag && (m[i]->ol_flags & ts_dynflag))
                    unit_ns.store(measure_timestamp_unit_ns(expect_ns, rx_timestamp(m[i]), 1000),
                                  std::memory_order_relaxed);
                return;
            }
    }
    uint64_t unit() const { return unit_ns.load(std::memory_order_relaxed); }
};

struct Engine::WorkerCtx {
    Engine* engine = nullptr;
    unsigned lcore = 0;
    uint16_t id = 0;
    std::vector<std::pair<uint16_t, uint16_t>> queues;  // (port index, queue) polled directly
    rte_ring* ring = nullptr;                           // or frames handed over by dispatch
    std::unique_ptr<flow::FlowTable> table;
    std::unique_ptr<metrics::LcoreStats> stats;
    std::unique_ptr<pipeline::Worker> worker;
    std::atomic<bool> done{false};
    bool capture_time = false;  // timestamps come from the capture (offline): no wall-clock expiry
    // Header copies of multi-segment frames. On the heap: thread_local storage this large would
    // inflate every thread's static TLS (civetweb's 100 KiB stacks then fail to start).
    std::vector<Scratch> scratch = std::vector<Scratch>(kMaxBurst);
};

struct Engine::DispatchCtx {
    Engine* engine = nullptr;
    unsigned lcore = 0;
    std::unique_ptr<metrics::LcoreStats> stats;  // frames lost to full rings
    std::atomic<bool> done{false};
};

unsigned Engine::lcores_needed(uint32_t workers, bool software_dispatch, bool rx_lcore) {
    return workers + (software_dispatch && (workers > 1 || rx_lcore) ? 1 : 0);
}

static int worker_main(void* arg);
static int dispatch_main(void* arg);

Engine::Engine(const EngineConfig& cfg)
    : cfg_(cfg), port_index_(RTE_MAX_ETHPORTS, 0), ports_(cfg.ports) {
    if (ports_.empty()) throw std::runtime_error("no ports configured");
    if (cfg.burst == 0 || cfg.burst > kMaxBurst)
        throw std::runtime_error("burst must be 1-" + std::to_string(kMaxBurst));
    // DPDK object names are global to the process: make ours unique per engine.
    static std::atomic<unsigned> instances{0};
    const std::string tag = std::to_string(instances.fetch_add(1));

    rx_clocks_ = std::make_unique<RxClock[]>(ports_.size());
    for (size_t i = 0; i < ports_.size(); ++i)
        if (ports_[i].want_timestamps) {
            rx_clocks_[i].frame = ports_[i].clock_frame;
            rx_clocks_[i].expect_ns = ports_[i].clock_ns;
        }
    std::vector<ProbedPort> probed;
    bool all_rss = true, any_ts = false;
    for (const PortSpec& ps : ports_) {
        probed.push_back(probe_port(ps));
        all_rss &= probed.back().rss && probed.back().max_rx_queues >= cfg.workers;
        any_ts |= ps.want_timestamps;
        port_ids_.push_back(probed.back().id);
        port_index_[probed.back().id] = static_cast<uint16_t>(port_ids_.size() - 1);
    }
    mode_ = cfg.workers == 1 && !cfg.rx_lcore ? DispatchMode::direct
                             : (all_rss ? DispatchMode::rss : DispatchMode::software);
    const unsigned need = lcores_needed(cfg.workers, mode_ == DispatchMode::software, cfg.rx_lcore);
    if (rte_lcore_count() < need + 1)
        throw std::runtime_error(
            "need " + std::to_string(need) + " lcore(s) besides the main one for " +
            std::to_string(cfg.workers) + " worker(s)" +
            (mode_ == DispatchMode::software ? " and the software dispatcher" : "") +
            ", the EAL has " + std::to_string(rte_lcore_count() - 1) + " (EAL option -l)");

    const unsigned socket = rte_socket_id();
    const uint16_t room = cfg.mbuf_data_room ? cfg.mbuf_data_room : RTE_MBUF_DEFAULT_BUF_SIZE;
    pool_ = rte_pktmbuf_pool_create(("rstmon_rx" + tag).c_str(), cfg.mbufs, 256, 0, room,
                                    static_cast<int>(socket));
    if (pool_ == nullptr) throw dpdk_error("cannot create the mbuf pool", rte_errno);
    if (any_ts && rte_mbuf_dyn_rx_timestamp_register(&ts_dynfield_offset, &ts_dynflag) != 0)
        throw dpdk_error("cannot register the mbuf timestamp field", rte_errno);
    if (mode_ == DispatchMode::software) {
        static const rte_mbuf_dynfield note_field = {"rstmon_dispatch_note", sizeof(DispatchNote),
                                                     alignof(DispatchNote), 0};
        note_dynfield_offset = rte_mbuf_dynfield_register(&note_field);
        if (note_dynfield_offset < 0)
            throw dpdk_error("cannot register the mbuf dispatch field", rte_errno);
    }
    host_ttls_ = std::make_unique<flow::HostTtlTable>();

    // Inline: every port that receives frames to forward needs one TX queue per worker on its
    // peer (workers transmit what they processed).
    std::vector<uint16_t> txq(ports_.size(), 0);
    for (const PortSpec& ps : ports_) {
        if (ps.forward_to < 0) continue;
        if (static_cast<size_t>(ps.forward_to) >= ports_.size())
            throw std::runtime_error("port " + ps.name + " forwards to an unknown port");
        txq[ps.forward_to] = static_cast<uint16_t>(cfg.workers);
    }
    for (size_t i = 0; i < ports_.size(); ++i) {
        PortSetup s;
        s.rx_queues = mode_ == DispatchMode::rss ? static_cast<uint16_t>(cfg.workers) : 1;
        s.tx_queues = txq[i];
        s.descriptors = cfg.descriptors;
        s.rss = mode_ == DispatchMode::rss;
        s.timestamps = ports_[i].want_timestamps;
        start_port(probed[i], ports_[i].name, s, pool_);
    }

    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    if (mode_ == DispatchMode::software) {
        dispatch_ = std::make_unique<DispatchCtx>();
        dispatch_->engine = this;
        dispatch_->lcore = lcore;
        dispatch_->stats = std::make_unique<metrics::LcoreStats>();
        lcore = rte_get_next_lcore(lcore, 1, 0);
    }
    for (uint32_t w = 0; w < cfg.workers; ++w, lcore = rte_get_next_lcore(lcore, 1, 0)) {
        auto ctx = std::make_unique<WorkerCtx>();
        ctx->engine = this;
        ctx->lcore = lcore;
        ctx->id = static_cast<uint16_t>(w);
        const int sock = static_cast<int>(rte_lcore_to_socket_id(lcore));
        for (size_t pi = 0; pi < ports_.size(); ++pi) {
            if (mode_ != DispatchMode::software)
                ctx->queues.emplace_back(static_cast<uint16_t>(pi),
                                         mode_ == DispatchMode::rss ? w : 0);
            ctx->capture_time |= ports_[pi].want_timestamps;
        }
        if (mode_ == DispatchMode::software) {
            const std::string rn = "rstmon_d" + tag + "_" + std::to_string(w);
            ctx->ring = rte_ring_create(rn.c_str(), cfg.dispatch_ring, sock,
                                        RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (ctx->ring == nullptr) throw dpdk_error("cannot create a dispatch ring", rte_errno);
            dispatch_rings_.push_back(ctx->ring);
        }
        ctx->table = std::make_unique<flow::FlowTable>("rstmon_flows" + tag + "_" + std::to_string(w),
                                                       cfg.flow_table_size, sock, cfg.timeouts);
        ctx->stats = std::make_unique<metrics::LcoreStats>();
        pipeline::WorkerConfig wc = cfg.worker;
        wc.worker_id = static_cast<uint16_t>(w);
        wc.host_ttls = host_ttls_.get();
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
    for (rte_ring* r : dispatch_rings_) {  // frames still queued go back to the pool
        void* m;
        while (rte_ring_sc_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
    for (uint16_t pid : port_ids_) stop_port(pid);
    workers_.clear();
    for (rte_ring* r : event_rings_) rte_ring_free(r);
    for (rte_ring* r : dispatch_rings_) rte_ring_free(r);
    rte_mempool_free(pool_);
}

void Engine::launch() {
    if (dispatch_) {
        const int rc = rte_eal_remote_launch(dispatch_main, dispatch_.get(), dispatch_->lcore);
        if (rc != 0) throw dpdk_error("cannot launch the dispatch lcore", rc);
    }
    for (auto& w : workers_) {
        const int rc = rte_eal_remote_launch(worker_main, w.get(), w->lcore);
        if (rc != 0) throw dpdk_error("cannot launch worker lcore", rc);
    }
    launched_ = true;
}

bool Engine::all_stopped() const {
    for (const auto& w : workers_)
        if (!w->done.load(std::memory_order_acquire)) return false;
    return all_stopped_dispatch();
}

bool Engine::all_stopped_dispatch() const {
    return !dispatch_ || dispatch_->done.load(std::memory_order_acquire);
}

void Engine::join() {
    if (!launched_) return;
    rte_eal_mp_wait_lcore();
    launched_ = false;
}

std::vector<const metrics::LcoreStats*> Engine::stats() const {
    std::vector<const metrics::LcoreStats*> v;
    for (const auto& w : workers_) v.push_back(w->stats.get());
    if (dispatch_) v.push_back(dispatch_->stats.get());
    return v;
}

std::vector<pipeline::MatchMailbox*> Engine::match_mailboxes() const {
    std::vector<pipeline::MatchMailbox*> v;
    for (const auto& w : workers_) v.push_back(&w->worker->match_mailbox());
    return v;
}

std::vector<std::string> Engine::lcore_names() const {
    std::vector<std::string> v;
    for (const auto& w : workers_) v.push_back("worker" + std::to_string(w->id));
    if (dispatch_) v.push_back("dispatch");
    return v;
}

uint64_t Engine::frames_received() const {
    uint64_t n = 0;
    for (const auto& w : workers_)
        for (const auto& c : w->stats->port_packets) n += c.load();
    return n;
}

Engine::RxClock& Engine::rx_clock(size_t port_index) const { return rx_clocks_[port_index]; }

uint64_t Engine::rx_timestamp_unit_ns(size_t i) const {
    return i < ports_.size() && ports_[i].want_timestamps ? rx_clocks_[i].unit() : 0;
}

uint64_t Engine::frames_dropped() const {
    uint64_t n = 0;
    for (const auto& w : workers_) n += w->stats->dispatch_dropped.load();
    if (dispatch_) n += dispatch_->stats->dispatch_dropped.load();
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
        pc.opackets = s.opackets;
        pc.oerrors = s.oerrors;
    }
    return pc;
}

// Frames a worker has processed: forwarded unchanged out of the peer port (inline), else freed.
static void release(Engine& eng, const Engine::WorkerCtx& ctx, rte_mbuf** mbufs,
                    const pipeline::Frame* frames, uint16_t n) {
    const auto& ports = eng.config().ports;
    uint16_t i = 0;
    while (i < n) {
        const int peer = ports[frames[i].port].forward_to;
        uint16_t j = i + 1;  // a run of frames from the same port
        while (j < n && frames[j].port == frames[i].port) ++j;
        if (peer < 0) {
            rte_pktmbuf_free_bulk(mbufs + i, j - i);
        } else {
            const uint16_t sent =
                rte_eth_tx_burst(eng.port_ids()[peer], ctx.id, mbufs + i, j - i);
            ctx.stats->tx_packets[peer].add(sent);
            if (sent < j - i) {
                ctx.stats->tx_dropped[peer].add(j - i - sent);
                rte_pktmbuf_free_bulk(mbufs + i + sent, j - i - sent);
            }
        }
        i = j;
    }
}

// The per-lcore loop: burst receive (from queues or the dispatch ring), hand frames to the
// pipeline, release. Periodic work (busy ratio, idle expiry) is timed by TSC, not per packet.
static int worker_main(void* arg) {
    auto* ctx = static_cast<Engine::WorkerCtx*>(arg);
    Engine& eng = *ctx->engine;
    const uint16_t burst = eng.config().burst;
    const auto& port_ids = eng.port_ids();
    pipeline::Worker& worker = *ctx->worker;
    metrics::LcoreStats& stats = *ctx->stats;
    rte_mbuf* mbufs[kMaxBurst];
    pipeline::Frame frames[kMaxBurst];
    const BurstClock clock;
    BusyMeter meter(stats);

    const bool dispatch_only = eng.config().dispatch_only;
    auto run = [&](uint16_t n, uint64_t now_ns, int port_index) {
        if (port_index >= 0) eng.rx_clock(port_index).observe(mbufs, n);  // this lcore polls it
        for (uint16_t i = 0; i < n; ++i) {
            const uint16_t pi = port_index >= 0 ? static_cast<uint16_t>(port_index)
                                                : eng.port_index(mbufs[i]->port);
            to_frame(mbufs[i], pi, now_ns, eng.rx_clock(pi).unit(), ctx->scratch[i], frames[i]);
            if (port_index < 0) {  // from the dispatcher: its hash comes along
                const DispatchNote& note = dispatch_note(mbufs[i]);
                frames[i].flow_hash = note.flow_hash;
                frames[i].hashed = frames[i].host_observed = note.hashed != 0;
                frames[i].host_ttl = note.host_ttl;
            }
        }
        if (unlikely(dispatch_only)) {  // benchmark of the dispatcher: count, drop
            for (uint16_t i = 0; i < n; ++i)
                stats.port_packets[std::min<size_t>(frames[i].port, metrics::kMaxPorts - 1)].inc();
        } else {
            worker.process(frames, n);
        }
        release(eng, *ctx, mbufs, frames, n);
    };

    for (;;) {
        const bool stopping = eng.stop_requested();
        const uint64_t t0 = rte_rdtsc();
        const uint64_t now_ns = clock.now(t0);
        bool any = false;
        if (ctx->ring) {
            const unsigned n = rte_ring_sc_dequeue_burst(ctx->ring, reinterpret_cast<void**>(mbufs),
                                                         burst, nullptr);
            if (n > 0) {
                any = true;
                run(static_cast<uint16_t>(n), now_ns, -1);
            }
            // Stop only once the dispatcher has stopped and the ring is drained.
            if (stopping && n == 0 && eng.all_stopped_dispatch()) break;
        } else {
            if (stopping) break;
            for (const auto& [pi, q] : ctx->queues) {
                const uint16_t n = rte_eth_rx_burst(port_ids[pi], q, mbufs, burst);
                if (n == 0) continue;
                any = true;
                run(n, now_ns, pi);
            }
        }
        meter.round(t0, rte_rdtsc(), any);
        if (!any && !ctx->capture_time) worker.idle(now_ns);
    }
    meter.flush();
    // Pending RSTs become final; at the end of a replay, flows whose timeouts passed by the last
    // packet's time end too (their outcome is counted).
    worker.finish(ctx->capture_time);
    ctx->done.store(true, std::memory_order_release);
    return 0;
}

// Software dispatch for ports without symmetric RSS: parse the frame for its flow key, hash the
// key (flow::flow_hash: the same value both ways), hand the frame to that worker's ring with the
// hash (the worker's table lookup uses it as is). Both directions meet on one worker. Frames are
// enqueued per worker in bursts.
static int dispatch_main(void* arg) {
    auto* ctx = static_cast<Engine::DispatchCtx*>(arg);
    Engine& eng = *ctx->engine;
    const EngineConfig& cfg = eng.config();
    const auto& port_ids = eng.port_ids();
    const uint16_t burst = cfg.burst;
    const uint32_t nworkers = cfg.workers;
    const std::vector<rte_ring*>& rings = eng.dispatch_rings();
    rte_mbuf* mbufs[kMaxBurst];
    std::vector<std::vector<rte_mbuf*>> out(nworkers, std::vector<rte_mbuf*>(kMaxBurst));
    std::vector<uint16_t> nout(nworkers);
    Scratch scratch;
    std::vector<packet::TcpSegment> segs(kMaxBurst);
    std::vector<uint64_t> ts(kMaxBurst);
    flow::FlowKey key;
    flow::HostTtlTable& hosts = eng.host_ttls();  // the dispatch stage's: every frame, in order
    const BurstClock clock;
    BusyMeter meter(*ctx->stats);
    while (!eng.stop_requested()) {
        const uint64_t t0 = rte_rdtsc();
        const uint64_t now_ns = clock.now(t0);
        bool any = false;
        for (size_t pi = 0; pi < port_ids.size(); ++pi) {
            const uint16_t n = rte_eth_rx_burst(port_ids[pi], 0, mbufs, burst);
            if (n == 0) continue;
            any = true;
            eng.rx_clock(pi).observe(mbufs, n);
            const uint64_t unit = eng.rx_clock(pi).unit();
            std::fill(nout.begin(), nout.end(), 0);
            // Two passes: parse and hash each frame (starting to load its source's host TTL
            // set), then the host TTL memory in arrival order and the hand-over.
            for (uint16_t i = 0; i < n; ++i) {
                pipeline::Frame f;
                to_frame(mbufs[i], static_cast<uint16_t>(pi), now_ns, unit, scratch, f);
                DispatchNote& note = dispatch_note(mbufs[i]);
                note.hashed = 0;
                ts[i] = f.ts_ns;
                // The workers' decapsulation settings: both directions of a tunnelled flow must
                // hash on the same inner tuple, on the same worker.
                if (packet::parse(cfg.ports[pi].link, f.data, f.len, segs[i], cfg.worker.decap)
                        .status == packet::ParseStatus::tcp) {
                    flow::make_key(segs[i], key);
                    note.flow_hash = flow::flow_hash(key);
                    note.hashed = 1;
                    if (flow::HostTtlTable::consulted(segs[i])) hosts.prefetch(segs[i].src);
                }
            }
            for (uint16_t i = 0; i < n; ++i) {
                DispatchNote& note = dispatch_note(mbufs[i]);
                uint32_t w = 0;  // what is not TCP goes to worker 0, which counts it
                if (note.hashed) {
                    note.host_ttl = hosts.observe(segs[i], ts[i]);
                    w = flow::worker_of(note.flow_hash, nworkers);
                }
                out[w][nout[w]++] = mbufs[i];
            }
            for (uint32_t w = 0; w < nworkers; ++w) {
                uint16_t done = 0;
                while (done < nout[w]) {
                    done += static_cast<uint16_t>(rte_ring_sp_enqueue_burst(
                        rings[w], reinterpret_cast<void* const*>(out[w].data() + done),
                        nout[w] - done, nullptr));
                    if (done == nout[w]) break;
                    if (!cfg.lossless || eng.stop_requested()) {  // live: never block the NIC
                        ctx->stats->dispatch_dropped.add(nout[w] - done);
                        rte_pktmbuf_free_bulk(out[w].data() + done, nout[w] - done);
                        break;
                    }
                    rte_pause();  // offline: the worker will make room
                }
            }
        }
        meter.round(t0, rte_rdtsc(), any);  // rstmon_lcore_busy_ratio{lcore="dispatch"}
    }
    meter.flush();
    ctx->done.store(true, std::memory_order_release);
    return 0;
}

}  // namespace rstmon::dpdk
