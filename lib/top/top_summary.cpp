#include "top/top_summary.hpp"

#include <cstdio>
#include <cstring>

namespace rstmon::top {

std::string Endpoint::to_string() const {
    std::string s = packet::to_string(addr, family);
    if (prefix) return s + "/" + std::to_string(prefix);
    if (port == 0) return s;
    return (family == 6 ? "[" + s + "]" : s) + ":" + std::to_string(port);
}

size_t EndpointHash::operator()(const Endpoint& e) const {
    uint64_t x, y;
    std::memcpy(&x, e.addr.b.data(), 8);
    std::memcpy(&y, e.addr.b.data() + 8, 8);
    uint64_t h = x * 0x9e3779b97f4a7c15ull;
    h ^= y + 0xbf58476d1ce4e5b9ull + (h << 6) + (h >> 2);
    h ^= (static_cast<uint64_t>(e.port) << 16 | static_cast<uint64_t>(e.family) << 8 | e.prefix);
    h *= 0x94d049bb133111ebull;
    return static_cast<size_t>(h ^ (h >> 31));
}

namespace {
Endpoint host(const packet::IpAddr& a, uint8_t family, uint16_t port = 0) {
    Endpoint e;
    e.addr = a;
    e.family = family;
    e.port = port;
    return e;
}
// The server's /24 (IPv4) or /64 (IPv6): where a spike from many hosts of one subnet shows.
Endpoint prefix_of(const packet::IpAddr& a, uint8_t family) {
    Endpoint e;
    e.family = family;
    e.prefix = family == 6 ? 64 : 24;
    std::memcpy(e.addr.b.data(), a.b.data(), e.prefix / 8);
    return e;
}
}  // namespace

TopSummary::TopSummary(size_t size, std::vector<std::string> service_names)
    : size_(size ? size : 1),
      service_names_(std::move(service_names)),
      all_(size_),
      learned_(service_names_.size() ? service_names_.size() : 1) {}

void TopSummary::add_to(Summaries& s, const Record& r) {
    s.rsts++;
    if (!r.roles_known) {
        s.unknown_roles++;
        return;
    }
    s.servers.add(host(r.server, r.family, r.server_port));
    s.clients.add(host(r.client, r.family));
    s.prefixes.add(prefix_of(r.server, r.family));
}

void TopSummary::add(const Record& r) {
    std::lock_guard<std::mutex> lock(mu_);
    LearnedTimeout& l = learned_[r.service < learned_.size() ? r.service : 0];
    if (r.kind == RecordKind::survived_gap) {
        l.survived++;
        if (r.gap_ns > l.survived_max_ns) l.survived_max_ns = r.gap_ns;
        return;
    }
    if (r.cause >= classify::kCauseCount) return;
    if (static_cast<classify::Cause>(r.cause) == classify::Cause::idle_timeout &&
        r.gap_ns != UINT64_MAX) {
        l.resets++;
        if (r.gap_ns < l.reset_min_ns) l.reset_min_ns = r.gap_ns;
    }
    add_to(all_, r);
    auto& c = by_cause_[r.cause];
    if (!c) c = std::make_unique<Summaries>(size_);
    add_to(*c, r);
}

nlohmann::ordered_json TopSummary::summary_json(const Summaries& s, size_t n) {
    nlohmann::ordered_json j;
    j["rst"] = s.rsts;
    if (s.unknown_roles) j["unknown_roles"] = s.unknown_roles;
    auto list = [n](const SpaceSaving<Endpoint, EndpointHash>& ss) {
        nlohmann::ordered_json a = nlohmann::ordered_json::array();
        for (const auto& e : ss.top(n))
            a.push_back({{"key", e.key.to_string()}, {"rst", e.count}, {"error", e.error}});
        return a;
    };
    j["servers"] = list(s.servers);
    j["clients"] = list(s.clients);
    j["server_prefixes"] = list(s.prefixes);
    return j;
}

std::string TopSummary::describe(const std::string& service, const LearnedTimeout& l) {
    char buf[320];
    const double lo = static_cast<double>(l.survived_max_ns) / 1e9;
    const double hi = static_cast<double>(l.reset_min_ns) / 1e9;
    if (l.resets && l.survived && l.survived_max_ns < l.reset_min_ns)
        std::snprintf(buf, sizeof buf,
                      "connections to `%s` idle >= %.1f s are reset; idle %.1f s survived: a "
                      "middlebox times them out after between %.1f and %.1f s",
                      service.c_str(), hi, lo, lo, hi);
    else if (l.resets && l.survived)
        std::snprintf(buf, sizeof buf,
                      "connections to `%s` were reset after %.1f s idle, yet others survived "
                      "%.1f s: not one timeout (several middleboxes or paths?)",
                      service.c_str(), hi, lo);
    else if (l.resets)
        std::snprintf(buf, sizeof buf, "connections to `%s` idle >= %.1f s are reset",
                      service.c_str(), hi);
    else if (l.survived)
        std::snprintf(buf, sizeof buf,
                      "connections to `%s` survive %.1f s idle (no idle reset seen)",
                      service.c_str(), lo);
    else
        return {};
    return buf;
}

std::vector<LearnedTimeout> TopSummary::learned() const {
    std::lock_guard<std::mutex> lock(mu_);
    return learned_;
}

nlohmann::ordered_json TopSummary::to_json(size_t n, int cause, uint64_t dropped) const {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::ordered_json j;
    j["size"] = size_;
    j["dropped"] = dropped;
    if (cause < 0) {
        j["all"] = summary_json(all_, n);
        auto& causes = j["causes"] = nlohmann::ordered_json::object();
        for (size_t c = 0; c < classify::kCauseCount; ++c)
            if (by_cause_[c]) causes[std::string(classify::kCauses[c].name)] = summary_json(*by_cause_[c], n);
    } else if (static_cast<size_t>(cause) < classify::kCauseCount) {
        auto& causes = j["causes"] = nlohmann::ordered_json::object();
        const auto& s = by_cause_[static_cast<size_t>(cause)];
        causes[std::string(classify::kCauses[static_cast<size_t>(cause)].name)] =
            s ? summary_json(*s, n) : summary_json(Summaries(1), n);
    }
    auto& lt = j["learned_idle_timeouts"] = nlohmann::ordered_json::array();
    for (size_t s = 0; s < learned_.size(); ++s) {
        const LearnedTimeout& l = learned_[s];
        if (!l.survived && !l.resets) continue;
        nlohmann::ordered_json e;
        e["service"] = s < service_names_.size() ? service_names_[s] : "other";
        e["lower_s"] = l.survived ? nlohmann::ordered_json(static_cast<double>(l.survived_max_ns) / 1e9)
                                  : nlohmann::ordered_json(nullptr);
        e["upper_s"] = l.resets ? nlohmann::ordered_json(static_cast<double>(l.reset_min_ns) / 1e9)
                                : nlohmann::ordered_json(nullptr);
        e["survived_gaps"] = l.survived;
        e["reset_gaps"] = l.resets;
        e["consistent"] = !(l.survived && l.resets) || l.survived_max_ns < l.reset_min_ns;
        e["text"] = describe(e["service"].get<std::string>(), l);
        lt.push_back(std::move(e));
    }
    return j;
}

void TopSummary::append_metrics(std::vector<prometheus::MetricFamily>& out,
                                const std::string& appliance) const {
    prometheus::MetricFamily f;
    f.name = "rstmon_learned_idle_timeout_seconds";
    f.help = "Idle timeout of a middlebox on the path, learned per service: lower = longest idle "
             "gap a connection survived, upper = shortest idle gap that ended in an idle_timeout "
             "RST (the timeout lies in (lower, upper])";
    f.type = prometheus::MetricType::Gauge;
    const auto learned = this->learned();
    for (size_t s = 0; s < learned.size(); ++s) {
        const std::string name = s < service_names_.size() ? service_names_[s] : "other";
        auto gauge = [&](const char* bound, uint64_t ns) {
            prometheus::ClientMetric m;
            m.label = {{"appliance", appliance}, {"service", name}, {"bound", bound}};
            m.gauge.value = static_cast<double>(ns) / 1e9;
            f.metric.push_back(std::move(m));
        };
        if (learned[s].survived) gauge("lower", learned[s].survived_max_ns);
        if (learned[s].resets) gauge("upper", learned[s].reset_min_ns);
    }
    out.push_back(std::move(f));
}

}  // namespace rstmon::top
