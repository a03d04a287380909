#include "metrics/exporter.hpp"

#include <CivetServer.h>
#include <prometheus/exposer.h>

#include <cstdio>
#include <cstring>
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
        for (size_t p = 0; p < kMaxPorts; ++p) {
            t.tx_packets[p] += l->tx_packets[p].load();
            t.tx_dropped[p] += l->tx_dropped[p].load();
        }
        for (size_t o = 0; o < kOutcomeCount; ++o) t.connections[o] += l->connections[o].load();
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
    single("rstmon_tcp_packets_total", "TCP segments parsed", MetricType::Counter, t.tcp_packets);
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

    FamilyBuilder info("rstmon_build_info", "Build information; value is always 1",
                       MetricType::Gauge, app);
    info.add(1, {{"version", info_.version}, {"dpdk_version", info_.dpdk_version}});
    out.push_back(std::move(info.f));
    return out;
}

MetricsServer::MetricsServer(const std::string& listen, std::shared_ptr<prometheus::Collectable> c)
    : collectable_(std::move(c)) {
    static CivetCallbacks callbacks{};
    callbacks.log_message = [](const mg_connection*, const char* msg) {
        std::fprintf(stderr, "civetweb: %s\n", msg);
        return 1;
    };
    exposer_ = std::make_unique<prometheus::Exposer>(listen, 2, &callbacks);
    exposer_->RegisterCollectable(collectable_);
}

MetricsServer::~MetricsServer() {
    if (exposer_) exposer_->RemoveCollectable(collectable_);
}

int MetricsServer::port() const {
    auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

}  // namespace rstmon::metrics
