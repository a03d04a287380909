// rstmon's configuration: YAML file -> validated struct. Every key has a default; unknown keys,
// wrong types and out-of-range values are rejected with one line naming the key.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "match/match_db.hpp"

namespace rstmon::config {

// A refusal of the config, one line for the operator. Control bytes the file carried into the
// message (a key or value quoted back) are written as \xNN: a NUL would cut the message short
// (found by fuzz_config: a key starting with NUL gave an empty message), and an escape sequence
// would reach the operator's terminal.
struct ConfigError : std::runtime_error {
    explicit ConfigError(const std::string& what) : std::runtime_error(printable(what)) {}

    static std::string printable(const std::string& s) {
        std::string out;
        out.reserve(s.size());
        for (const char ch : s) {
            const auto c = static_cast<unsigned char>(ch);
            if (c >= 0x20 && c != 0x7f) {
                out += ch;
            } else {
                static const char hex[] = "0123456789abcdef";
                out += "\\x";
                out += hex[c >> 4];
                out += hex[c & 15];
            }
        }
        return out;
    }
};

struct PortConfig {
    std::string name;    // label in metrics (rstmon_packets_total{port=...})
    std::string device;  // DPDK device: a PCI address or a vdev string (net_pcap0,iface=eth1)
    std::string forward_to;  // inline mode: name of the port received frames are sent out of
};

struct ServiceConfig {
    std::string name;
    std::vector<uint16_t> ports;
    // Hyperscan patterns matched against the whole TLS server name / HTTP Host (port stripped),
    // case-insensitively, on the client's first payload (see match/match_db.hpp).
    std::vector<std::string> sni{};
    std::vector<std::string> host{};
};

// A payload pattern: bit i of a flow's trigger mask is triggers[i].
struct TriggerConfig {
    std::string name;
    std::string pattern;
};

// The smallest flow table (per worker) the config accepts; an offline replay never sizes its
// table below it either.
inline constexpr uint32_t kMinFlowTableSize = 1024;

struct Config {
    std::string appliance;  // empty = host name
    std::string log_level = "info";
    std::vector<std::string> eal_args;
    std::vector<PortConfig> ports;
    uint32_t workers = 1;

    struct {
        uint32_t size = 1u << 20;  // flows per worker
        double handshake_timeout_s = 30;
        double established_timeout_s = 3600;
        double closing_timeout_s = 60;
    } flow_table;

    struct {
        uint32_t mbufs = 16383;
        uint32_t mbuf_size = 2176;  // data room incl. 128 bytes headroom
        uint16_t burst = 32;
        uint16_t descriptors = 1024;
        uint32_t dispatch_ring = 4096;
    } rx;

    struct {
        bool enabled = true;
        std::string listen = "127.0.0.1:9580";
        // HTTP basic auth on /metrics when username is set; the password is the first line of
        // password_file (kept out of the config so the config can be world-readable).
        std::string auth_username;
        std::string auth_password_file;
        // HTTPS when set: a PEM file holding the private key and the certificate chain.
        std::string tls_cert_file;
    } metrics;

    struct {
        std::string path;  // JSON lines; empty = no event file
        uint32_t max_per_second = 1000;
        uint32_t burst = 1000;
        uint32_t ring_size = 4096;
        bool include_payload = false;  // RST payload bytes (hex, at most 64) in each event
        uint64_t max_file_size = 100ull << 20;  // live: rotate the event file at this size,
        uint32_t max_files = 10;                // keeping this many rotated files
    } events;

    // Forensic pcaps around RST episodes (forensics/recorder.hpp).
    struct {
        bool enabled = false;
        std::vector<std::string> causes;  // cause names; empty = all causes
        uint32_t packets_before = 4;
        uint32_t packets_after = 16;
        uint32_t snaplen = 128;
        uint32_t in_flight = 64;
        std::string dir = "/var/lib/rstmon/forensics";
        uint64_t max_file_size = 16ull << 20;
        uint64_t max_total_size = 1ull << 30;
    } forensics;

    // Heavy hitters by RST count served at /top and in the JSON report (top/top_summary.hpp).
    struct {
        bool enabled = true;
        uint32_t size = 1000;      // counters per summary
        uint32_t entries = 10;     // entries per list shown (/top?n= overrides)
        uint32_t ring_size = 4096;  // per-worker summary ring
    } top;

    struct {
        double min_gap_s = 10;  // idle gaps at least this long count when a flow survives them
    } learned_timeouts;

    // SPAN duplicates (flow/dedup.hpp): a copy of a segment seen within `window` of the first is
    // counted once (rstmon_duplicates_total) and dropped before tracking.
    struct {
        double window_s = 0.002;   // 0 = off
        uint32_t entries = 65536;  // segments remembered per worker (8 bytes each)
    } dedup;

    struct {
        double idle_threshold_s = 240;
        double linger_s = 2;
        double connect_late_s = 1;
        uint32_t ttl_tolerance = 0;
        uint32_t retransmission_run = 3;
        uint32_t keepalive_probes = 1;
    } thresholds;

    std::vector<ServiceConfig> services;
    std::vector<TriggerConfig> triggers;

    struct {
        uint32_t window = 4096;  // first payload bytes of each direction scanned for triggers
        uint32_t pending_flows = 1024;  // per worker: flows whose first message spans segments
        uint32_t names = 65536;  // per worker: SNI/Host names kept for RST events
    } match;

    // Mirror tunnels the parser opens (lib/packet DecapConfig) and named mirror sessions.
    struct MirrorSession {
        std::string name;  // `session` label of rstmon_decap_packets_total
        uint32_t id = 0;   // ERSPAN session id, VXLAN/Geneve VNI or GRE key
    };
    struct {
        std::vector<uint16_t> vxlan_ports = {4789};
        std::vector<uint16_t> geneve_ports = {6081};
        bool gre = true;
        uint32_t max_tunnels = 2;
        std::vector<MirrorSession> sessions;
    } decap;
};

// The defaults, identical to config/rstmon.yaml.
Config defaults();
// Loads and validates a YAML file over the defaults. Throws ConfigError.
Config load_file(const std::string& path);
Config load_string(const std::string& yaml);
// Checks cross-field constraints (also after command-line overrides). Throws ConfigError.
void validate(const Config& c);
// "30s", "5m", "1h", "250ms", or a plain number of seconds.
double parse_duration(const std::string& s);

// The services' sni/host patterns and the triggers, in config order, for
// match::MatchDatabases::compile.
match::MatchSpec match_spec(const Config& c);
// Compiles the patterns once to check them (load_file/load_string do it). Throws ConfigError
// with Hyperscan's message, one line naming the entry and the pattern.
void check_patterns(const Config& c);

}  // namespace rstmon::config
