// libFuzzer target: the YAML config loader (lib/config load_string). Its contract: a config either
// loads, valid, or is refused with ConfigError (one line naming the key). Any other exception
// escapes this function and libFuzzer reports it ("deadly signal" from std::terminate), like a
// crash, a hang or a sanitizer report.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/config.hpp"

using namespace rstmon;

namespace {

#define FUZZ_CHECK(cond)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            std::fprintf(stderr, "fuzz_config: invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                         __LINE__);                                                              \
            std::abort();                                                                        \
        }                                                                                        \
    } while (0)

// RSTMON_FUZZ_TRACE=1: whether the document loaded, or why not (to read a seed or a crash).
bool trace_enabled() {
    static const bool on = std::getenv("RSTMON_FUZZ_TRACE") != nullptr;
    return on;
}

void check_loaded(const config::Config& c) {
    // What load_string accepts, validate accepts (the command line re-validates after its
    // overrides: a loaded config must not start failing there).
    config::validate(c);
    FUZZ_CHECK(c.workers >= 1 && c.workers <= 64);
    FUZZ_CHECK(c.flow_table.size >= 1024);
    FUZZ_CHECK(std::isfinite(c.flow_table.handshake_timeout_s) &&
               c.flow_table.handshake_timeout_s >= 1);
    FUZZ_CHECK(std::isfinite(c.thresholds.idle_threshold_s) && c.thresholds.idle_threshold_s > 0);
    FUZZ_CHECK(std::isfinite(c.thresholds.linger_s) && c.thresholds.linger_s >= 0);
    FUZZ_CHECK(c.thresholds.linger_s < c.flow_table.closing_timeout_s);
    FUZZ_CHECK(c.thresholds.ttl_tolerance <= 255 && c.thresholds.retransmission_run <= 255 &&
               c.thresholds.keepalive_probes <= 255);
    FUZZ_CHECK(c.rx.burst >= 1 && c.rx.dispatch_ring >= 64);
    FUZZ_CHECK((c.rx.dispatch_ring & (c.rx.dispatch_ring - 1)) == 0);
    for (const auto& p : c.ports) FUZZ_CHECK(!p.device.empty() && !p.name.empty());
    for (const auto& s : c.services) {
        FUZZ_CHECK(!s.ports.empty());
        for (uint16_t port : s.ports) FUZZ_CHECK(port != 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // yaml-cpp recurses per nesting level; deep nesting is its own (bounded) concern, and 64 KiB
    // is far beyond any real config.
    if (size > 65536) return 0;
    const std::string text(reinterpret_cast<const char*>(data), size);
    config::Config loaded;
    bool ok = false;
    try {
        loaded = config::load_string(text);
        ok = true;
    } catch (const config::ConfigError& e) {
        // A refusal must say something: an empty message names no key.
        FUZZ_CHECK(e.what() != nullptr && e.what()[0] != '\0');
        if (trace_enabled()) std::printf("refused: %s\n", e.what());
    }
    if (ok && trace_enabled()) std::printf("loaded\n");
    if (ok) check_loaded(loaded);  // outside the try: a ConfigError here escapes, a finding
    // Durations are parsed from config values and from the command line: same contract.
    try {
        const double d = config::parse_duration(text);
        FUZZ_CHECK(std::isfinite(d));
    } catch (const config::ConfigError&) {
    }
    return 0;
}
