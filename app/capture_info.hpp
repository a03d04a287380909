// What rstmon must know about a capture file before replaying it through net_pcap: that libpcap
// can read it (pcap or pcapng), its link type, and how many frames it holds (to know when the
// replay is complete).
#pragma once

#include <cstdint>
#include <string>

#include "packet/packet.hpp"

namespace rstmon::app {

struct CaptureInfo {
    std::string path;
    packet::LinkType link = packet::LinkType::ethernet;
    int dlt = 1;
    uint64_t frames = 0;
    uint64_t bytes = 0;
    // The first frame with a non-zero capture time (1-based, 0 = none) and that time in ns: what
    // the replay measures net_pcap's timestamp unit against (dpdk/rx_clock.hpp).
    uint64_t clock_frame = 0;
    uint64_t clock_ns = 0;
    // libpcap's complaint when the file ends inside a frame (cut short); `frames` counts the
    // whole frames before it, which is what net_pcap replays.
    std::string cut_short;
};

// Throws std::runtime_error with a one-line, user-facing reason.
CaptureInfo inspect_capture(const std::string& path);

}  // namespace rstmon::app
