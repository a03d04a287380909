#include "report.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

namespace rstmon::app {

using classify::kCauseCount;
using classify::kSenderCount;
using classify::kStageCount;

namespace {
uint64_t total_malformed(const metrics::Totals& t) {
    uint64_t n = 0;
    for (uint64_t m : t.malformed) n += m;
    return n;
}
uint64_t total_ignored(const metrics::Totals& t) {
    uint64_t n = 0;
    for (uint64_t m : t.ignored) n += m;
    return n;
}
uint64_t rst_total(const metrics::Totals& t) {
    uint64_t n = 0;
    for (size_t c = 0; c < kCauseCount; ++c) n += t.rst_by_cause(c);
    return n;
}
uint64_t rst_by_service(const metrics::Totals& t, size_t v) {
    uint64_t n = 0;
    for (size_t c = 0; c < kCauseCount; ++c)
        for (size_t s = 0; s < kStageCount; ++s)
            for (size_t r = 0; r < kSenderCount; ++r) n += t.rst[c][s][r][v];
    return n;
}
uint64_t rst_by_trigger(const metrics::Totals& t, size_t g) {
    uint64_t n = 0;
    for (size_t c = 0; c < kCauseCount; ++c) n += t.rst_by_trigger[c][g];
    return n;
}
}  // namespace

std::string text_report(const metrics::Totals& t, const ReportContext& ctx) {
    std::ostringstream o;
    char line[256];
    o << "rstmon report: " << ctx.source;
    if (!ctx.link_type.empty()) o << " (" << ctx.link_type << ")";
    o << "\n";
    std::snprintf(line, sizeof line,
                  "  frames %llu  tcp %llu  rst %llu  flows %llu  malformed %llu  ignored %llu\n\n",
                  (unsigned long long)t.packets(), (unsigned long long)t.tcp_packets,
                  (unsigned long long)rst_total(t), (unsigned long long)t.flows_created,
                  (unsigned long long)total_malformed(t), (unsigned long long)total_ignored(t));
    o << line;
    const uint64_t all = rst_total(t);
    std::snprintf(line, sizeof line, "  %-24s %8s %7s %8s %8s %8s\n", "cause", "rst", "share",
                  "client", "server", "unknown");
    o << line;
    for (size_t c = 0; c < kCauseCount; ++c) {
        const uint64_t n = t.rst_by_cause(c);
        if (n == 0) continue;
        uint64_t by_sender[kSenderCount] = {};
        for (size_t s = 0; s < kStageCount; ++s)
            for (size_t r = 0; r < kSenderCount; ++r)
                for (size_t v = 0; v < metrics::kServiceSlots; ++v) by_sender[r] += t.rst[c][s][r][v];
        std::snprintf(line, sizeof line, "  %-24s %8llu %6.1f%% %8llu %8llu %8llu\n",
                      std::string(classify::kCauses[c].name).c_str(), (unsigned long long)n,
                      all ? 100.0 * n / all : 0.0, (unsigned long long)by_sender[0],
                      (unsigned long long)by_sender[1], (unsigned long long)by_sender[2]);
        o << line;
    }
    if (all == 0) o << "  (no RST seen)\n";
    o << "\n";
    std::snprintf(line, sizeof line, "  %-24s %8s\n", "stage", "rst");
    o << line;
    for (size_t s = 0; s < kStageCount; ++s) {
        const uint64_t n = t.rst_by_stage(s);
        if (n == 0) continue;
        std::snprintf(line, sizeof line, "  %-24s %8llu\n",
                      std::string(classify::kStages[s].name).c_str(), (unsigned long long)n);
        o << line;
    }
    // Services (port map, SNI/Host) and triggers: only those with RSTs.
    bool header = false;
    for (size_t v = 0; v < ctx.service_names.size() && v < metrics::kServiceSlots; ++v) {
        const uint64_t n = rst_by_service(t, v);
        if (n == 0) continue;
        if (!header) {
            std::snprintf(line, sizeof line, "\n  %-24s %8s\n", "service", "rst");
            o << line;
            header = true;
        }
        std::snprintf(line, sizeof line, "  %-24s %8llu\n", ctx.service_names[v].c_str(),
                      (unsigned long long)n);
        o << line;
    }
    header = false;
    for (size_t g = 0; g < ctx.trigger_names.size() && g < match::kMaxTriggers; ++g) {
        const uint64_t n = rst_by_trigger(t, g);
        if (n == 0) continue;
        if (!header) {
            std::snprintf(line, sizeof line, "\n  %-24s %8s\n", "trigger", "rst");
            o << line;
            header = true;
        }
        std::snprintf(line, sizeof line, "  %-24s %8llu\n", ctx.trigger_names[g].c_str(),
                      (unsigned long long)n);
        o << line;
    }
    o << "\n  connections ended:";
    for (size_t i = 0; i < metrics::kOutcomeCount; ++i)
        o << "  " << metrics::kOutcomeNames[i] << " " << t.connections[i];
    o << "\n";
    if (total_malformed(t) != 0) {
        o << "\n  malformed frames by reason:\n";
        for (size_t m = 0; m < packet::kMalformedCount; ++m)
            if (t.malformed[m] != 0)
                o << "    " << packet::malformed_name(static_cast<packet::Malformed>(m)) << " "
                  << t.malformed[m] << "\n";
    }
    if (t.duplicates) o << "\n  SPAN duplicates dropped: " << t.duplicates << "\n";
    if (t.one_sided_flows) o << "\n  one-sided flows: " << t.one_sided_flows << "\n";
    if (t.events_dropped) o << "\n  RST events dropped: " << t.events_dropped << "\n";
    if (ctx.event_write_errors)
        o << "\n  RST events not written (file errors): " << ctx.event_write_errors << "\n";
    return o.str();
}

std::string json_report(const metrics::Totals& t, const ReportContext& ctx) {
    nlohmann::ordered_json j;
    j["packets"] = t.packets();
    j["tcp_packets"] = t.tcp_packets;
    j["rst"] = rst_total(t);
    nlohmann::ordered_json causes, stages, senders, validity, malformed, ignored;
    for (size_t c = 0; c < kCauseCount; ++c)
        causes[std::string(classify::kCauses[c].name)] = t.rst_by_cause(c);
    for (size_t s = 0; s < kStageCount; ++s)
        stages[std::string(classify::kStages[s].name)] = t.rst_by_stage(s);
    for (size_t r = 0; r < kSenderCount; ++r) {
        uint64_t n = 0;
        for (size_t c = 0; c < kCauseCount; ++c)
            for (size_t s = 0; s < kStageCount; ++s)
                for (size_t v = 0; v < metrics::kServiceSlots; ++v) n += t.rst[c][s][r][v];
        senders[std::string(classify::kSenders[r].name)] = n;
    }
    for (size_t v = 0; v < classify::kValidityCount; ++v) {
        uint64_t n = 0;
        for (size_t c = 0; c < kCauseCount; ++c) n += t.rst_validity[c][v];
        validity[std::string(classify::kValidities[v].name)] = n;
    }
    for (size_t m = 0; m < packet::kMalformedCount; ++m)
        malformed[std::string(packet::malformed_name(static_cast<packet::Malformed>(m)))] =
            t.malformed[m];
    for (size_t m = 0; m < packet::kIgnoredCount; ++m)
        ignored[std::string(packet::ignored_name(static_cast<packet::Ignored>(m)))] = t.ignored[m];
    j["causes"] = causes;
    j["stages"] = stages;
    j["senders"] = senders;
    j["validity"] = validity;
    j["malformed"] = malformed;
    j["ignored"] = ignored;
    nlohmann::ordered_json conns;
    for (size_t o = 0; o < metrics::kOutcomeCount; ++o)
        conns[std::string(metrics::kOutcomeNames[o])] = t.connections[o];
    j["connections"] = conns;
    j["flows_created"] = t.flows_created;
    nlohmann::ordered_json services, triggers, identified;
    for (size_t v = 0; v < ctx.service_names.size() && v < metrics::kServiceSlots; ++v)
        services[ctx.service_names[v]] = rst_by_service(t, v);
    for (size_t g = 0; g < ctx.trigger_names.size() && g < match::kMaxTriggers; ++g)
        triggers[ctx.trigger_names[g]] = rst_by_trigger(t, g);
    for (size_t m = 0; m < match::kIdentMethodCount; ++m)
        identified[std::string(match::kIdentMethodNames[m])] = t.service_identified[m];
    if (!ctx.service_names.empty()) j["services"] = services;  // RSTs by service
    if (!ctx.trigger_names.empty()) j["triggers"] = triggers;  // RSTs by first trigger
    j["service_identified"] = identified;                      // flows, by how
    j["duplicates"] = t.duplicates;            // SPAN copies dropped (flow/dedup.hpp)
    j["one_sided_flows"] = t.one_sided_flows;  // flows seen one way only
    j["untracked_packets"] = t.untracked_packets;
    j["events_dropped"] = t.events_dropped;
    // What the identities of the hardening tests need: every frame is tcp, ignored or malformed;
    // RST segments seen equal RSTs counted; flows pushed out of a full table.
    j["rst_packets"] = t.rst_packets;
    j["sliced_packets"] = t.sliced;
    j["flows_evicted"] = t.flows_evicted;
    j["flow_table_full"] = t.flow_table_full;
    j["dispatch_dropped"] = t.dispatch_dropped;
    j["event_write_errors"] = ctx.event_write_errors;
    j["source"] = ctx.source;
    if (!ctx.link_type.empty()) j["link_type"] = ctx.link_type;
    if (!ctx.top_json.empty()) j["top"] = nlohmann::ordered_json::parse(ctx.top_json);
    return j.dump() + "\n";
}

}  // namespace rstmon::app
