// rstmon: tells operators why TCP connections are reset.
// main only orchestrates: options, config, EAL, engine, control loop, report, teardown.
#include <CLI/CLI.hpp>
#include <sched.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "capture_info.hpp"
#include "config/config.hpp"
#include "dpdk/eal.hpp"
#include "events/rst_event.hpp"
#include "metrics/exporter.hpp"
#include "report.hpp"

namespace {

using namespace rstmon;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_quit{false};
std::atomic<bool> g_reload{false};
void on_signal(int) { g_quit.store(true); }
void on_sighup(int) { g_reload.store(true); }

constexpr int kExitUsage = 2;  // bad options, config or input file
constexpr int kExitRuntime = 1;

struct Options {
    std::string config_path;
    std::string pcap;
    std::string events;
    std::string report = "text";
    std::string metrics_listen;
    std::string log_level;
    double duration = 0;
    bool serve = false;
    bool version = false;
    bool list_causes = false;
    uint32_t workers = 0;
    std::vector<std::string> eal;
};

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int i = 0; i < CPU_SETSIZE; ++i)
            if (CPU_ISSET(i, &set)) cpus.push_back(i);
    if (cpus.empty()) cpus.push_back(0);
    return cpus;
}

// Free hugepage memory in MiB, 0 when none is usable (not mounted or none reserved).
uint64_t free_hugepage_mb() {
    std::ifstream mounts("/proc/mounts");
    std::string line;
    bool mounted = false;
    while (std::getline(mounts, line))
        if (line.find(" hugetlbfs ") != std::string::npos) mounted = true;
    if (!mounted) return 0;
    std::ifstream mi("/proc/meminfo");
    uint64_t free_pages = 0, page_kb = 0;
    std::string key;
    while (mi >> key) {
        uint64_t v;
        if (key == "HugePages_Free:" && mi >> v) free_pages = v;
        else if (key == "Hugepagesize:" && mi >> v) page_kb = v;
    }
    return free_pages * page_kb / 1024;
}

// EAL arguments when the user gave none: lcores for main + workers, hugepages when enough are
// free (else --no-huge with a sized -m), no shared config so parallel runs do not collide.
std::vector<std::string> default_eal_args(const config::Config& c, bool offline,
                                          const std::string& log_level) {
    std::vector<std::string> a = {"rstmon"};
    const auto cpus = allowed_cpus();
    // Main lcore + workers (+ the software dispatcher, needed when the ports cannot hash
    // symmetrically). More lcores than CPUs share them (lcore@cpu): it works, but slowly.
    const unsigned n = 1 + dpdk::Engine::lcores_needed(c.workers, true);
    if (n > cpus.size())
        spdlog::warn("{} lcores on {} CPU(s): they will share CPUs (give EAL -l to choose)", n,
                     cpus.size());
    std::string lcores;
    for (unsigned i = 0; i < n; ++i)
        lcores += (i ? "," : "") + std::to_string(i) + "@" + std::to_string(cpus[i % cpus.size()]);
    a.push_back("--lcores=" + lcores);
    if (offline) a.push_back("--no-pci");
    const uint64_t need_mb =
        64 + static_cast<uint64_t>(c.rx.mbufs) * (c.rx.mbuf_size + 320) / (1 << 20) +
        static_cast<uint64_t>(c.workers) *
            (static_cast<uint64_t>(c.flow_table.size) * 2 * flow::FlowTable::bytes_per_flow() /
                 (1 << 20) +
             8);
    if (free_hugepage_mb() >= need_mb + 64) {
        a.push_back("--in-memory");
    } else {
        a.push_back("--no-huge");
        a.push_back("-m");
        a.push_back(std::to_string(need_mb + 128));
        a.push_back("--no-shconf");
    }
    a.push_back("--no-telemetry");
    a.push_back("--log-level=" + std::string(log_level == "debug" || log_level == "trace" ? "7" : "4"));
    return a;
}

spdlog::level::level_enum level_of(const std::string& s) {
    if (s == "warn") return spdlog::level::warn;
    return spdlog::level::from_str(s);
}

class EventWriter {
public:
    EventWriter(const std::string& path, std::vector<std::string> services,
                std::vector<std::string> ports)
        : services_(std::move(services)), ports_(std::move(ports)) {
        if (path.empty()) return;
        auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, true);
        logger_ = std::make_shared<spdlog::logger>("events", sink);
        logger_->set_pattern("%v");
        logger_->set_level(spdlog::level::info);
    }
    bool enabled() const { return logger_ != nullptr; }
    uint64_t written() const { return written_; }
    void drain(const std::vector<rte_ring*>& rings) {
        if (!logger_) return;
        events::RstEvent ev[64];
        for (rte_ring* r : rings) {
            unsigned n;
            while ((n = rte_ring_sc_dequeue_burst_elem(r, ev, sizeof(events::RstEvent), 64,
                                                       nullptr)) > 0) {
                for (unsigned i = 0; i < n; ++i)
                    logger_->info(events::to_json(ev[i], services_, ports_));
                written_ += n;
            }
        }
    }
    void flush() {
        if (logger_) logger_->flush();
    }

private:
    std::shared_ptr<spdlog::logger> logger_;
    std::vector<std::string> services_, ports_;
    uint64_t written_ = 0;
};

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "rstmon";
    return buf;
}

// The config file with the command line's overrides on top, validated. Throws ConfigError.
config::Config load_config(const Options& opt) {
    config::Config cfg = opt.config_path.empty() ? config::defaults()
                                                 : config::load_file(opt.config_path);
    if (!opt.log_level.empty()) cfg.log_level = opt.log_level;
    if (opt.workers) cfg.workers = opt.workers;
    if (!opt.metrics_listen.empty()) cfg.metrics.listen = opt.metrics_listen;
    if (!opt.events.empty()) cfg.events.path = opt.events;
    config::validate(cfg);
    return cfg;
}

// First line of a secret file, without its line end. Throws ConfigError naming the key.
std::string read_secret(const std::string& path, const std::string& key) {
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line))
        throw config::ConfigError(key + ": cannot read '" + path + "'");
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) throw config::ConfigError(key + ": '" + path + "' starts with an empty line");
    return line;
}

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// SIGHUP: reload and check the config file. A bad file is logged and counted; the running
// config stays. Settings that shape the data path (ports, workers, table sizes) need a restart.
void reload_config(const Options& opt, metrics::ReloadStatus& status) {
    try {
        const config::Config cfg = load_config(opt);
        spdlog::set_level(level_of(cfg.log_level));
        // Logged before it is counted: whoever sees the counter move finds the log line.
        spdlog::info("config reloaded from {} (log level applied; ports, workers, tables, "
                     "thresholds and metrics settings take effect at restart)",
                     opt.config_path.empty() ? std::string("built-in defaults") : opt.config_path);
        status.last_ok.store(true);
        status.last_success_s.store(unix_now());
        status.succeeded.fetch_add(1);
    } catch (const std::exception& e) {
        spdlog::error("config reload failed, keeping the running config: {}", e.what());
        status.last_ok.store(false);
        status.failed.fetch_add(1);
    }
}

int run(const Options& opt) {
    const double start_time = unix_now();
    config::Config cfg = load_config(opt);
    // Files the metrics endpoint needs are checked before anything starts.
    metrics::MetricsServerOptions mo;
    mo.listen = cfg.metrics.listen;
    mo.tls_cert_file = cfg.metrics.tls_cert_file;
    if (!cfg.metrics.auth_username.empty()) {
        mo.username = cfg.metrics.auth_username;
        mo.password = read_secret(cfg.metrics.auth_password_file, "metrics.basic_auth.password_file");
    }
    if (!mo.tls_cert_file.empty() && access(mo.tls_cert_file.c_str(), R_OK) != 0)
        throw config::ConfigError("metrics.tls.cert_file: cannot read '" + mo.tls_cert_file + "'");
    spdlog::set_level(level_of(cfg.log_level));
    if (cfg.appliance.empty()) cfg.appliance = host_name();

    const bool offline = !opt.pcap.empty();
    app::CaptureInfo capture;
    std::vector<dpdk::PortSpec> ports;
    if (offline) {
        capture = app::inspect_capture(opt.pcap);
        dpdk::PortSpec p;
        p.name = "pcap0";
        p.device = "net_pcap_rstmon0,rx_pcap=" + capture.path;
        p.link = capture.link;
        p.want_timestamps = true;
        ports.push_back(p);
        spdlog::info("replaying {} ({} frames, link type {})", capture.path, capture.frames,
                     packet::link_type_name(capture.link));
    } else {
        if (cfg.ports.empty()) {
            std::cerr << "rstmon: no ports configured: give --pcap FILE, or list ports in the "
                         "config file (see config/rstmon.yaml)\n";
            return kExitUsage;
        }
        for (const auto& pc : cfg.ports) {
            dpdk::PortSpec p;
            p.name = pc.name;
            p.device = pc.device;
            for (size_t i = 0; i < cfg.ports.size(); ++i)
                if (!pc.forward_to.empty() && cfg.ports[i].name == pc.forward_to)
                    p.forward_to = static_cast<int>(i);
            ports.push_back(p);
        }
    }

    std::vector<std::string> eal_args;
    if (!opt.eal.empty() || !cfg.eal_args.empty()) {
        eal_args.push_back("rstmon");
        for (const auto& a : cfg.eal_args) eal_args.push_back(a);
        for (const auto& a : opt.eal) eal_args.push_back(a);
    } else {
        eal_args = default_eal_args(cfg, offline, cfg.log_level);
    }
    std::string joined;
    for (const auto& a : eal_args) joined += " " + a;
    spdlog::debug("EAL arguments:{}", joined);
    if (offline && cfg.workers > 1)
        spdlog::info("{} workers on net_pcap: software dispatch (one RX lcore hashes flows "
                     "symmetrically onto the workers)", cfg.workers);

    std::unique_ptr<dpdk::Eal> eal;
    try {
        eal = std::make_unique<dpdk::Eal>(eal_args);
    } catch (const std::exception& e) {
        std::cerr << "rstmon: " << e.what() << " (EAL arguments:" << joined << ")\n";
        return kExitRuntime;
    }

    // Service map: server port -> index (0 = other).
    auto services = std::make_unique<pipeline::ServiceMap>();
    services->fill(0);
    std::vector<std::string> service_names = {"other"};
    for (size_t i = 0; i < cfg.services.size(); ++i) {
        service_names.push_back(cfg.services[i].name);
        for (uint16_t p : cfg.services[i].ports) (*services)[p] = static_cast<uint8_t>(i + 1);
    }

    dpdk::EngineConfig ec;
    ec.ports = ports;
    ec.workers = cfg.workers;
    ec.mbufs = cfg.rx.mbufs;
    ec.mbuf_data_room = static_cast<uint16_t>(cfg.rx.mbuf_size);
    ec.burst = cfg.rx.burst;
    ec.descriptors = cfg.rx.descriptors;
    ec.dispatch_ring = cfg.rx.dispatch_ring;
    ec.lossless = offline;
    ec.flow_table_size = cfg.flow_table.size;
    ec.timeouts.handshake_ns = static_cast<uint64_t>(cfg.flow_table.handshake_timeout_s * 1e9);
    ec.timeouts.established_ns = static_cast<uint64_t>(cfg.flow_table.established_timeout_s * 1e9);
    ec.timeouts.closing_ns = static_cast<uint64_t>(cfg.flow_table.closing_timeout_s * 1e9);
    ec.worker.services = services.get();
    classify::Thresholds& th = ec.worker.thresholds;
    th.idle_threshold_ns = static_cast<uint64_t>(cfg.thresholds.idle_threshold_s * 1e9);
    th.linger_ns = static_cast<uint64_t>(cfg.thresholds.linger_s * 1e9);
    th.connect_late_ns = static_cast<uint64_t>(cfg.thresholds.connect_late_s * 1e9);
    th.ttl_tolerance = static_cast<uint8_t>(cfg.thresholds.ttl_tolerance);
    th.retransmission_run = static_cast<uint8_t>(cfg.thresholds.retransmission_run);
    th.keepalive_probes = static_cast<uint8_t>(cfg.thresholds.keepalive_probes);
    ec.events = !cfg.events.path.empty();
    ec.events_ring_size = cfg.events.ring_size;
    ec.worker.events_lossless = offline;  // a file replay loses nothing
    ec.worker.events_per_second = cfg.events.max_per_second;
    ec.worker.events_burst = cfg.events.burst;

    std::unique_ptr<dpdk::Engine> engine;
    try {
        engine = std::make_unique<dpdk::Engine>(ec);
    } catch (const std::exception& e) {
        std::cerr << "rstmon: " << e.what() << "\n";
        return kExitRuntime;
    }

    std::vector<std::string> port_names;
    for (const auto& p : ports) port_names.push_back(p.name);
    EventWriter writer(cfg.events.path, service_names, port_names);

    metrics::ExporterInfo info{cfg.appliance, port_names, service_names, RSTMON_VERSION,
                               dpdk::dpdk_version(), engine->lcore_names(), {}};
    info.nic_counters = [eng = engine.get()] {
        std::vector<metrics::NicCounters> v;
        for (size_t i = 0; i < eng->port_count(); ++i) {
            const dpdk::PortCounters pc = eng->port_counters(i);
            v.push_back({pc.imissed, pc.ierrors, pc.rx_nombuf});
        }
        return v;
    };
    static metrics::ReloadStatus reload_status;  // outlives the exporter's scrapes
    reload_status.last_success_s.store(start_time);
    info.start_time_s = start_time;
    info.reload = &reload_status;
    auto collectable = std::make_shared<metrics::StatsCollectable>(info, engine->stats());
    std::unique_ptr<metrics::MetricsServer> server;
    const bool serve = cfg.metrics.enabled && (!offline || opt.serve);
    if (serve) {
        try {
            server = std::make_unique<metrics::MetricsServer>(mo, collectable);
        } catch (const std::exception& e) {
            std::cerr << "rstmon: cannot serve metrics on " << cfg.metrics.listen << ": "
                      << e.what() << "\n";
            return kExitRuntime;
        }
        const auto colon = cfg.metrics.listen.rfind(':');
        spdlog::info("metrics at {}://{}:{}/metrics{}", mo.tls_cert_file.empty() ? "http" : "https",
                     cfg.metrics.listen.substr(0, colon), server->port(),
                     mo.username.empty() ? "" : " (basic auth)");
    }

    const auto start = Clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
    engine->launch();

    // Control loop: drain events, detect the end of a replay, honour signals and --duration.
    uint64_t last_frames = 0;
    auto last_progress = Clock::now();
    auto last_flush = Clock::now();
    bool stopping = false;
    while (!engine->all_stopped()) {
        writer.drain(engine->event_rings());
        if (g_reload.exchange(false)) reload_config(opt, reload_status);
        if (!stopping) {
            bool stop = g_quit.load() || (opt.duration > 0 && elapsed() >= opt.duration);
            if (offline) {
                const dpdk::PortCounters pc = engine->port_counters(0);
                const uint64_t got = engine->frames_received() + engine->frames_dropped();
                if (got + pc.imissed + pc.ierrors + pc.rx_nombuf >= capture.frames) stop = true;
                if (got != last_frames) {
                    last_frames = got;
                    last_progress = Clock::now();
                } else if (Clock::now() - last_progress > std::chrono::seconds(3)) {
                    spdlog::warn("replay stalled at {} of {} frames; stopping", got,
                                 capture.frames);
                    stop = true;
                }
            }
            if (stop) {
                engine->request_stop();
                stopping = true;
            }
        }
        if (Clock::now() - last_flush > std::chrono::seconds(1)) {
            writer.flush();
            last_flush = Clock::now();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(offline ? 1 : 20));
    }
    engine->join();
    writer.drain(engine->event_rings());
    writer.flush();

    const metrics::Totals totals = metrics::sum(engine->stats());
    app::ReportContext rc{offline ? capture.path : std::string("live"),
                          offline ? std::string(packet::link_type_name(capture.link)) : "",
                          elapsed()};
    if (opt.report == "json")
        std::cout << app::json_report(totals, rc) << std::flush;
    else if (opt.report == "text")
        std::cout << app::text_report(totals, rc) << std::flush;

    if (offline && server) {
        spdlog::info("replay done; serving metrics until Ctrl-C{}",
                     opt.duration > 0 ? " or the --duration ends" : "");
        while (!g_quit.load() && !(opt.duration > 0 && elapsed() >= opt.duration)) {
            if (g_reload.exchange(false)) reload_config(opt, reload_status);
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    server.reset();
    engine.reset();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    CLI::App app{"rstmon: tells why TCP connections are reset.\n"
                 "Live: rstmon [--config F] [-- EAL args]; ports come from the config.\n"
                 "Offline: rstmon --pcap FILE [--events OUT.jsonl] [--report text|json]",
                 "rstmon"};
    app.add_option("-c,--config", opt.config_path, "YAML config file (default: built-in defaults, "
                                                   "identical to config/rstmon.yaml)");
    app.add_option("-r,--pcap", opt.pcap,
                   "replay a capture (pcap or pcapng) through the DPDK pipeline (net_pcap) and exit "
                   "at its end");
    app.add_option("-e,--events", opt.events, "write one JSON object per RST to this file");
    app.add_option("--report", opt.report, "report printed at the end")
        ->check(CLI::IsMember({"text", "json", "none"}));
    app.add_flag("--serve", opt.serve,
                 "offline: keep serving metrics after the replay until Ctrl-C or --duration");
    app.add_option("-d,--duration", opt.duration,
                   "stop after this many seconds (live run, or --serve after a replay)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("-m,--metrics", opt.metrics_listen,
                   "serve Prometheus metrics on host:port (port 0 = any; default from config, "
                   "127.0.0.1:9580)");
    app.add_option("-w,--workers", opt.workers, "worker lcores (default from config)")
        ->check(CLI::Range(1, 64));
    app.add_option("-l,--log-level", opt.log_level,
                   "trace, debug, info, warning, error, critical, off");
    app.add_flag("-V,--version", opt.version, "print version, DPDK version and flow record size");
    app.add_flag("--list-causes", opt.list_causes,
                 "print the RST causes and stages rstmon reports, as a Markdown table");
    app.add_option("eal", opt.eal, "EAL arguments after '--' (default: chosen by rstmon)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : kExitUsage;
    }
    if (opt.version) {
        std::cout << "rstmon " << RSTMON_VERSION << " (" << dpdk::dpdk_version() << ")\n"
                  << "flow record " << sizeof(flow::FlowRecord) << " bytes, "
                  << flow::FlowTable::bytes_per_flow() << " bytes per flow with the hash\n";
        return 0;
    }
    if (opt.list_causes) {
        std::cout << "| cause | what it means |\n|---|---|\n";
        for (const auto& c : classify::kCauses)
            std::cout << "| `" << c.name << "` | " << c.help << " |\n";
        std::cout << "\n| stage | when |\n|---|---|\n";
        for (const auto& s : classify::kStages)
            std::cout << "| `" << s.name << "` | " << s.help << " |\n";
        return 0;
    }
    auto log = spdlog::stderr_color_mt("rstmon");
    spdlog::set_default_logger(log);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_sighup);
    try {
        return run(opt);
    } catch (const config::ConfigError& e) {
        std::cerr << "rstmon: config: " << e.what() << "\n";
        return kExitUsage;
    } catch (const std::runtime_error& e) {
        std::cerr << "rstmon: " << e.what() << "\n";
        return kExitUsage;
    }
}
