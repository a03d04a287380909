// The end-of-run report: a table for people, JSON for scripts (a public interface: README).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "metrics/exporter.hpp"

namespace rstmon::app {

struct ReportContext {
    std::string source;  // capture path or "live"
    std::string link_type;
    double seconds = 0;
    std::string top_json;  // the /top document, reported as "top" in JSON (empty: none)
    std::vector<std::string> service_names;  // index 0 = "other" (empty: no per-service lines)
    std::vector<std::string> trigger_names;  // config triggers, by index
    uint64_t event_write_errors = 0;  // RST events the event file refused (full disk, ...)
};

std::string text_report(const metrics::Totals& t, const ReportContext& ctx);
std::string json_report(const metrics::Totals& t, const ReportContext& ctx);

}  // namespace rstmon::app
