// The end-of-run report: a table for people, JSON for scripts (a public interface: README).
#pragma once

#include <string>

#include "metrics/exporter.hpp"

namespace rstmon::app {

struct ReportContext {
    std::string source;  // capture path or "live"
    std::string link_type;
    double seconds = 0;
};

std::string text_report(const metrics::Totals& t, const ReportContext& ctx);
std::string json_report(const metrics::Totals& t, const ReportContext& ctx);

}  // namespace rstmon::app
