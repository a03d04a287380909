// rstmon: tells operators why TCP connections are reset.
// main only orchestrates: options, config, EAL, engine, control loop, report, teardown.
#include <CLI/CLI.hpp>
#include <sched.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <rte_log.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "capture_info.hpp"
#include "progress.hpp"
#include "config/config.hpp"
#include "dpdk/eal.hpp"
#include "events/line_file.hpp"
#include "events/rst_event.hpp"
#include "forensics/writer.hpp"
#include "match/match_db.hpp"
#include "metrics/exporter.hpp"
#include "report.hpp"
#include "top/feed.hpp"
#include "top/top_summary.hpp"

namespace {

using namespace rstmon;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_quit{false};
std::atomic<bool> g_reload{false};
std::atomic<int> g_stop_signals{0};
// SIGINT/SIGTERM: the first asks for an orderly stop (workers finish, events and counters are
// flushed, the report printed); a second one leaves at once, for a stop that hangs (a stuck
// event file, a FIFO nobody reads). Only async-signal-safe calls here.
void on_signal(int sig) {
    if (g_stop_signals.fetch_add(1) >= 1) {
        static const char msg[] = "rstmon: second signal: exiting now without flushing\n";
        [[maybe_unused]] const ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
        _exit(128 + sig);
    }
    g_quit.store(true);
}
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
    bool bench_dispatch_only = false;
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
std::vector<std::string> default_eal_args(const config::Config& c, bool offline, bool rx_lcore,
                                          const std::string& log_level) {
    std::vector<std::string> a = {"rstmon"};
    const auto cpus = allowed_cpus();
    // Main lcore + workers (+ the software dispatcher, needed when the ports cannot hash
    // symmetrically, or as the RX lcore of an offline replay). More lcores than CPUs share them
    // (lcore@cpu): it works, but slowly; the main lcore mostly sleeps (the control loop).
    const unsigned n = 1 + dpdk::Engine::lcores_needed(c.workers, true, rx_lcore);
    if (n - (rx_lcore ? 1 : 0) > cpus.size())
        spdlog::warn("{} lcores on {} CPU(s): they will share CPUs (give EAL -l to choose)", n,
                     cpus.size());
    std::string lcores;
    // (With an RX lcore on 2 CPUs the main lcore shares the worker's: measured, the RX lcore
    // is the one that must not wait.)
    for (unsigned i = 0; i < n; ++i)
        lcores += (i ? "," : "") + std::to_string(i) + "@" + std::to_string(cpus[i % cpus.size()]);
    a.push_back("--lcores=" + lcores);
    if (offline) a.push_back("--no-pci");
    const uint64_t need_mb =
        64 + static_cast<uint64_t>(c.rx.mbufs) * (c.rx.mbuf_size + 320) / (1 << 20) +
        static_cast<uint64_t>(c.workers) *
            (static_cast<uint64_t>(c.flow_table.size) * flow::FlowTable::bytes_per_flow() /
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

// RST events from the workers' rings into the event file (events::LineFile): a full disk or an
// unwritable directory loses events, counted (rstmon_event_write_errors_total) and logged when
// it starts and when writing resumes, never the data path's time.
class EventWriter {
public:
    // `rotate_size` > 0 (live): rotated by size, at most `rotate_files` files besides the current
    // one (path.1.ext, ...), appending across restarts; else one file, truncated.
    EventWriter(const std::string& path, std::vector<std::string> services,
                std::vector<std::string> ports, size_t rotate_size = 0, size_t rotate_files = 0)
        : services_(std::move(services)), ports_(std::move(ports)) {
        if (path.empty()) return;
        file_ = std::make_unique<events::LineFile>(path, rotate_size,
                                                   static_cast<uint32_t>(rotate_files));
        failing_ = !file_->last_error().empty();  // the caller says so (or stops)
    }
    bool enabled() const { return file_ != nullptr; }
    // Cannot even open the file (an offline run stops at once: nothing is lost yet).
    bool unopened() const { return file_ && failing_ && file_->lines_written() == 0; }
    uint64_t written() const { return file_ ? file_->lines_written() : 0; }
    uint64_t lost() const { return file_ ? file_->lines_lost() : 0; }
    std::string last_error() const { return file_ ? file_->last_error() : std::string(); }
    const std::atomic<uint64_t>& lost_counter() const { return lost_counter_; }
    // At most one ring's worth per worker and call, so a worker that refills faster (no rate
    // limit) cannot hold the control loop here.
    void drain(const std::vector<rte_ring*>& rings) {
        if (!file_) return;
        events::RstEvent ev[64];
        bool any = false;
        for (rte_ring* r : rings) {
            unsigned n;
            for (unsigned budget = rte_ring_get_capacity(r); budget > 0; budget -= n) {
                n = rte_ring_sc_dequeue_burst_elem(r, ev, sizeof(events::RstEvent),
                                                   budget < 64 ? budget : 64, nullptr);
                if (n == 0) break;
                for (unsigned i = 0; i < n; ++i)
                    file_->append(
                        events::to_json(ev[i], services_, ports_, pcap_prefix_, triggers_));
                any = true;
            }
        }
        if (any) flush();
    }
    void flush() {
        if (!file_) return;
        const uint64_t lost0 = file_->lines_lost(), written0 = file_->lines_written();
        file_->flush();
        lost_counter_.store(file_->lines_lost(), std::memory_order_relaxed);
        if (file_->lines_lost() > lost0 && !failing_) {
            spdlog::warn("events: {}; RST events are counted as lost until it can be written",
                         file_->last_error());
            failing_ = true;
        } else if (failing_ && file_->lines_lost() == lost0 && file_->lines_written() > written0) {
            spdlog::info("events: writing to {} again ({} RST events lost so far)",
                         file_->path(), file_->lines_lost());
            failing_ = false;
        }
    }
    void set_trigger_names(std::vector<std::string> t) { triggers_ = std::move(t); }
    void set_pcap_prefix(std::string p) { pcap_prefix_ = std::move(p); }

private:
    std::unique_ptr<events::LineFile> file_;
    std::vector<std::string> services_, ports_;
    std::vector<std::string> triggers_;
    std::string pcap_prefix_;
    std::atomic<uint64_t> lost_counter_{0};  // read by the metrics endpoint's threads
    bool failing_ = false;
};

// DPDK's own log lines during start-up (EAL, probing, port set-up) are held back in a temporary
// file: a start-up failure is one stderr line, rstmon's, ending with DPDK's last word on it;
// after a good start they are logged at debug level, and DPDK logs to stderr again. With
// --log-level debug or trace they go through as they come.
class DpdkStartupLog {
public:
    explicit DpdkStartupLog(bool pass_through) {
        if (!pass_through && (file_ = std::tmpfile()) != nullptr) rte_openlog_stream(file_);
    }
    ~DpdkStartupLog() {
        restore_stderr();
        release(false);
    }
    // rte_eal_init also writes to stderr itself ("EAL: FATAL: ..."): hold that too, meanwhile.
    void hold_stderr() {
        if (!file_ || saved_stderr_ >= 0) return;
        std::fflush(stderr);
        saved_stderr_ = dup(STDERR_FILENO);
        if (saved_stderr_ >= 0) dup2(fileno(file_), STDERR_FILENO);
    }
    void restore_stderr() {
        if (saved_stderr_ < 0) return;
        std::fflush(stderr);
        dup2(saved_stderr_, STDERR_FILENO);
        close(saved_stderr_);
        saved_stderr_ = -1;
    }
    // " (DPDK: <its last line>)", or "" when it said nothing.
    std::string detail() {
        std::string last;
        for (const std::string& line : lines())
            if (!line.empty()) last = line;
        return last.empty() ? "" : " (DPDK: " + last + ")";
    }
    // Start-up is over: DPDK logs to stderr again; what it said so far goes to the debug log.
    void release(bool log_held) {
        if (!file_) return;
        rte_openlog_stream(nullptr);
        if (log_held)
            for (const std::string& line : lines())
                if (!line.empty()) spdlog::debug("DPDK: {}", line);
        std::fclose(file_);
        file_ = nullptr;
    }

private:
    std::vector<std::string> lines() {
        std::vector<std::string> out;
        if (!file_) return out;
        std::fflush(file_);
        std::string all;
        char buf[4096];
        ssize_t n;
        for (off_t at = 0; (n = pread(fileno(file_), buf, sizeof buf, at)) > 0; at += n)
            all.append(buf, static_cast<size_t>(n));
        size_t from = 0;
        for (size_t nl; (nl = all.find('\n', from)) != std::string::npos; from = nl + 1)
            out.push_back(all.substr(from, nl - from));
        if (from < all.size()) out.push_back(all.substr(from));
        return out;
    }

    FILE* file_ = nullptr;
    int saved_stderr_ = -1;
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

// What a reload changes in the data path: the services' sni/host patterns, the trigger
// patterns and match.window, compiled here and handed to every worker at a burst boundary
// (pipeline::MatchSwap). Label sets are fixed at start, so the service and trigger names (and
// their order) must stay; so must whether any sni/host pattern and any trigger exist (buffers
// are sized for that at start).
struct MatchReload {
    std::vector<std::string> services, triggers;  // names as started
    std::vector<std::vector<uint16_t>> ports;      // services[].ports as started
    bool identify = false, scan = false;
    uint64_t generation = 0;
    std::vector<pipeline::MatchMailbox*> boxes;  // empty once the workers have stopped
    pipeline::MatchSwap swap;

    static bool identifies(const match::MatchDatabases& db) {
        return db.has_sni_patterns() || db.has_host_patterns();
    }
    static bool scans(const match::MatchDatabases& db, const config::Config& c) {
        return db.trigger_count() > 0 && c.match.window > 0;
    }
    void remember(const config::Config& c, const match::MatchDatabases& db) {
        services.clear();
        ports.clear();
        triggers.clear();
        for (const auto& s : c.services) {
            services.push_back(s.name);
            ports.push_back(s.ports);
        }
        for (const auto& t : c.triggers) triggers.push_back(t.name);
        identify = identifies(db);
        scan = scans(db, c);
    }
};

std::string joined_names(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& n : v) s += (s.empty() ? "" : ",") + n;
    return "[" + s + "]";
}

// Compiles the new patterns and posts them to the workers; throws ConfigError when the reload
// must be refused. True when the workers are still to take them (counted once they have).
bool reload_match(const config::Config& cfg, MatchReload& mr) {
    std::vector<std::string> services, triggers;
    for (const auto& s : cfg.services) services.push_back(s.name);
    for (const auto& t : cfg.triggers) triggers.push_back(t.name);
    if (services != mr.services)
        throw config::ConfigError("services: names " + joined_names(services) + " differ from " +
                                  joined_names(mr.services) +
                                  " at start; a reload may change patterns only (label sets are "
                                  "fixed at start): restart rstmon to change the list");
    if (triggers != mr.triggers)
        throw config::ConfigError("triggers: names " + joined_names(triggers) + " differ from " +
                                  joined_names(mr.triggers) +
                                  " at start; a reload may change patterns only (label sets are "
                                  "fixed at start): restart rstmon to change the list");
    std::shared_ptr<const match::MatchDatabases> db;
    try {
        db = match::MatchDatabases::compile(config::match_spec(cfg));
    } catch (const match::PatternError& e) {
        throw config::ConfigError(e.what());
    }
    if (MatchReload::identifies(*db) != mr.identify)
        throw config::ConfigError(std::string("services: ") +
                                  (mr.identify ? "no sni/host pattern is left"
                                               : "sni/host patterns appear") +
                                  "; switching name matching on or off needs a restart");
    if (MatchReload::scans(*db, cfg) != mr.scan)
        throw config::ConfigError(std::string("triggers/match.window: trigger scanning would be ") +
                                  (mr.scan ? "switched off" : "switched on") +
                                  "; that needs a restart");
    for (size_t i = 0; i < cfg.services.size(); ++i)
        if (cfg.services[i].ports != mr.ports[i])
            spdlog::warn("services[{}].ports changed: the port map takes effect at restart", i);
    // Nothing to hand over when the workers have stopped, or when nothing is matched at all.
    if (mr.boxes.empty() || (!mr.identify && !mr.scan)) return false;
    mr.generation++;
    mr.swap.post(mr.boxes, db, cfg.match.window, mr.generation);
    return true;
}

void reload_succeeded(metrics::ReloadStatus& status) {
    status.last_ok.store(true);
    status.last_success_s.store(unix_now());
    status.succeeded.fetch_add(1);
}

// The workers took the databases of the last reload (or stopped): it is complete.
void poll_match_reload(MatchReload& mr, metrics::ReloadStatus& status, bool stopped) {
    if (!mr.swap.in_flight()) return;
    if (stopped)
        mr.swap.abandon();
    else if (!mr.swap.poll())
        return;
    spdlog::info("match patterns of reload {} in use by {} worker(s)", mr.generation,
                 mr.boxes.size());
    reload_succeeded(status);
}

// SIGHUP: reload and check the config file. A bad file is logged and counted; the running
// config stays. Settings that shape the data path (ports, workers, table sizes) need a restart;
// the sni/host and trigger patterns are swapped in (reload_match).
void reload_config(const Options& opt, metrics::ReloadStatus& status, MatchReload& mr) {
    try {
        const config::Config cfg = load_config(opt);
        const bool posted = reload_match(cfg, mr);
        spdlog::set_level(level_of(cfg.log_level));
        // Logged before it is counted: whoever sees the counter move finds the log line.
        spdlog::info("config reloaded from {} (log level{} applied; ports, workers, tables, "
                     "thresholds and metrics settings take effect at restart)",
                     opt.config_path.empty() ? std::string("built-in defaults") : opt.config_path,
                     posted ? " and sni/host/trigger patterns" : "");
        if (!posted) reload_succeeded(status);  // else once every worker has taken the patterns
    } catch (const std::exception& e) {
        spdlog::error("config reload failed, keeping the running config: {}", e.what());
        status.last_ok.store(false);
        status.failed.fetch_add(1);
    }
}

// forensics: settings from the config; the link type of each port names its pcap link type.
std::unique_ptr<forensics::Forensics> make_forensics(const config::Config& cfg,
                                                     const std::vector<dpdk::PortSpec>& ports,
                                                     bool offline, double start_time) {
    forensics::Settings fs;
    fs.enabled = true;
    for (size_t c = 0; c < classify::kCauseCount; ++c)
        fs.causes[c] = cfg.forensics.causes.empty();
    for (const auto& name : cfg.forensics.causes)
        fs.causes[static_cast<size_t>(*classify::cause_from_name(name))] = true;
    fs.packets_before = cfg.forensics.packets_before;
    fs.packets_after = cfg.forensics.packets_after;
    fs.snaplen = cfg.forensics.snaplen;
    fs.in_flight = cfg.forensics.in_flight;
    fs.max_file_size = cfg.forensics.max_file_size;
    fs.max_total_size = cfg.forensics.max_total_size;
    fs.dir = cfg.forensics.dir;
    fs.lossless = offline;
    std::array<int, metrics::kMaxPorts> dlt;
    dlt.fill(forensics::dlt_of(packet::LinkType::ethernet));
    for (size_t i = 0; i < ports.size() && i < dlt.size(); ++i) dlt[i] = forensics::dlt_of(ports[i].link);
    auto f = std::make_unique<forensics::Forensics>(fs, cfg.workers, cfg.flow_table.size, dlt,
                                                    start_time);
    spdlog::info("forensic captures of {} into {} ({} frames before each RST, {} bytes each; "
                 "{} bytes per flow slot)",
                 cfg.forensics.causes.empty() ? std::string("every cause")
                                              : std::to_string(cfg.forensics.causes.size()) + " cause(s)",
                 cfg.forensics.dir, fs.packets_before, fs.snaplen,
                 forensics::Recorder::bytes_per_flow(fs));
    return f;
}

// GET /top[?n=N][&cause=NAME]: the summary as JSON. Bad parameters are a 400.
std::string top_answer(const top::TopSummary& t, const top::Feed& feed, size_t n,
                       const std::string& query) {
    int cause = -1;
    size_t start = 0;
    while (start < query.size()) {
        size_t end = query.find('&', start);
        if (end == std::string::npos) end = query.size();
        const std::string kv = query.substr(start, end - start);
        start = end + 1;
        const size_t eq = kv.find('=');
        const std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
        if (k == "n") {
            char* rest = nullptr;
            const unsigned long x = std::strtoul(v.c_str(), &rest, 10);
            if (v.empty() || *rest != '\0' || x < 1 || x > 100000)
                throw std::invalid_argument("n: expected 1-100000");
            n = x;
        } else if (k == "cause") {
            const auto c = classify::cause_from_name(v);
            if (!c) throw std::invalid_argument("cause: unknown cause '" + v + "'");
            cause = static_cast<int>(*c);
        } else if (!k.empty()) {
            throw std::invalid_argument("unknown parameter '" + k + "' (n, cause)");
        }
    }
    return t.to_json(n, cause, feed.dropped()).dump();
}

// An offline report must cover the whole capture. Frames the driver or a full ring lost, a replay
// that stalled or was stopped, a file cut short, events the disk refused: each is one line on
// stderr and a non-zero exit (the report printed before it stays, for what it covers).
int replay_verdict(const dpdk::Engine& engine, const app::CaptureInfo& capture,
                   const std::string& stopped_early, const EventWriter& writer,
                   uint32_t table_size) {
    int status = 0;
    const uint64_t analysed = engine.frames_received();
    if (analysed < capture.frames) {
        const dpdk::PortCounters pc = engine.port_counters(0);
        std::string why;
        auto add = [&](uint64_t n, const char* what) {
            if (n) why += (why.empty() ? "" : ", ") + std::to_string(n) + " " + what;
        };
        add(pc.ierrors, "dropped by net_pcap as rx errors");
        add(pc.rx_nombuf, "dropped by net_pcap for want of mbufs");
        add(pc.imissed, "missed by the port");
        add(engine.frames_dropped(), "lost to full dispatch rings");
        if (!stopped_early.empty()) why += (why.empty() ? "" : ", ") + stopped_early;
        std::cerr << "rstmon: replay incomplete: " << analysed << " of " << capture.frames
                  << " frames analysed (" << (why.empty() ? "unaccounted" : why) << ")\n";
        status = kExitRuntime;
    }
    if (!capture.cut_short.empty()) {
        std::cerr << "rstmon: capture '" << capture.path << "' is cut short after "
                  << capture.frames << " whole frames (" << capture.cut_short
                  << "); the report covers those\n";
        if (status == 0) status = kExitUsage;
    }
    if (writer.lost() > 0) {
        std::cerr << "rstmon: " << writer.lost() << " of " << writer.lost() + writer.written()
                  << " RST events could not be written (" << writer.last_error() << ")\n";
        if (status == 0) status = kExitRuntime;
    }
    // A full table is a designed state live (SYNs evict, the rest goes untracked, all counted),
    // but a replay can simply be run again with a bigger one: say so, or its verdicts on the
    // flows it dropped (no_state RSTs, cut-short connections) pass for the capture's truth.
    const metrics::Totals t = metrics::sum(engine.stats());
    if (t.flows_evicted > 0 || t.untracked_packets > 0)
        std::cerr << "rstmon: warning: the flow table was full during the replay ("
                  << t.flows_evicted << " flows evicted, " << t.untracked_packets
                  << " packets untracked; their RSTs may read no_state): flow_table.size "
                  << table_size << " per worker is too small for this capture\n";
    return status;
}

// Live, lost events are a counted state (rstmon_event_write_errors_total), not a failed run.
void live_events_verdict(const EventWriter& writer) {
    if (writer.lost() > 0)
        spdlog::warn("events: {} of {} RST events could not be written (last error: {})",
                     writer.lost(), writer.lost() + writer.written(), writer.last_error());
}

int run(const Options& opt) {
    const double start_time = unix_now();
    const auto process_start = Clock::now();
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
        p.clock_frame = capture.clock_frame;  // the driver's timestamp unit is measured on it
        p.clock_ns = capture.clock_ns;
        ports.push_back(p);
        spdlog::info("replaying {} ({} frames, link type {})", capture.path, capture.frames,
                     packet::link_type_name(capture.link));
        // A replay never has more flows than frames: a table (and the EAL memory for it) sized
        // past that only costs start-up time, most of a small capture's run (a million-flow
        // default took 0.4 s of page faults before a 12k-frame file was read).
        const uint64_t enough = std::max<uint64_t>(config::kMinFlowTableSize, capture.frames);
        if (cfg.flow_table.size > enough) {
            spdlog::debug("flow table: {} flows per worker ({} frames in the capture; "
                          "flow_table.size {})", enough, capture.frames, cfg.flow_table.size);
            cfg.flow_table.size = static_cast<uint32_t>(enough);
        }
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

    // An offline replay with one worker and a CPU to spare reads the file on a second lcore
    // (the software dispatcher): libpcap's reads and copies, the parse and the hash run beside
    // the worker instead of before it. Only with rstmon's own EAL arguments (given -l/--lcores
    // are the user's choice) and --bench-dispatch-only aside.
    // --bench-dispatch-only with one worker: the dispatcher alone on its CPU, the worker (which
    // only drops) beside the main lcore: the dispatcher's own ceiling even on 2 CPUs.
    const bool rx_lcore = cfg.workers == 1 &&
                          ((offline && opt.eal.empty() && cfg.eal_args.empty() &&
                            allowed_cpus().size() >= 2) ||
                           opt.bench_dispatch_only);
    std::vector<std::string> eal_args;
    if (!opt.eal.empty() || !cfg.eal_args.empty()) {
        eal_args.push_back("rstmon");
        for (const auto& a : cfg.eal_args) eal_args.push_back(a);
        for (const auto& a : opt.eal) eal_args.push_back(a);
    } else {
        eal_args = default_eal_args(cfg, offline, rx_lcore, cfg.log_level);
    }
    std::string joined;
    for (const auto& a : eal_args) joined += " " + a;
    spdlog::debug("EAL arguments:{}", joined);
    if (offline && cfg.workers > 1)
        spdlog::info("{} workers on net_pcap: software dispatch (one RX lcore hashes flows "
                     "symmetrically onto the workers)", cfg.workers);

    DpdkStartupLog dpdk_log(cfg.log_level == "debug" || cfg.log_level == "trace");
    std::unique_ptr<dpdk::Eal> eal;
    dpdk_log.hold_stderr();
    try {
        eal = std::make_unique<dpdk::Eal>(eal_args);
    } catch (const std::exception& e) {
        dpdk_log.restore_stderr();
        std::cerr << "rstmon: " << e.what() << dpdk_log.detail() << " (EAL arguments:" << joined
                  << ")\n";
        return kExitRuntime;
    }
    dpdk_log.restore_stderr();

    // Services by SNI/Host and triggers: compiled once here (the config load has checked the
    // patterns), shared by the workers, each with a scratch of its own.
    std::shared_ptr<const match::MatchDatabases> match_db;
    try {
        match_db = match::MatchDatabases::compile(config::match_spec(cfg));
    } catch (const match::PatternError& e) {
        throw config::ConfigError(e.what());
    }
    MatchReload match_reload;
    match_reload.remember(cfg, *match_db);
    std::vector<std::string> trigger_names = match_reload.triggers;

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
    ec.dispatch_only = opt.bench_dispatch_only;
    ec.rx_lcore = rx_lcore;
    ec.flow_table_size = cfg.flow_table.size;
    ec.timeouts.handshake_ns = static_cast<uint64_t>(cfg.flow_table.handshake_timeout_s * 1e9);
    ec.timeouts.established_ns = static_cast<uint64_t>(cfg.flow_table.established_timeout_s * 1e9);
    ec.timeouts.closing_ns = static_cast<uint64_t>(cfg.flow_table.closing_timeout_s * 1e9);
    ec.worker.services = services.get();
    packet::DecapConfig& dc = ec.worker.decap;
    dc.vxlan_ports.fill(0);
    dc.geneve_ports.fill(0);
    std::copy(cfg.decap.vxlan_ports.begin(), cfg.decap.vxlan_ports.end(), dc.vxlan_ports.begin());
    std::copy(cfg.decap.geneve_ports.begin(), cfg.decap.geneve_ports.end(), dc.geneve_ports.begin());
    dc.gre = cfg.decap.gre;
    dc.max_tunnels = static_cast<uint8_t>(cfg.decap.max_tunnels);
    std::vector<std::string> session_names = {"other"};
    for (const auto& m : cfg.decap.sessions) {
        ec.worker.session_ids[ec.worker.session_count++] = m.id;
        session_names.push_back(m.name);
    }
    classify::Thresholds& th = ec.worker.thresholds;
    th.idle_threshold_ns = static_cast<uint64_t>(cfg.thresholds.idle_threshold_s * 1e9);
    th.linger_ns = static_cast<uint64_t>(cfg.thresholds.linger_s * 1e9);
    th.connect_late_ns = static_cast<uint64_t>(cfg.thresholds.connect_late_s * 1e9);
    th.ttl_tolerance = static_cast<uint8_t>(cfg.thresholds.ttl_tolerance);
    th.retransmission_run = static_cast<uint8_t>(cfg.thresholds.retransmission_run);
    th.keepalive_probes = static_cast<uint8_t>(cfg.thresholds.keepalive_probes);
    ec.worker.dedup_window_ns = static_cast<uint64_t>(cfg.dedup.window_s * 1e9);
    ec.worker.dedup_entries = cfg.dedup.entries;
    ec.events = !cfg.events.path.empty();
    ec.events_ring_size = cfg.events.ring_size;
    ec.worker.events_lossless = offline;  // a file replay loses nothing
    ec.worker.events_per_second = cfg.events.max_per_second;
    ec.worker.events_burst = cfg.events.burst;
    ec.worker.match.db = match_db;
    ec.worker.match.window = cfg.match.window;
    ec.worker.match.pending_flows = cfg.match.pending_flows;
    ec.worker.match.names = cfg.match.names;
    ec.worker.include_payload = cfg.events.include_payload;
    ec.worker.learn_min_gap_ns = static_cast<uint64_t>(cfg.learned_timeouts.min_gap_s * 1e9);

    // Forensic captures and the top summary: their rings are made here, the workers use them
    // through ec.worker; both outlive the engine (declared before it).
    std::unique_ptr<forensics::Forensics> forensic;
    std::unique_ptr<top::Feed> top_feed;
    std::unique_ptr<top::TopSummary> top_summary;
    try {
        if (cfg.forensics.enabled) forensic = make_forensics(cfg, ports, offline, start_time);
        if (cfg.top.enabled) {
            top_feed = std::make_unique<top::Feed>(cfg.workers, cfg.top.ring_size, offline);
            top_summary = std::make_unique<top::TopSummary>(cfg.top.size, service_names);
        }
    } catch (const std::exception& e) {
        std::cerr << "rstmon: " << e.what() << "\n";
        return kExitRuntime;
    }
    ec.worker.forensics = forensic.get();
    ec.worker.top = top_feed.get();

    std::unique_ptr<dpdk::Engine> engine;
    try {
        engine = std::make_unique<dpdk::Engine>(ec);
    } catch (const std::exception& e) {
        std::cerr << "rstmon: " << e.what() << dpdk_log.detail() << "\n";
        return kExitRuntime;
    }

    std::vector<std::string> port_names;
    for (const auto& p : ports) port_names.push_back(p.name);
    EventWriter writer(cfg.events.path, service_names, port_names,
                       offline ? 0 : cfg.events.max_file_size, cfg.events.max_files);
    if (writer.unopened()) {
        // Offline nothing is lost yet: stop with the reason. Live, rstmon monitors on and the
        // file is retried (the directory may be mounted later).
        if (offline) {
            std::cerr << "rstmon: events: " << writer.last_error() << "\n";
            return kExitUsage;
        }
        spdlog::warn("events: {}; RST events are counted as lost until it can be written "
                     "(retried every second)", writer.last_error());
    }
    writer.set_trigger_names(trigger_names);
    if (forensic) writer.set_pcap_prefix(forensic->prefix());
    match_reload.boxes = engine->match_mailboxes();

    metrics::ExporterInfo info;
    info.appliance = cfg.appliance;
    info.port_names = port_names;
    info.service_names = service_names;
    info.version = RSTMON_VERSION;
    info.dpdk_version = dpdk::dpdk_version();
    info.lcore_names = engine->lcore_names();
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
    info.session_names = session_names;
    info.reload = &reload_status;
    info.trigger_names = trigger_names;
    info.extra_families = [f = forensic.get(), t = top_summary.get(), w = &writer,
                           app = cfg.appliance](std::vector<prometheus::MetricFamily>& out) {
        if (f) f->append_metrics(out, app);
        if (t) t->append_metrics(out, app);
        prometheus::MetricFamily lost;
        lost.name = "rstmon_event_write_errors_total";
        lost.help = "RST events the event file refused (open or write failed: full disk, "
                    "unwritable directory); the RST counters still count them";
        lost.type = prometheus::MetricType::Counter;
        prometheus::ClientMetric m;
        m.label.push_back({"appliance", app});
        m.counter.value = static_cast<double>(w->lost_counter().load(std::memory_order_relaxed));
        lost.metric.push_back(std::move(m));
        out.push_back(std::move(lost));
    };
    if (top_summary)
        mo.top_json = [t = top_summary.get(), feed = top_feed.get(),
                       n = cfg.top.entries](const std::string& query) {
            return top_answer(*t, *feed, n, query);
        };
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
    dpdk_log.release(true);  // started: DPDK's later messages are worth seeing as they come
    if (forensic) forensic->start();
    engine->launch();

    // Control loop: drain events, detect the end of a replay, honour signals and --duration.
    uint64_t last_frames = 0;
    auto last_progress = Clock::now(), last_round = Clock::now();
    auto last_flush = Clock::now();
    bool stopping = false;
    std::string stopped_early;  // offline: why the replay stopped before its last frame
    app::ReplayProgress progress(offline ? capture.frames : 0);
    while (!engine->all_stopped()) {
        writer.drain(engine->event_rings());
        if (top_feed) top_feed->drain(*top_summary);
        poll_match_reload(match_reload, reload_status, false);
        // One reload at a time: a SIGHUP during a hand-over waits for it to finish.
        if (!match_reload.swap.in_flight() && g_reload.exchange(false))
            reload_config(opt, reload_status, match_reload);
        if (!stopping) {
            bool stop = g_quit.load() || (opt.duration > 0 && elapsed() >= opt.duration);
            if (stop)
                stopped_early = g_quit.load() ? "stopped by a signal" : "stopped by --duration";
            if (offline) {
                // A control loop that did not run for a while (the process stopped, a paused
                // VM) saw no progress because nothing ran: that is no stall.
                if (Clock::now() - last_round > std::chrono::seconds(1))
                    last_progress = Clock::now();
                last_round = Clock::now();
                const dpdk::PortCounters pc = engine->port_counters(0);
                const uint64_t got = engine->frames_received() + engine->frames_dropped();
                if (got + pc.imissed + pc.ierrors + pc.rx_nombuf >= capture.frames) {
                    stop = true;
                    stopped_early.clear();  // every frame is accounted for
                }
                progress.update(got);
                if (got != last_frames) {
                    last_frames = got;
                    last_progress = Clock::now();
                } else if (!stop && Clock::now() - last_progress > std::chrono::seconds(3)) {
                    spdlog::warn("replay stalled at {} of {} frames; stopping", got,
                                 capture.frames);
                    stopped_early = "the driver delivered nothing for 3 s";
                    stop = true;
                }
            }
            if (stop) {
                progress.done();
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
    if (offline) {
        spdlog::debug("net_pcap timestamps: {} ns per unit, measured on frame {} (0: none)",
                      engine->rx_timestamp_unit_ns(0), capture.clock_frame);
        spdlog::debug("replay: {:.3f} s after {:.3f} s of start-up", elapsed(),
                      std::chrono::duration<double>(start - process_start).count());
    }
    poll_match_reload(match_reload, reload_status, true);  // workers gone: finish any hand-over
    match_reload.boxes.clear();
    writer.drain(engine->event_rings());
    writer.flush();
    if (forensic) forensic->stop();  // what the workers queued last is written
    if (top_feed) top_feed->drain(*top_summary);

    const metrics::Totals totals = metrics::sum(engine->stats());
    app::ReportContext rc;
    rc.source = offline ? capture.path : std::string("live");
    rc.link_type = offline ? std::string(packet::link_type_name(capture.link)) : "";
    rc.seconds = elapsed();
    rc.service_names = service_names;
    rc.trigger_names = trigger_names;
    rc.event_write_errors = writer.lost();
    if (top_summary) rc.top_json = top_summary->to_json(cfg.top.entries, -1, top_feed->dropped()).dump();
    if (opt.report == "json")
        std::cout << app::json_report(totals, rc) << std::flush;
    else if (opt.report == "text")
        std::cout << app::text_report(totals, rc) << std::flush;

    int status = 0;
    if (offline)
        status = replay_verdict(*engine, capture, stopped_early, writer, cfg.flow_table.size);
    else
        live_events_verdict(writer);
    if (offline && server) {
        spdlog::info("replay done; serving metrics until Ctrl-C{}",
                     opt.duration > 0 ? " or the --duration ends" : "");
        while (!g_quit.load() && !(opt.duration > 0 && elapsed() >= opt.duration)) {
            if (g_reload.exchange(false)) reload_config(opt, reload_status, match_reload);
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    server.reset();
    engine.reset();
    return status;
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
    app.add_flag("--bench-dispatch-only", opt.bench_dispatch_only,
                 "benchmark only: workers count and drop every frame unanalysed, so the run "
                 "measures the software dispatcher alone (a port without RSS; with one worker the "
                 "dispatcher still runs, as an RX lcore)");
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
    } catch (const std::exception& e) {  // e.g. bad_alloc: one line, never std::terminate's abort
        std::cerr << "rstmon: " << e.what() << "\n";
        return kExitRuntime;
    }
}
