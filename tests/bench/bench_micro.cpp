// Micro-benchmarks (Google Benchmark): parsing one frame, and the whole per-packet path of a
// worker (parse, bulk lookup, TCP update, expiry sweep) over working sets of 1K, 1M and 10M flows
// on a real FlowTable in DPDK's heap. Timing only: no pass/fail.
//
//   bench_micro [--benchmark_filter=...] [-- EAL args]   (default EAL: --no-huge -m 6144)
//
// --memory-per-flow N (no Google Benchmark): what one FlowTable of N flows takes from DPDK's
// allocator, everything the table allocates included (index buckets, key lines, the record
// array, the free-position stack): the heap's
// allocated bytes (rte_malloc_get_socket_stats, every socket) before and after the table is made,
// divided by N, next to FlowTable::bytes_per_flow() (the formula `rstmon --version` prints).
// Prints one JSON object. Default EAL: --no-huge with -m sized for N, -l 0.
//
//   bench_micro --memory-per-flow 1000000 [-- EAL args]
#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "flow/flow_table.hpp"
#include "match/first_payload.hpp"
#include "packet/packet.hpp"
#include "pipeline/worker.hpp"

using namespace rstmon;

namespace {

// A 60-byte Ethernet/IPv4/TCP ACK with 6 payload bytes; flow `i` gets its own 4-tuple.
struct FrameTemplate {
    uint8_t b[60] = {};
    FrameTemplate() {
        b[12] = 0x08;
        uint8_t* ip = b + 14;
        ip[0] = 0x45;
        ip[3] = 46;
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 6;
        uint8_t* t = ip + 20;
        t[12] = 0x50;
        t[13] = 0x18;  // PSH ACK
        t[14] = 0xfa;
    }
    void set(uint8_t* f, uint64_t flow, uint32_t seq) const {
        std::memcpy(f, b, sizeof b);
        uint8_t* ip = f + 14;
        ip[12] = 10, ip[13] = static_cast<uint8_t>(flow >> 16), ip[14] = static_cast<uint8_t>(flow >> 8),
        ip[15] = static_cast<uint8_t>(flow);
        ip[16] = 172, ip[17] = 16, ip[18] = 0, ip[19] = static_cast<uint8_t>(1 + (flow >> 24));
        uint8_t* t = ip + 20;
        t[0] = static_cast<uint8_t>(0x80 | ((flow >> 8) & 0x3f)), t[1] = static_cast<uint8_t>(flow);
        t[2] = 0, t[3] = 80;
        t[4] = static_cast<uint8_t>(seq >> 24), t[5] = static_cast<uint8_t>(seq >> 16);
        t[6] = static_cast<uint8_t>(seq >> 8), t[7] = static_cast<uint8_t>(seq);
    }
};

void BM_Parse(benchmark::State& state) {
    FrameTemplate tpl;
    uint8_t f[60];
    tpl.set(f, 12345, 1);
    packet::TcpSegment seg;
    for (auto _ : state) {
        auto r = packet::parse(packet::LinkType::ethernet, f, sizeof f, seg);
        benchmark::DoNotOptimize(r);
        benchmark::DoNotOptimize(seg);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Parse);

// Bursts of 32 frames of flows drawn at random from the working set, through Worker::process.
void BM_WorkerUpdate(benchmark::State& state) {
    const uint64_t flows = static_cast<uint64_t>(state.range(0));
    static int n = 0;
    flow::FlowTimeouts to;
    auto table = std::make_unique<flow::FlowTable>("bm_flows" + std::to_string(n++),
                                                   static_cast<uint32_t>(flows + flows / 8 + 1024),
                                                   SOCKET_ID_ANY, to);
    auto stats = std::make_unique<metrics::LcoreStats>();
    pipeline::WorkerConfig cfg;
    auto worker = std::make_unique<pipeline::Worker>(cfg, *table, *stats);
    FrameTemplate tpl;
    constexpr uint32_t kBurst = 32;
    std::vector<uint8_t> buf(kBurst * 60);
    pipeline::Frame frames[kBurst];
    for (uint32_t i = 0; i < kBurst; ++i) {
        frames[i].data = buf.data() + i * 60;
        frames[i].len = frames[i].wire_len = 60;
    }
    uint64_t ts = 1700000000ull * 1000000000ull;
    // Populate: one packet per flow.
    for (uint64_t f = 0; f < flows; f += kBurst) {
        uint32_t k = 0;
        for (; k < kBurst && f + k < flows; ++k) {
            tpl.set(buf.data() + k * 60, f + k, 1);
            frames[k].ts_ns = ts;
        }
        worker->process(frames, k);
    }
    // 64Ki frames of random flows, built before timing starts and replayed in bursts, a
    // microsecond apart. Each pass over the pool moves every frame's sequence number on (timing
    // paused): a frame seen again verbatim within the SPAN-duplicate window would be dropped as
    // a mirror copy before tracking, which is not the update this measures.
    constexpr uint32_t kPool = 1 << 16;
    std::vector<uint8_t> pool(static_cast<size_t>(kPool) * 60);
    std::mt19937_64 rng(42);
    for (uint32_t i = 0; i < kPool; ++i) tpl.set(pool.data() + static_cast<size_t>(i) * 60, rng() % flows, 7 + i * 6);
    auto next_pass = [&pool] {
        for (uint32_t i = 0; i < kPool; ++i) {
            uint8_t* seq = pool.data() + static_cast<size_t>(i) * 60 + 14 + 20 + 4;
            uint32_t v;
            std::memcpy(&v, seq, 4);
            v = __builtin_bswap32(__builtin_bswap32(v) + kPool * 6);
            std::memcpy(seq, &v, 4);
        }
    };
    const uint64_t dup0 = stats->duplicates.load();
    uint32_t at = 0;
    for (auto _ : state) {
        for (uint32_t k = 0; k < kBurst; ++k) {
            frames[k].data = pool.data() + static_cast<size_t>(at) * 60;
            frames[k].ts_ns = ts += 1000;
            at = (at + 1) & (kPool - 1);
        }
        worker->process(frames, kBurst);
        if (at == 0) {
            state.PauseTiming();
            next_pass();
            state.ResumeTiming();
        }
    }
    state.SetItemsProcessed(state.iterations() * kBurst);
    // Must stay 0: every frame measured went through the flow update.
    state.counters["duplicates"] = static_cast<double>(stats->duplicates.load() - dup0);
    state.counters["flows"] = static_cast<double>(table->active());
    state.counters["bytes_per_flow"] = static_cast<double>(flow::FlowTable::bytes_per_flow());
}
BENCHMARK(BM_WorkerUpdate)->Arg(1 << 10)->Arg(1 << 20)->Arg(10000000)->Unit(benchmark::kNanosecond);

// What a flow's first payload costs once (match::identify): a ClientHello or an HTTP request
// naming h<K>.example.com, against Arg(0) sni/host patterns (whole-name, as the config compiles
// them; alternately sni and host, as run_bench.py --match writes them).
void BM_IdentifyFirstPayload(benchmark::State& state) {
    const int patterns = static_cast<int>(state.range(0));
    match::MatchSpec spec;
    spec.services.resize(30);
    for (int k = 0; k < patterns; ++k) {
        auto& svc = spec.services[static_cast<size_t>(k % 30)];
        const std::string p = "h" + std::to_string(k * (1000 / std::max(patterns, 1)) % 1000) +
                              "\\.example\\.com";
        (k % 2 == 0 ? svc.sni : svc.host).push_back(p);
    }
    const auto db = match::MatchDatabases::compile(spec);
    match::Scratch scratch = db->make_scratch();
    std::vector<std::string> payloads;
    for (int k = 0; k < 64; ++k) {
        const std::string name = "h" + std::to_string(k * 7) + ".example.com";
        if (k % 2) {
            payloads.push_back("GET / HTTP/1.1\r\nHost: " + name + "\r\nUser-Agent: x\r\n\r\n");
            continue;
        }
        std::string ext = {0, 0, 0, static_cast<char>(name.size() + 5), 0,
                           static_cast<char>(name.size() + 3), 0, 0,
                           static_cast<char>(name.size())};
        ext += name;
        std::string body = std::string("\x03\x03", 2) + std::string(32, 'r') +
                           std::string("\x00\x00\x02\x13\x01\x01\x00", 7) +
                           std::string{0, static_cast<char>(ext.size())} + ext;
        std::string hs = std::string{1, 0, 0, static_cast<char>(body.size())} + body;
        payloads.push_back(std::string("\x16\x03\x01", 3) +
                           std::string{0, static_cast<char>(hs.size())} + hs);
    }
    match::HostName name;
    size_t i = 0, named = 0;
    for (auto _ : state) {
        const std::string& p = payloads[i++ & 63];
        const auto r = match::identify(reinterpret_cast<const uint8_t*>(p.data()), p.size(), *db,
                                       scratch, name);
        named += r.service != 0;
        benchmark::DoNotOptimize(r);
    }
    state.counters["matched_share"] =
        static_cast<double>(named) / static_cast<double>(std::max<size_t>(i, 1));
}
BENCHMARK(BM_IdentifyFirstPayload)->Arg(0)->Arg(10)->Arg(1000)->Unit(benchmark::kNanosecond);

// Bytes allocated on DPDK's malloc heaps, every socket (memzones such as rte_ring's come from
// them too).
struct HeapUse {
    uint64_t bytes = 0, elements = 0;
};
HeapUse heap_use() {
    HeapUse u;
    for (unsigned i = 0; i < rte_socket_count(); ++i) {
        rte_malloc_socket_stats st{};
        if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0) {
            u.bytes += st.heap_allocsz_bytes;
            u.elements += st.alloc_count;
        }
    }
    return u;
}

int memory_per_flow(uint64_t flows) {
    const HeapUse before = heap_use();
    uint64_t table_bytes = 0, elements = 0;
    try {
        flow::FlowTable table("mem_flows", static_cast<uint32_t>(flows), SOCKET_ID_ANY,
                              flow::FlowTimeouts{});
        const HeapUse after = heap_use();
        table_bytes = after.bytes - before.bytes;
        elements = after.elements - before.elements;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_micro: %s\n", e.what());
        return 1;
    }
    const uint64_t records = sizeof(flow::FlowRecord) * flows;
    const double n = static_cast<double>(flows);
    std::printf("{\"flows\":%" PRIu64 ",\"heap_bytes\":%" PRIu64 ",\"allocations\":%" PRIu64
                ",\"bytes_per_flow\":%.1f,\"record_bytes_per_flow\":%zu,"
                "\"key_index_bytes_per_flow\":%.1f,\"formula_bytes_per_flow\":%zu}\n",
                flows, table_bytes, elements, static_cast<double>(table_bytes) / n,
                sizeof(flow::FlowRecord), static_cast<double>(table_bytes - records) / n,
                flow::FlowTable::bytes_per_flow());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<char*> bm_args = {argv[0]};
    std::vector<std::string> eal = {"bench_micro", "--no-huge", "-m", "6144", "--no-pci",
                                    "--no-shconf", "--no-telemetry", "--log-level=4", "-l", "0"};
    bool rest_is_eal = false;
    uint64_t mem_flows = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--") {
            rest_is_eal = true;
            eal = {"bench_micro"};
            continue;
        }
        if (!rest_is_eal && std::string(argv[i]) == "--memory-per-flow") {
            char* end = nullptr;
            mem_flows = i + 1 < argc ? std::strtoull(argv[i + 1], &end, 10) : 0;
            if (mem_flows < 8 || mem_flows > (1ull << 30) || end == nullptr || *end != '\0') {
                std::fprintf(stderr, "bench_micro: --memory-per-flow N: N from 8 to 2^30\n");
                return 2;
            }
            ++i;
            // The table's own size plus room (4x the formula).
            const uint64_t mb = 256 + mem_flows * 4 * flow::FlowTable::bytes_per_flow() / (1 << 20);
            eal = {"bench_micro", "--no-huge", "-m", std::to_string(mb), "--no-pci",
                   "--no-shconf", "--no-telemetry", "--log-level=4", "-l", "0"};
            continue;
        }
        (rest_is_eal ? (void)eal.push_back(argv[i]) : (void)bm_args.push_back(argv[i]));
    }
    std::vector<char*> eal_argv;
    for (auto& a : eal) eal_argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        std::fprintf(stderr, "bench_micro: EAL initialisation failed\n");
        return 1;
    }
    if (mem_flows != 0) {
        const int rc = memory_per_flow(mem_flows);
        rte_eal_cleanup();
        return rc;
    }
    int bm_argc = static_cast<int>(bm_args.size());
    benchmark::Initialize(&bm_argc, bm_args.data());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    rte_eal_cleanup();
    return 0;
}
