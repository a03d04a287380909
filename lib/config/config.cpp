#include "config/config.hpp"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "metrics/lcore_stats.hpp"

namespace rstmon::config {
namespace {

std::string describe(const YAML::Node& n) {
    if (n.IsScalar()) return "'" + n.Scalar() + "'";
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a mapping";
    return "nothing";
}

// Walks one YAML mapping, remembering which keys were read, so unknown keys are reported.
class MapReader {
public:
    MapReader(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {
        if (node_ && !node_.IsNull() && !node_.IsMap())
            throw ConfigError(where("") + ": expected a mapping, got " + describe(node_));
    }

    std::string where(const std::string& key) const {
        if (path_.empty()) return key.empty() ? "top level" : key;
        return key.empty() ? path_ : path_ + "." + key;
    }

    YAML::Node child(const std::string& key) {
        seen_.insert(key);
        if (!node_ || node_.IsNull()) return YAML::Node();
        return node_[key];
    }

    template <typename T>
    void integer(const std::string& key, T& out, long long lo, long long hi) {
        YAML::Node n = child(key);
        if (!n || n.IsNull()) return;
        long long v;
        if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v))
            throw ConfigError(where(key) + ": expected an integer, got " + describe(n));
        if (v < lo || v > hi)
            throw ConfigError(where(key) + ": " + std::to_string(v) + " is out of range [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
        out = static_cast<T>(v);
    }

    void boolean(const std::string& key, bool& out) {
        YAML::Node n = child(key);
        if (!n || n.IsNull()) return;
        bool v;
        if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v))
            throw ConfigError(where(key) + ": expected true or false, got " + describe(n));
        out = v;
    }

    void string(const std::string& key, std::string& out) {
        YAML::Node n = child(key);
        if (!n || n.IsNull()) return;
        if (!n.IsScalar()) throw ConfigError(where(key) + ": expected a string, got " + describe(n));
        out = n.Scalar();
    }

    void duration(const std::string& key, double& out, double lo, double hi) {
        YAML::Node n = child(key);
        if (!n || n.IsNull()) return;
        if (!n.IsScalar())
            throw ConfigError(where(key) + ": expected a duration, got " + describe(n));
        double v;
        try {
            v = parse_duration(n.Scalar());
        } catch (const ConfigError& e) {
            throw ConfigError(where(key) + ": " + e.what());
        }
        if (v < lo || v > hi) {
            std::ostringstream m;
            m << where(key) << ": " << n.Scalar() << " is out of range [" << lo << "s, " << hi
              << "s]";
            throw ConfigError(m.str());
        }
        out = v;
    }

    // A byte count: an integer, or with a binary unit: 64KiB, 16MiB, 1GiB (K, M, G alike).
    void bytes(const std::string& key, uint64_t& out, uint64_t lo, uint64_t hi) {
        YAML::Node n = child(key);
        if (!n || n.IsNull()) return;
        if (!n.IsScalar()) throw ConfigError(where(key) + ": expected a size, got " + describe(n));
        const std::string& t = n.Scalar();
        size_t pos = 0;
        unsigned long long v = 0;
        try {
            v = std::stoull(t, &pos);
        } catch (...) {
            pos = 0;
        }
        std::string unit = pos ? t.substr(pos) : "?";
        uint64_t mul = 0;
        if (unit.empty() || unit == "B") mul = 1;
        else if (unit == "K" || unit == "KiB") mul = 1ull << 10;
        else if (unit == "M" || unit == "MiB") mul = 1ull << 20;
        else if (unit == "G" || unit == "GiB") mul = 1ull << 30;
        if (mul == 0 || t[0] == '-')
            throw ConfigError(where(key) + ": expected a size like 16MiB, got '" + t + "'");
        if (v > hi / mul || v * mul < lo || v * mul > hi)
            throw ConfigError(where(key) + ": " + t + " is out of range [" + std::to_string(lo) +
                              ", " + std::to_string(hi) + "] bytes");
        out = v * mul;
    }

    std::vector<std::string> strings(const std::string& key) {
        YAML::Node n = child(key);
        std::vector<std::string> out;
        if (!n || n.IsNull()) return out;
        if (!n.IsSequence())
            throw ConfigError(where(key) + ": expected a list of strings, got " + describe(n));
        for (size_t i = 0; i < n.size(); ++i) {
            if (!n[i].IsScalar())
                throw ConfigError(where(key) + "[" + std::to_string(i) +
                                  "]: expected a string, got " + describe(n[i]));
            out.push_back(n[i].Scalar());
        }
        return out;
    }

    void finish() const {
        if (!node_ || node_.IsNull()) return;
        for (const auto& kv : node_) {
            const std::string k = kv.first.Scalar();
            if (!seen_.count(k)) throw ConfigError(where(k) + ": unknown key");
        }
    }

private:
    YAML::Node node_;
    std::string path_;
    std::set<std::string> seen_;
};

bool valid_label(const std::string& s) {
    if (s.empty() || s.size() > 32) return false;
    for (char ch : s)
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            return false;
    return true;
}

// Bounds that keep start-up compilation quick and every pattern readable in one error line.
constexpr size_t kMaxPatternsPerList = 64;
constexpr size_t kMaxPatternLength = 1024;

void check_pattern_list(const std::string& where, const std::vector<std::string>& patterns) {
    if (patterns.size() > kMaxPatternsPerList)
        throw ConfigError(where + ": " + std::to_string(patterns.size()) + " patterns, at most " +
                          std::to_string(kMaxPatternsPerList));
    for (size_t j = 0; j < patterns.size(); ++j)
        if (patterns[j].size() > kMaxPatternLength)
            throw ConfigError(where + "[" + std::to_string(j) + "]: pattern of " +
                              std::to_string(patterns[j].size()) + " characters, at most " +
                              std::to_string(kMaxPatternLength));
}

Config parse(const YAML::Node& root) {
    Config c = defaults();
    MapReader r(root, "");
    r.string("appliance", c.appliance);
    r.string("log_level", c.log_level);
    c.eal_args = r.strings("eal_args");
    r.integer("workers", c.workers, 1, 64);

    if (YAML::Node ports = r.child("ports"); ports && !ports.IsNull()) {
        if (!ports.IsSequence())
            throw ConfigError("ports: expected a list of {name, device}, got " + describe(ports));
        c.ports.clear();
        for (size_t i = 0; i < ports.size(); ++i) {
            MapReader pr(ports[i], "ports[" + std::to_string(i) + "]");
            PortConfig p;
            pr.string("name", p.name);
            pr.string("device", p.device);
            pr.string("forward_to", p.forward_to);
            pr.finish();
            if (p.device.empty()) throw ConfigError(pr.where("device") + ": missing");
            if (p.name.empty()) p.name = "port" + std::to_string(i);
            c.ports.push_back(p);
        }
    }

    {
        MapReader fr(r.child("flow_table"), "flow_table");
        fr.integer("size", c.flow_table.size, kMinFlowTableSize, 1u << 30);
        fr.duration("handshake_timeout", c.flow_table.handshake_timeout_s, 1, 86400);
        fr.duration("established_timeout", c.flow_table.established_timeout_s, 1, 30 * 86400);
        fr.duration("closing_timeout", c.flow_table.closing_timeout_s, 1, 86400);
        fr.finish();
    }
    {
        MapReader rr(r.child("rx"), "rx");
        rr.integer("mbufs", c.rx.mbufs, 1023, 1u << 28);
        rr.integer("mbuf_size", c.rx.mbuf_size, 256, 65535);
        rr.integer("burst", c.rx.burst, 1, 512);
        rr.integer("descriptors", c.rx.descriptors, 64, 32768);
        rr.integer("dispatch_ring", c.rx.dispatch_ring, 64, 1u << 20);
        rr.finish();
    }
    {
        MapReader mr(r.child("metrics"), "metrics");
        mr.boolean("enabled", c.metrics.enabled);
        mr.string("listen", c.metrics.listen);
        {
            MapReader ar(mr.child("basic_auth"), "metrics.basic_auth");
            ar.string("username", c.metrics.auth_username);
            ar.string("password_file", c.metrics.auth_password_file);
            ar.finish();
        }
        {
            MapReader tr(mr.child("tls"), "metrics.tls");
            tr.string("cert_file", c.metrics.tls_cert_file);
            tr.finish();
        }
        mr.finish();
    }
    {
        MapReader er(r.child("events"), "events");
        er.string("path", c.events.path);
        er.integer("max_per_second", c.events.max_per_second, 0, 10000000);
        er.integer("burst", c.events.burst, 1, 10000000);
        er.integer("ring_size", c.events.ring_size, 64, 1u << 20);
        er.boolean("include_payload", c.events.include_payload);
        er.bytes("max_file_size", c.events.max_file_size, 4096, 1ull << 40);
        er.integer("max_files", c.events.max_files, 1, 100000);
        er.finish();
    }
    {
        MapReader fr(r.child("forensics"), "forensics");
        fr.boolean("enabled", c.forensics.enabled);
        if (YAML::Node cs = fr.child("causes"); cs && !cs.IsNull()) {
            c.forensics.causes.clear();
            if (cs.IsScalar() && cs.Scalar() == "all") {
                // every cause: the empty list
            } else if (cs.IsSequence()) {
                for (size_t i = 0; i < cs.size(); ++i) {
                    const std::string at = "forensics.causes[" + std::to_string(i) + "]";
                    if (!cs[i].IsScalar())
                        throw ConfigError(at + ": expected a cause name, got " + describe(cs[i]));
                    if (!classify::cause_from_name(cs[i].Scalar()))
                        throw ConfigError(at + ": '" + cs[i].Scalar() +
                                          "' is not a cause (rstmon --list-causes)");
                    c.forensics.causes.push_back(cs[i].Scalar());
                }
            } else {
                throw ConfigError("forensics.causes: expected 'all' or a list of cause names, got " +
                                  describe(cs));
            }
        }
        fr.integer("packets_before", c.forensics.packets_before, 0, 64);
        fr.integer("packets_after", c.forensics.packets_after, 1, 1024);
        fr.integer("snaplen", c.forensics.snaplen, 64, 65535);
        fr.integer("in_flight", c.forensics.in_flight, 1, 65536);
        fr.string("dir", c.forensics.dir);
        fr.bytes("max_file_size", c.forensics.max_file_size, 4096, 1ull << 40);
        fr.bytes("max_total_size", c.forensics.max_total_size, 8192, 1ull << 50);
        fr.finish();
    }
    {
        MapReader tr(r.child("top"), "top");
        tr.boolean("enabled", c.top.enabled);
        tr.integer("size", c.top.size, 1, 1000000);
        tr.integer("entries", c.top.entries, 1, 100000);
        tr.integer("ring_size", c.top.ring_size, 64, 1u << 20);
        tr.finish();
    }
    {
        MapReader lr(r.child("learned_timeouts"), "learned_timeouts");
        lr.duration("min_gap", c.learned_timeouts.min_gap_s, 0.001, 86400);
        lr.finish();
    }
    {
        MapReader dr(r.child("dedup"), "dedup");
        dr.duration("window", c.dedup.window_s, 0, 1);
        dr.integer("entries", c.dedup.entries, 64, 1u << 26);
        dr.finish();
    }
    {
        MapReader tr(r.child("thresholds"), "thresholds");
        tr.duration("idle_threshold", c.thresholds.idle_threshold_s, 0.1, 86400);
        tr.duration("linger", c.thresholds.linger_s, 0, 60);
        tr.duration("connect_late", c.thresholds.connect_late_s, 0.01, 600);
        tr.integer("ttl_tolerance", c.thresholds.ttl_tolerance, 0, 255);
        tr.integer("retransmission_run", c.thresholds.retransmission_run, 1, 255);
        tr.integer("keepalive_probes", c.thresholds.keepalive_probes, 0, 255);
        tr.finish();
    }
    if (YAML::Node svc = r.child("services"); svc && !svc.IsNull()) {
        if (!svc.IsSequence())
            throw ConfigError("services: expected a list of {name, ports, sni, host}, got " +
                              describe(svc));
        c.services.clear();
        for (size_t i = 0; i < svc.size(); ++i) {
            const std::string base = "services[" + std::to_string(i) + "]";
            MapReader sr(svc[i], base);
            ServiceConfig s;
            sr.string("name", s.name);
            YAML::Node ports = sr.child("ports");
            s.sni = sr.strings("sni");
            s.host = sr.strings("host");
            sr.finish();
            if (ports && !ports.IsNull() && !ports.IsSequence())
                throw ConfigError(base + ".ports: expected a list of port numbers, got " +
                                  describe(ports));
            for (size_t j = 0; ports && ports.IsSequence() && j < ports.size(); ++j) {
                long long v;
                if (!ports[j].IsScalar() || !YAML::convert<long long>::decode(ports[j], v))
                    throw ConfigError(base + ".ports[" + std::to_string(j) +
                                      "]: expected an integer, got " + describe(ports[j]));
                if (v < 1 || v > 65535)
                    throw ConfigError(base + ".ports[" + std::to_string(j) + "]: " +
                                      std::to_string(v) + " is out of range [1, 65535]");
                s.ports.push_back(static_cast<uint16_t>(v));
            }
            c.services.push_back(s);
        }
    }
    if (YAML::Node trg = r.child("triggers"); trg && !trg.IsNull()) {
        if (!trg.IsSequence())
            throw ConfigError("triggers: expected a list of {name, pattern}, got " + describe(trg));
        c.triggers.clear();
        for (size_t i = 0; i < trg.size(); ++i) {
            MapReader tr(trg[i], "triggers[" + std::to_string(i) + "]");
            TriggerConfig t;
            tr.string("name", t.name);
            tr.string("pattern", t.pattern);
            tr.finish();
            c.triggers.push_back(t);
        }
    }
    {
        MapReader mr(r.child("match"), "match");
        mr.integer("window", c.match.window, 0, 65536);
        mr.integer("pending_flows", c.match.pending_flows, 0, 65535);
        mr.integer("names", c.match.names, 0, 1u << 24);
        mr.finish();
    }
    {
        MapReader dr(r.child("decap"), "decap");
        auto ports = [&](const char* key, std::vector<uint16_t>& out) {
            YAML::Node n = dr.child(key);
            if (!n || n.IsNull()) return;
            const std::string where = std::string("decap.") + key;
            if (!n.IsSequence())
                throw ConfigError(where + ": expected a list of UDP ports, got " + describe(n));
            out.clear();
            for (size_t j = 0; j < n.size(); ++j) {
                long long v;
                if (!n[j].IsScalar() || !YAML::convert<long long>::decode(n[j], v) || v < 1 ||
                    v > 65535)
                    throw ConfigError(where + "[" + std::to_string(j) + "]: expected a port 1-65535, got " +
                                      describe(n[j]));
                out.push_back(static_cast<uint16_t>(v));
            }
        };
        ports("vxlan_ports", c.decap.vxlan_ports);
        ports("geneve_ports", c.decap.geneve_ports);
        dr.boolean("gre", c.decap.gre);
        dr.integer("max_tunnels", c.decap.max_tunnels, 0, 8);
        if (YAML::Node ss = dr.child("sessions"); ss && !ss.IsNull()) {
            if (!ss.IsSequence())
                throw ConfigError("decap.sessions: expected a list of {name, id}, got " + describe(ss));
            for (size_t i = 0; i < ss.size(); ++i) {
                MapReader sr(ss[i], "decap.sessions[" + std::to_string(i) + "]");
                Config::MirrorSession m;
                sr.string("name", m.name);
                sr.integer("id", m.id, 0, 0xFFFFFFFFll);
                sr.finish();
                c.decap.sessions.push_back(m);
            }
        }
        dr.finish();
    }
    r.finish();
    validate(c);
    check_patterns(c);
    return c;
}

}  // namespace

double parse_duration(const std::string& s) {
    size_t pos = 0;
    double v;
    try {
        v = std::stod(s, &pos);
    } catch (...) {
        throw ConfigError("expected a duration like 30s, 5m, 250ms, got '" + s + "'");
    }
    const std::string unit = s.substr(pos);
    double mul;
    if (unit.empty() || unit == "s")
        mul = 1;
    else if (unit == "ms")
        mul = 1e-3;
    else if (unit == "m")
        mul = 60;
    else if (unit == "h")
        mul = 3600;
    else
        throw ConfigError("unknown duration unit '" + unit + "' in '" + s + "' (use ms, s, m, h)");
    // Checked after the unit: "1e308h" is a finite number of hours but no finite number of seconds.
    if (!std::isfinite(v * mul)) throw ConfigError("duration '" + s + "' is not finite");
    return v * mul;
}

Config defaults() {
    Config c;
    c.services = {
        {"http", {80, 8080}}, {"https", {443, 8443}}, {"ssh", {22}},        {"smtp", {25, 587}},
        {"imap", {143, 993}}, {"pop3", {110, 995}},   {"ftp", {21}},        {"ldap", {389, 636}},
        {"dns", {53}},        {"mysql", {3306}},      {"postgres", {5432}}, {"redis", {6379}},
    };
    return c;
}

void validate(const Config& c) {
    static const std::set<std::string> levels = {"trace", "debug", "info",    "warning",
                                                 "warn",  "error", "critical", "off"};
    if (!levels.count(c.log_level))
        throw ConfigError("log_level: '" + c.log_level +
                          "' is not one of trace, debug, info, warning, error, critical, off");
    if (c.ports.size() > metrics::kMaxPorts)
        throw ConfigError("ports: " + std::to_string(c.ports.size()) + " ports, at most " +
                          std::to_string(metrics::kMaxPorts));
    if (c.services.size() > metrics::kMaxServices)
        throw ConfigError("services: " + std::to_string(c.services.size()) +
                          " services, at most " + std::to_string(metrics::kMaxServices));
    std::set<std::string> names;
    std::set<uint16_t> ports;
    for (size_t i = 0; i < c.services.size(); ++i) {
        const auto& s = c.services[i];
        const std::string base = "services[" + std::to_string(i) + "]";
        if (!valid_label(s.name) || s.name == "other")
            throw ConfigError(base + ".name: '" + s.name +
                              "' must be 1-32 characters of a-z 0-9 _ - and not 'other'");
        if (!names.insert(s.name).second)
            throw ConfigError(base + ".name: '" + s.name + "' is listed twice");
        if (s.ports.empty() && s.sni.empty() && s.host.empty())
            throw ConfigError(base + ": needs at least one of ports, sni, host");
        check_pattern_list(base + ".sni", s.sni);
        check_pattern_list(base + ".host", s.host);
        for (uint16_t p : s.ports)
            if (!ports.insert(p).second)
                throw ConfigError(base + ".ports: port " + std::to_string(p) +
                                  " already belongs to another service");
    }
    if (c.triggers.size() > match::kMaxTriggers)
        throw ConfigError("triggers: " + std::to_string(c.triggers.size()) + " triggers, at most " +
                          std::to_string(match::kMaxTriggers));
    std::set<std::string> tnames;
    for (size_t i = 0; i < c.triggers.size(); ++i) {
        const auto& t = c.triggers[i];
        const std::string base = "triggers[" + std::to_string(i) + "]";
        if (!valid_label(t.name))
            throw ConfigError(base + ".name: '" + t.name +
                              "' must be 1-32 characters of a-z 0-9 _ -");
        if (!tnames.insert(t.name).second)
            throw ConfigError(base + ".name: '" + t.name + "' is listed twice");
        if (t.pattern.empty()) throw ConfigError(base + ".pattern: missing");
        if (t.pattern.size() > kMaxPatternLength)
            throw ConfigError(base + ".pattern: pattern of " + std::to_string(t.pattern.size()) +
                              " characters, at most " + std::to_string(kMaxPatternLength));
    }
    std::set<std::string> pnames;
    for (size_t i = 0; i < c.ports.size(); ++i)
        if (!pnames.insert(c.ports[i].name).second)
            throw ConfigError("ports[" + std::to_string(i) + "].name: '" + c.ports[i].name +
                              "' is listed twice");
    for (size_t i = 0; i < c.ports.size(); ++i) {
        const std::string& to = c.ports[i].forward_to;
        if (to.empty()) continue;
        if (to == c.ports[i].name)
            throw ConfigError("ports[" + std::to_string(i) + "].forward_to: a port cannot forward "
                              "to itself");
        if (!pnames.count(to))
            throw ConfigError("ports[" + std::to_string(i) + "].forward_to: no port named '" + to +
                              "'");
    }
    if ((c.rx.dispatch_ring & (c.rx.dispatch_ring - 1)) != 0)
        throw ConfigError("rx.dispatch_ring: " + std::to_string(c.rx.dispatch_ring) +
                          " is not a power of two");
    const auto colon = c.metrics.listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == c.metrics.listen.size())
        throw ConfigError("metrics.listen: '" + c.metrics.listen + "' is not host:port");
    try {
        size_t pos;
        const long port = std::stol(c.metrics.listen.substr(colon + 1), &pos);
        if (pos != c.metrics.listen.size() - colon - 1 || port < 0 || port > 65535) throw 1;
    } catch (...) {
        throw ConfigError("metrics.listen: '" + c.metrics.listen + "' has no valid port");
    }
    for (const auto* list : {&c.decap.vxlan_ports, &c.decap.geneve_ports})
        if (list->size() > packet::DecapConfig::kMaxPorts)
            throw ConfigError(std::string("decap.") +
                              (list == &c.decap.vxlan_ports ? "vxlan_ports" : "geneve_ports") +
                              ": at most " + std::to_string(packet::DecapConfig::kMaxPorts) + " ports");
    for (uint16_t p : c.decap.vxlan_ports)
        for (uint16_t q : c.decap.geneve_ports)
            if (p == q)
                throw ConfigError("decap.geneve_ports: port " + std::to_string(p) +
                                  " is also in decap.vxlan_ports");
    if (c.decap.sessions.size() > metrics::kMaxSessions)
        throw ConfigError("decap.sessions: " + std::to_string(c.decap.sessions.size()) +
                          " sessions, at most " + std::to_string(metrics::kMaxSessions));
    {
        std::set<std::string> snames;
        std::set<uint32_t> sids;
        for (size_t i = 0; i < c.decap.sessions.size(); ++i) {
            const auto& m = c.decap.sessions[i];
            const std::string base = "decap.sessions[" + std::to_string(i) + "]";
            if (!valid_label(m.name) || m.name == "other")
                throw ConfigError(base + ".name: '" + m.name +
                                  "' must be 1-32 characters of a-z 0-9 _ - and not 'other'");
            if (!snames.insert(m.name).second)
                throw ConfigError(base + ".name: '" + m.name + "' is listed twice");
            if (!sids.insert(m.id).second)
                throw ConfigError(base + ".id: " + std::to_string(m.id) + " is listed twice");
        }
    }
    if (c.forensics.enabled && c.forensics.dir.empty())
        throw ConfigError("forensics.dir: empty (forensic captures need a directory)");
    if (c.forensics.max_total_size < 2 * c.forensics.max_file_size)
        throw ConfigError("forensics.max_total_size: must be at least twice max_file_size");
    if (c.metrics.auth_username.empty() != c.metrics.auth_password_file.empty())
        throw ConfigError("metrics.basic_auth: give both username and password_file, or neither");
    if (c.metrics.auth_username.find(':') != std::string::npos)
        throw ConfigError("metrics.basic_auth.username: must not contain ':'");
    if (c.thresholds.linger_s >= c.flow_table.closing_timeout_s)
        throw ConfigError("thresholds.linger: must be shorter than flow_table.closing_timeout");
    if ((c.events.ring_size & (c.events.ring_size - 1)) != 0)
        throw ConfigError("events.ring_size: " + std::to_string(c.events.ring_size) +
                          " is not a power of two");
}

match::MatchSpec match_spec(const Config& c) {
    match::MatchSpec spec;
    for (const ServiceConfig& s : c.services) spec.services.push_back({s.sni, s.host});
    for (const TriggerConfig& t : c.triggers) spec.triggers.push_back({t.name, t.pattern});
    return spec;
}

void check_patterns(const Config& c) {
    try {
        match::MatchDatabases::compile(match_spec(c));
    } catch (const match::PatternError& e) {
        throw ConfigError(e.what());
    }
}

Config load_string(const std::string& yaml) {
    YAML::Node root;
    try {
        root = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
        throw ConfigError("not valid YAML: " + std::string(e.what()));
    }
    return parse(root);
}

Config load_file(const std::string& path) {
    struct stat st{};
    if (stat(path.c_str(), &st) != 0)
        throw ConfigError("cannot read config file '" + path + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw ConfigError("config file '" + path + "' is not a regular file");
    std::ifstream in(path);
    if (!in) throw ConfigError("cannot read config file '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        return load_string(ss.str());
    } catch (const ConfigError& e) {
        throw ConfigError(path + ": " + e.what());
    }
}

}  // namespace rstmon::config
