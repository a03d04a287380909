#include "events/rst_event.hpp"

#include "events/evidence.hpp"

#include <nlohmann/json.hpp>

namespace rstmon::events {

namespace {
// TCP flags as letters, in header bit order: F S R P A U E C.
std::string flags_string(uint8_t f) {
    static constexpr char letters[] = "FSRPAUEC";
    std::string s;
    for (int i = 0; i < 8; ++i)
        if (f & (1u << i)) s += letters[i];
    return s;
}
// The evidence fields (README "Event stream"); absent when there is nothing to say.
void add_evidence(nlohmann::ordered_json& j, const RstEvent& e, const std::string& pcap_prefix) {
    const bool flow = (e.missing & (1u << static_cast<unsigned>(Missing::flow))) == 0;
    j["hops"] = hops_from_ttl(e.ttl);
    if (e.flow_ttl) j["flow_ttl"] = e.flow_ttl;
    if (e.host_ttl) j["host_ttl"] = e.host_ttl;
    if (const uint8_t base = e.flow_ttl ? e.flow_ttl : e.host_ttl) {
        j["sender_hops"] = hops_from_ttl(base);
        j["hop_delta"] = hop_delta(e.ttl, base);
    }
    if (flow) {
        j["rexmit_run"] = e.rexmit_run;
        j["peer_rexmit_run"] = e.peer_rexmit_run;
        j["ka_probes"] = e.ka_probes;
        j["src_bytes"] = e.src_bytes;
        j["dst_bytes"] = e.dst_bytes;
    }
    if (e.missing) {
        auto& m = j["missing"] = nlohmann::ordered_json::array();
        for (size_t i = 0; i < kMissingCount; ++i)
            if (e.missing & (1u << i)) m.push_back(kMissingNames[i]);
    }
    if (e.payload_caplen) {
        static constexpr char hex[] = "0123456789abcdef";
        std::string s;
        for (uint8_t i = 0; i < e.payload_caplen; ++i) {
            s += hex[e.payload[i] >> 4];
            s += hex[e.payload[i] & 15];
        }
        j["payload"] = s;
    }
    if (e.pcap_file) {
        auto& p = j["pcap"];
        p["file"] = pcap_file_name(pcap_prefix, e.worker, e.pcap_file);
        p["first_packet"] = e.pcap_first;
        p["packets"] = e.pcap_packets;
        if (e.pcap_rst < e.pcap_packets) p["rst_packet"] = e.pcap_first + e.pcap_rst;
    }
}
}  // namespace

std::string to_json(const RstEvent& e, const std::vector<std::string>& service_names,
                    const std::vector<std::string>& port_names, const std::string& pcap_prefix,
                    const std::vector<std::string>& trigger_names) {
    using packet::tcpflag::ack;
    nlohmann::ordered_json j;
    j["ts"] = static_cast<double>(e.ts_ns / 1000) / 1e6;  // seconds, microsecond resolution
    j["src"] = packet::to_string(e.src, e.family);
    j["sport"] = e.sport;
    j["dst"] = packet::to_string(e.dst, e.family);
    j["dport"] = e.dport;
    j["cause"] = classify::name(e.cause);
    j["stage"] = classify::name(e.stage);
    j["sender"] = classify::name(e.sender);
    j["validity"] = classify::name(e.validity);
    j["service"] = e.service < service_names.size() ? service_names[e.service] : "other";
    // The name that decided the service (pipeline/flow_match.hpp), and the first trigger.
    if (e.name_kind == 1 || e.name_kind == 2)
        j[e.name_kind == 1 ? "sni" : "host"] = std::string(e.name, e.name_len);
    if (e.trigger != kNoTrigger && e.trigger < trigger_names.size())
        j["trigger"] = trigger_names[e.trigger];
    j["first"] = e.first != 0;
    j["seq"] = e.seq;
    if (e.flags & ack) j["ack"] = e.ack;
    j["flags"] = flags_string(e.flags);
    j["ttl"] = e.ttl;
    j["len"] = e.payload_len;
    if (e.vlan) j["vlan"] = e.vlan;
    // Microsecond resolution, as `ts`; the histograms bucket the same values.
    if (e.idle_ns != kUnknownNs) j["idle_s"] = static_cast<double>(e.idle_ns / 1000) / 1e6;
    if (e.age_ns != kUnknownNs) j["flow_age_s"] = static_cast<double>(e.age_ns / 1000) / 1e6;
    j["port"] = e.port < port_names.size() ? port_names[e.port] : std::to_string(e.port);
    add_evidence(j, e, pcap_prefix);
    return j.dump();
}

}  // namespace rstmon::events
