#include "metrics/exporter.hpp"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <prometheus/exposer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <limits>
#include <thread>
#include <type_traits>
#include <prometheus/metric_family.h>

namespace rstmon::metrics {

using classify::kCauseCount;
using classify::kSenderCount;
using classify::kStageCount;
using classify::kValidityCount;

uint64_t Totals::packets() const {
    uint64_t n = 0;
    for (uint64_t p : port_packets) n += p;
    return n;
}

uint64_t Totals::rst_by_cause(size_t c) const {
    uint64_t n = 0;
    for (size_t s = 0; s < kStageCount; ++s)
        for (size_t r = 0; r < kSenderCount; ++r)
            for (size_t v = 0; v < kServiceSlots; ++v) n += rst[c][s][r][v];
    return n;
}

uint64_t Totals::rst_by_stage(size_t s) const {
    uint64_t n = 0;
    for (size_t c = 0; c < kCauseCount; ++c)
        for (size_t r = 0; r < kSenderCount; ++r)
            for (size_t v = 0; v < kServiceSlots; ++v) n += rst[c][s][r][v];
    return n;
}

Totals sum(const std::vector<const LcoreStats*>& stats) {
    Totals t;
    sum_into(stats, t);
    return t;
}

void sum_into(const std::vector<const LcoreStats*>& stats, Totals& t) {
    static_assert(std::is_trivially_copyable_v<Totals>);
    std::memset(static_cast<void*>(&t), 0, sizeof t);  // no 100 KiB temporary on a small stack
    for (const LcoreStats* l : stats) {
        for (size_t c = 0; c < kCauseCount; ++c) {
            for (size_t s = 0; s < kStageCount; ++s)
                for (size_t r = 0; r < kSenderCount; ++r)
                    for (size_t v = 0; v < kServiceSlots; ++v)
                        t.rst[c][s][r][v] += l->rst[c][s][r][v].load();
            for (size_t v = 0; v < kValidityCount; ++v)
                t.rst_validity[c][v] += l->rst_validity[c][v].load();
        }
        for (size_t p = 0; p < kMaxPorts; ++p) {
            t.port_packets[p] += l->port_packets[p].load();
            t.port_bytes[p] += l->port_bytes[p].load();
        }
        for (size_t m = 0; m < packet::kMalformedCount; ++m) t.malformed[m] += l->malformed[m].load();
        for (size_t m = 0; m < packet::kIgnoredCount; ++m) t.ignored[m] += l->ignored[m].load();
        t.sliced += l->sliced.load();
        t.tcp_packets += l->tcp_packets.load();
        t.rst_packets += l->rst_packets.load();
        t.flows_created += l->flows_created.load();
        t.flows_active += l->flows_active.load();
        t.flows_expired += l->flows_expired.load();
        t.flows_evicted += l->flows_evicted.load();
        t.flow_table_full += l->flow_table_full.load();
        t.untracked_packets += l->untracked_packets.load();
        t.events_dropped += l->events_dropped.load();
        t.rst_finalized_early += l->rst_finalized_early.load();
        t.dispatch_dropped += l->dispatch_dropped.load();
        t.duplicates += l->duplicates.load();
        t.one_sided_flows += l->one_sided_flows.load();
        for (size_t p = 0; p < kMaxPorts; ++p) {
            t.tx_packets[p] += l->tx_packets[p].load();
            t.tx_dropped[p] += l->tx_dropped[p].load();
        }
        for (size_t o = 0; o < kOutcomeCount; ++o) t.connections[o] += l->connections[o].load();
        for (size_t c = 0; c < kCauseCount; ++c) {
            for (size_t b = 0; b < kIdleBuckets; ++b)
                t.rst_idle_bucket[c][b] += l->rst_idle_bucket[c][b].load();
            for (size_t b = 0; b < kAgeBuckets; ++b)
                t.rst_age_bucket[c][b] += l->rst_age_bucket[c][b].load();
            t.rst_idle_sum_us[c] += l->rst_idle_sum_us[c].load();
            t.rst_age_sum_us[c] += l->rst_age_sum_us[c].load();
        }
        for (size_t e = 0; e < packet::kEncapCount; ++e)
            for (size_t s = 0; s <= kMaxSessions; ++s) t.decap[e][s] += l->decap[e][s].load();
        for (size_t m = 0; m < match::kIdentMethodCount; ++m)
            t.service_identified[m] += l->service_identified[m].load();
        for (size_t r = 0; r < match::kSniResultCount; ++r)
            t.tls_names[r] += l->tls_names[r].load();
        for (size_t r = 0; r < match::kHttpHostResultCount; ++r)
            t.http_names[r] += l->http_names[r].load();
        t.match_pool_exhausted += l->match_pool_exhausted.load();
        t.match_names_evicted += l->match_names_evicted.load();
        t.match_scan_errors += l->match_scan_errors.load();
        t.match_buffers_in_use += l->match_buffers_in_use.load();
        for (size_t c = 0; c < kCauseCount; ++c)
            for (size_t g = 0; g < match::kMaxTriggers; ++g)
                t.rst_by_trigger[c][g] += l->rst_by_trigger[c][g].load();
    }
}

StatsCollectable::StatsCollectable(ExporterInfo info, std::vector<const LcoreStats*> stats)
    : info_(std::move(info)), stats_(std::move(stats)) {}

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

struct FamilyBuilder {
    MetricFamily f;
    const std::string& appliance;
    FamilyBuilder(std::string name, std::string help, MetricType type, const std::string& app)
        : appliance(app) {
        f.name = std::move(name);
        f.help = std::move(help);
        f.type = type;
    }
    void add(double value, std::vector<prometheus::ClientMetric::Label> labels = {}) {
        ClientMetric m;
        m.label.push_back({"appliance", appliance});
        for (auto& l : labels) m.label.push_back(std::move(l));
        if (f.type == MetricType::Counter)
            m.counter.value = value;
        else
            m.gauge.value = value;
        f.metric.push_back(std::move(m));
    }
};

}  // namespace

std::vector<MetricFamily> StatsCollectable::Collect() const {
    const auto totals = std::make_unique<Totals>();
    sum_into(stats_, *totals);
    const Totals& t = *totals;
    const std::string& app = info_.appliance;
    std::vector<MetricFamily> out;

    FamilyBuilder rst("rstmon_rst_total",
                      "TCP RSTs seen, by cause, connection stage, sender role and service",
                      MetricType::Counter, app);
    for (size_t c = 0; c < kCauseCount; ++c)
        for (size_t s = 0; s < kStageCount; ++s)
            for (size_t r = 0; r < kSenderCount; ++r)
                for (size_t v = 0; v < kServiceSlots && v < info_.service_names.size(); ++v)
                    if (t.rst[c][s][r][v] != 0)  // sparse: label sets bounded, zeros omitted
                        rst.add(static_cast<double>(t.rst[c][s][r][v]),
                                {{"cause", std::string(classify::kCauses[c].name)},
                                 {"stage", std::string(classify::kStages[s].name)},
                                 {"sender", std::string(classify::kSenders[r].name)},
                                 {"service", info_.service_names[v]}});
    out.push_back(std::move(rst.f));

    FamilyBuilder val("rstmon_rst_validity_total",
                      "TCP RSTs by cause and RFC 5961 sequence validity at the receiver",
                      MetricType::Counter, app);
    for (size_t c = 0; c < kCauseCount; ++c)
        for (size_t v = 0; v < kValidityCount; ++v)
            if (t.rst_validity[c][v] != 0)
                val.add(static_cast<double>(t.rst_validity[c][v]),
                        {{"cause", std::string(classify::kCauses[c].name)},
                         {"validity", std::string(classify::kValidities[v].name)}});
    out.push_back(std::move(val.f));

    FamilyBuilder pk("rstmon_packets_total", "Frames received, by port", MetricType::Counter, app);
    FamilyBuilder by("rstmon_bytes_total", "Bytes received (frame length), by port",
                     MetricType::Counter, app);
    for (size_t p = 0; p < info_.port_names.size() && p < kMaxPorts; ++p) {
        pk.add(static_cast<double>(t.port_packets[p]), {{"port", info_.port_names[p]}});
        by.add(static_cast<double>(t.port_bytes[p]), {{"port", info_.port_names[p]}});
    }
    out.push_back(std::move(pk.f));
    out.push_back(std::move(by.f));

    FamilyBuilder mal("rstmon_malformed_packets_total", "Frames rejected as malformed, by reason",
                      MetricType::Counter, app);
    for (size_t m = 0; m < packet::kMalformedCount; ++m)
        mal.add(static_cast<double>(t.malformed[m]),
                {{"reason", std::string(packet::malformed_name(static_cast<packet::Malformed>(m)))}});
    out.push_back(std::move(mal.f));

    FamilyBuilder ign("rstmon_ignored_packets_total",
                      "Well-formed frames that are not tracked (non-IP, non-TCP, IP fragments)",
                      MetricType::Counter, app);
    for (size_t m = 0; m < packet::kIgnoredCount; ++m)
        ign.add(static_cast<double>(t.ignored[m]),
                {{"reason", std::string(packet::ignored_name(static_cast<packet::Ignored>(m)))}});
    out.push_back(std::move(ign.f));

    auto single = [&](const char* name, const char* help, MetricType type, uint64_t v) {
        FamilyBuilder b(name, help, type, app);
        b.add(static_cast<double>(v));
        out.push_back(std::move(b.f));
    };
    single("rstmon_tcp_packets_total",
           "TCP segments parsed and tracked (SPAN copies: rstmon_duplicates_total instead)",
           MetricType::Counter, t.tcp_packets);
    single("rstmon_sliced_packets_total",
           "TCP frames shorter than their IP length (snaplen/slicing), tracked by the IP length",
           MetricType::Counter, t.sliced);
    single("rstmon_flows_active", "Flows currently tracked", MetricType::Gauge, t.flows_active);
    single("rstmon_flows_created_total", "Flows created", MetricType::Counter, t.flows_created);
    single("rstmon_flows_expired_total", "Flows removed by idle expiry", MetricType::Counter,
           t.flows_expired);
    single("rstmon_flow_table_full_total",
           "Times a new flow found the table full (SYNs then evict, other packets go untracked)",
           MetricType::Counter, t.flow_table_full);
    single("rstmon_untracked_packets_total", "TCP packets of flows the full table could not admit",
           MetricType::Counter, t.untracked_packets);
    single("rstmon_events_dropped_total",
           "RST event records lost to a full ring or the events rate limit (counters still count)",
           MetricType::Counter, t.events_dropped);

    single("rstmon_duplicates_total",
           "SPAN copies of a TCP segment already seen within dedup.window (same IP ID, seq, ack, "
           "flags, length and TCP checksum; TTL and L2 may differ), dropped before tracking",
           MetricType::Counter, t.duplicates);
    single("rstmon_one_sided_flows_total",
           "Flows that ended with segments from one side only (asymmetric routing or a one-way "
           "mirror): their RSTs lack the other side's evidence",
           MetricType::Counter, t.one_sided_flows);

    single("rstmon_rst_finalized_early_total",
           "RSTs made final before their episode's linger ended (pending queue full)",
           MetricType::Counter, t.rst_finalized_early);

    FamilyBuilder conns("rstmon_connections_total",
                        "Connections by how they ended (counted when their flow ends)",
                        MetricType::Counter, app);
    for (size_t o = 0; o < kOutcomeCount; ++o)
        conns.add(static_cast<double>(t.connections[o]), {{"outcome", std::string(kOutcomeNames[o])}});
    out.push_back(std::move(conns.f));

    FamilyBuilder ev("rstmon_flow_evictions_total", "Flows evicted before expiry, by reason",
                     MetricType::Counter, app);
    ev.add(static_cast<double>(t.flows_evicted), {{"reason", "table_full"}});
    out.push_back(std::move(ev.f));

    FamilyBuilder busy("rstmon_lcore_busy_ratio",
                       "Share of polling cycles spent on packets, by lcore (since start)",
                       MetricType::Gauge, app);
    for (size_t i = 0; i < stats_.size(); ++i) {
        const uint64_t poll = stats_[i]->poll_cycles.load();
        if (poll == 0 && i < info_.lcore_names.size() && info_.lcore_names[i] == "dispatch")
            continue;
        const double r = poll ? static_cast<double>(stats_[i]->busy_cycles.load()) / poll : 0.0;
        busy.add(r, {{"lcore", i < info_.lcore_names.size() ? info_.lcore_names[i]
                                                             : std::to_string(i)}});
    }
    out.push_back(std::move(busy.f));

    // Per worker: how evenly RSS or the dispatcher spreads the load (benchmark per-lcore rates).
    FamilyBuilder lpk("rstmon_lcore_packets_total", "Frames a worker lcore analysed, by lcore",
                      MetricType::Counter, app);
    for (size_t i = 0; i < stats_.size(); ++i) {
        if (i < info_.lcore_names.size() && info_.lcore_names[i] == "dispatch") continue;
        uint64_t n = 0;
        for (const auto& c : stats_[i]->port_packets) n += c.load();
        lpk.add(static_cast<double>(n), {{"lcore", i < info_.lcore_names.size() ? info_.lcore_names[i]
                                                                                : std::to_string(i)}});
    }
    out.push_back(std::move(lpk.f));

    // Per-cause histograms: only causes seen at least once, so the series stay few.
    auto histogram = [&](const char* name, const char* help, const auto& bounds,
                         const auto& buckets, const uint64_t* sums_us) {
        MetricFamily f;
        f.name = name;
        f.help = help;
        f.type = MetricType::Histogram;
        for (size_t c = 0; c < kCauseCount; ++c) {
            uint64_t cum = 0;
            ClientMetric m;
            m.label = {{"appliance", app}, {"cause", std::string(classify::kCauses[c].name)}};
            for (size_t b = 0; b <= bounds.size(); ++b) {
                cum += buckets[c][b];
                m.histogram.bucket.push_back(
                    {cum, b < bounds.size() ? bounds[b] : std::numeric_limits<double>::infinity()});
            }
            if (cum == 0) continue;
            m.histogram.sample_count = cum;
            m.histogram.sample_sum = static_cast<double>(sums_us[c]) / 1e6;
            f.metric.push_back(std::move(m));
        }
        out.push_back(std::move(f));
    };
    histogram("rstmon_rst_idle_seconds",
              "Silence of a tracked flow before its RST (the longer of the gap before the RST and "
              "the gap before the segment it answers), by cause",
              kIdleBucketsS, t.rst_idle_bucket, t.rst_idle_sum_us);
    histogram("rstmon_rst_flow_age_seconds", "Age of a tracked flow at its RST, by cause",
              kAgeBucketsS, t.rst_age_bucket, t.rst_age_sum_us);

    FamilyBuilder decap("rstmon_decap_packets_total",
                        "Frames that arrived inside a mirror tunnel, by encapsulation (outermost "
                        "ERSPAN/VXLAN/Geneve, else GRE, else MPLS) and configured mirror session",
                        MetricType::Counter, app);
    for (size_t e = 1; e < packet::kEncapCount; ++e)
        for (size_t s = 0; s <= kMaxSessions && s < std::max<size_t>(info_.session_names.size(), 1); ++s)
            if (s == 0 || t.decap[e][s] != 0)  // every encapsulation appears; named sessions when seen
                decap.add(static_cast<double>(t.decap[e][s]),
                          {{"encap", std::string(packet::encap_name(static_cast<packet::Encap>(e)))},
                           {"session", s < info_.session_names.size() ? info_.session_names[s] : "other"}});
    out.push_back(std::move(decap.f));

    // Services and triggers (pipeline/flow_match.hpp).
    FamilyBuilder ident("rstmon_service_identified_total",
                        "Flows whose service was decided from the client's first payload, by how: "
                        "sni/host (a name pattern matched), port (the port map), none (other)",
                        MetricType::Counter, app);
    for (size_t m = 0; m < match::kIdentMethodCount; ++m)
        ident.add(static_cast<double>(t.service_identified[m]),
                  {{"method", std::string(match::kIdentMethodNames[m])}});
    out.push_back(std::move(ident.f));
    FamilyBuilder names("rstmon_first_payload_names_total",
                        "Clients' first payloads that were a TLS ClientHello (kind=sni) or an "
                        "HTTP/1.x request (kind=host), by what name extraction found (incomplete: "
                        "the rest never came, the buffer filled or none was free)",
                        MetricType::Counter, app);
    for (size_t r = 0; r < match::kSniResultCount; ++r) {
        const auto result = static_cast<match::SniResult>(r);
        if (result != match::SniResult::not_tls)
            names.add(static_cast<double>(t.tls_names[r]),
                      {{"kind", "sni"}, {"result", std::string(match::sni_result_name(result))}});
    }
    for (size_t r = 0; r < match::kHttpHostResultCount; ++r) {
        const auto result = static_cast<match::HttpHostResult>(r);
        if (result != match::HttpHostResult::not_http)
            names.add(static_cast<double>(t.http_names[r]),
                      {{"kind", "host"},
                       {"result", std::string(match::http_host_result_name(result))}});
    }
    out.push_back(std::move(names.f));
    single("rstmon_match_pool_exhausted_total",
           "Flows whose first message spanned segments while no reassembly buffer was free "
           "(decided by port; raise match.pending_flows)",
           MetricType::Counter, t.match_pool_exhausted);
    single("rstmon_match_buffers_in_use",
           "Reassembly buffers held by flows whose first message is still incomplete",
           MetricType::Gauge, t.match_buffers_in_use);
    single("rstmon_match_names_evicted_total",
           "SNI/Host names of live flows pushed out of the name table (their RST events lack "
           "sni/host; raise match.names)",
           MetricType::Counter, t.match_names_evicted);
    single("rstmon_match_scan_errors_total",
           "Hyperscan scans that failed (a bug if not 0: the scan counted as no match)",
           MetricType::Counter, t.match_scan_errors);
    FamilyBuilder by_trigger("rstmon_rst_by_trigger_total",
                             "RSTs of flows whose first bytes matched a trigger, by cause and the "
                             "first matching trigger in config order",
                             MetricType::Counter, app);
    for (size_t c = 0; c < kCauseCount; ++c)
        for (size_t g = 0; g < match::kMaxTriggers && g < info_.trigger_names.size(); ++g)
            if (t.rst_by_trigger[c][g] != 0)  // sparse, as rstmon_rst_total
                by_trigger.add(static_cast<double>(t.rst_by_trigger[c][g]),
                               {{"cause", std::string(classify::kCauses[c].name)},
                                {"trigger", info_.trigger_names[g]}});
    out.push_back(std::move(by_trigger.f));

    FamilyBuilder fill("rstmon_flow_table_fill_ratio",
                       "Share of a worker's flow table in use (1 = full: SYNs evict, others untracked)",
                       MetricType::Gauge, app);
    FamilyBuilder cap("rstmon_flow_table_capacity", "Flows a worker's table holds at most",
                      MetricType::Gauge, app);
    for (size_t i = 0; i < stats_.size(); ++i) {
        const uint64_t capacity = stats_[i]->flow_capacity.load();
        if (capacity == 0) continue;  // the dispatch lcore has no table
        const std::string lcore =
            i < info_.lcore_names.size() ? info_.lcore_names[i] : std::to_string(i);
        fill.add(static_cast<double>(stats_[i]->flows_active.load()) / static_cast<double>(capacity),
                 {{"lcore", lcore}});
        cap.add(static_cast<double>(capacity), {{"lcore", lcore}});
    }
    out.push_back(std::move(fill.f));
    out.push_back(std::move(cap.f));

    single("rstmon_dispatch_dropped_total",
           "Frames lost because a worker's dispatch ring was full (software dispatch, live)",
           MetricType::Counter, t.dispatch_dropped);

    FamilyBuilder txp("rstmon_tx_packets_total", "Inline mode: frames forwarded out of a port",
                      MetricType::Counter, app);
    FamilyBuilder txd("rstmon_tx_dropped_total",
                      "Inline mode: frames a port's TX queue refused (lost in the bump)",
                      MetricType::Counter, app);
    for (size_t p = 0; p < info_.port_names.size() && p < kMaxPorts; ++p) {
        txp.add(static_cast<double>(t.tx_packets[p]), {{"port", info_.port_names[p]}});
        txd.add(static_cast<double>(t.tx_dropped[p]), {{"port", info_.port_names[p]}});
    }
    out.push_back(std::move(txp.f));
    out.push_back(std::move(txd.f));

    if (info_.nic_counters) {
        const auto nic = info_.nic_counters();
        FamilyBuilder missed("rstmon_nic_missed_packets_total",
                             "Frames the NIC dropped because no RX descriptor was free (imissed)",
                             MetricType::Counter, app);
        FamilyBuilder errors("rstmon_nic_errors_total", "Erroneous frames received (ierrors)",
                             MetricType::Counter, app);
        FamilyBuilder nombuf("rstmon_nic_rx_nombuf_total",
                             "RX mbuf allocation failures (rx_nombuf)", MetricType::Counter, app);
        for (size_t p = 0; p < nic.size() && p < info_.port_names.size(); ++p) {
            missed.add(static_cast<double>(nic[p].imissed), {{"port", info_.port_names[p]}});
            errors.add(static_cast<double>(nic[p].ierrors), {{"port", info_.port_names[p]}});
            nombuf.add(static_cast<double>(nic[p].rx_nombuf), {{"port", info_.port_names[p]}});
        }
        out.push_back(std::move(missed.f));
        out.push_back(std::move(errors.f));
        out.push_back(std::move(nombuf.f));
    }

    if (info_.reload != nullptr) {
        const ReloadStatus& r = *info_.reload;
        FamilyBuilder reloads("rstmon_config_reloads_total", "Config reloads (SIGHUP), by result",
                              MetricType::Counter, app);
        reloads.add(static_cast<double>(r.succeeded.load()), {{"result", "success"}});
        reloads.add(static_cast<double>(r.failed.load()), {{"result", "failure"}});
        out.push_back(std::move(reloads.f));
        single("rstmon_config_last_reload_successful",
               "1 if the last config load or reload succeeded (a failed one keeps the old config)",
               MetricType::Gauge, r.last_ok.load() ? 1 : 0);
        FamilyBuilder when("rstmon_config_last_reload_success_timestamp_seconds",
                           "Unix time of the last successful config load or reload",
                           MetricType::Gauge, app);
        when.add(r.last_success_s.load());
        out.push_back(std::move(when.f));
    }
    FamilyBuilder start("process_start_time_seconds", "Start time of the process since unix epoch",
                        MetricType::Gauge, app);
    start.add(info_.start_time_s);
    out.push_back(std::move(start.f));

    if (info_.extra_families) info_.extra_families(out);

    FamilyBuilder info("rstmon_build_info", "Build information; value is always 1",
                       MetricType::Gauge, app);
    info.add(1, {{"version", info_.version}, {"dpdk_version", info_.dpdk_version}});
    out.push_back(std::move(info.f));
    return out;
}

namespace {
// civetweb loads OpenSSL by dlopen("libssl.so"); with OpenSSL 3 it needs our compatibility module
// loaded first (see civetweb_openssl3.cpp). Once per process.
void load_civetweb_openssl3() {
    static void* handle = nullptr;
    if (handle != nullptr) return;
    std::string errors;
    for (const char* path : {RSTMON_CIVETWEB_OPENSSL3_BUILD, RSTMON_CIVETWEB_OPENSSL3_INSTALL}) {
        if (access(path, R_OK) != 0) continue;
        handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
        if (handle != nullptr) return;
        errors += std::string(" ") + dlerror();
    }
    throw std::runtime_error("TLS for metrics needs librstmon-civetweb-openssl3.so (looked in " +
                             std::string(RSTMON_CIVETWEB_OPENSSL3_BUILD) + " and " +
                             RSTMON_CIVETWEB_OPENSSL3_INSTALL + ")" + errors);
}
}  // namespace

MetricsServer::MetricsServer(const MetricsServerOptions& o,
                             std::shared_ptr<prometheus::Collectable> c)
    : collectable_(std::move(c)) {
    static CivetCallbacks callbacks{};
    // While the server starts (in this thread), civetweb's first complaint becomes the error
    // (one line: "cannot bind to 127.0.0.1:9580: 98 (Address already in use)").
    static thread_local std::string* start_error = nullptr;
    callbacks.log_message = [](const mg_connection*, const char* msg) {
        if (start_error != nullptr) {
            if (start_error->empty()) *start_error = msg;
        } else {
            std::fprintf(stderr, "civetweb: %s\n", msg);
        }
        return 1;
    };
    // civetweb marks a TLS listener with an "s" after the port.
    // Where to connect to wake the listener at stop: the listen address, loopback for "any".
    listen_host_ = o.listen.substr(0, o.listen.rfind(':'));
    if (listen_host_.size() >= 2 && listen_host_.front() == '[')
        listen_host_ = listen_host_.substr(1, listen_host_.size() - 2);
    if (listen_host_.empty() || listen_host_ == "0.0.0.0") listen_host_ = "127.0.0.1";
    if (listen_host_ == "::") listen_host_ = "::1";
    std::vector<std::string> options = {"listening_ports", o.listen + (o.tls_cert_file.empty() ? "" : "s"),
                                        "num_threads", "2"};
    if (!o.tls_cert_file.empty()) {
        load_civetweb_openssl3();
        options.insert(options.end(), {"ssl_certificate", o.tls_cert_file,
                                       "ssl_protocol_version", "4"});  // 4: TLS 1.2 and newer
    }
    // The exposer keeps its CivetServer private; civetweb hands us its context on start-up (in
    // this thread), so /top can be served by the same server.
    static thread_local const mg_context* started_ctx = nullptr;
    started_ctx = nullptr;
    callbacks.init_context = [](const mg_context* ctx) { started_ctx = ctx; };
    std::string error;
    start_error = &error;
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(options, &callbacks);
    } catch (const std::exception& e) {
        start_error = nullptr;
        throw std::runtime_error(error.empty() ? e.what() : error);
    }
    start_error = nullptr;
    if (!o.username.empty()) {
        // Compared in constant time: a scrape endpoint must not leak the password by timing.
        exposer_->RegisterAuth(
            [user = o.username, pass = o.password](const std::string& u, const std::string& p) {
                auto same = [](const std::string& a, const std::string& b) {
                    unsigned char diff = a.size() != b.size();
                    for (size_t i = 0; i < a.size(); ++i)
                        diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
                    return diff == 0;
                };
                const bool user_ok = same(u, user);
                return same(p, pass) && user_ok;
            },
            "rstmon");
    }
    exposer_->RegisterCollectable(collectable_);
    if (o.top_json)
        top_ = std::make_unique<JsonEndpoint>(const_cast<mg_context*>(started_ctx), "/top",
                                              o.top_json, o.username, o.password);
}

namespace {
// One TCP connection to the listener, closed at once (it only has to make poll(2) return).
void poke(const std::string& host, int port) {
    sockaddr_storage sa{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&sa);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&sa);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        len = sizeof *v6;
    } else {
        return;
    }
    const int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return;
    connect(fd, reinterpret_cast<sockaddr*>(&sa), len);  // in progress is enough
    close(fd);
}
}  // namespace

// civetweb's listener thread polls its sockets with a 2 s timeout and only then sees the stop
// flag: while it stops, a connection of our own every 20 ms wakes it, so a SIGTERM ends rstmon
// in milliseconds rather than up to 2 s.
MetricsServer::~MetricsServer() {
    if (!exposer_) return;
    exposer_->RemoveCollectable(collectable_);
    top_.reset();  // its handler goes before the server, as member order would have it
    const int listening = port();
    std::atomic<bool> stopped{false};
    std::thread waker([&] {
        while (!stopped.load()) {
            poke(listen_host_, listening);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    exposer_.reset();
    stopped.store(true);
    waker.join();
}

int MetricsServer::port() const {
    auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

}  // namespace rstmon::metrics
