#include "events/rst_event.hpp"

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
}  // namespace

std::string to_json(const RstEvent& e, const std::vector<std::string>& service_names,
                    const std::vector<std::string>& port_names) {
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
    return j.dump();
}

}  // namespace rstmon::events
