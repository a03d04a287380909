#include "capture_info.hpp"

#include <pcap/pcap.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace rstmon::app {

CaptureInfo inspect_capture(const std::string& path) {
    struct stat st{};
    if (stat(path.c_str(), &st) != 0)
        throw std::runtime_error("cannot open capture '" + path + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw std::runtime_error("capture '" + path + "' is not a regular file");
    if (path.find(',') != std::string::npos)
        throw std::runtime_error("capture path '" + path +
                                 "' contains a comma, which DPDK device arguments cannot carry");
    char err[PCAP_ERRBUF_SIZE] = {};
    // Nanosecond precision whatever the file's own: the clock calibration compares exact times.
    pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    if (p == nullptr)
        throw std::runtime_error("capture '" + path + "' is not a pcap or pcapng file (" + err + ")");
    CaptureInfo info;
    info.path = path;
    info.dlt = pcap_datalink(p);
    if (!packet::link_type_from_dlt(info.dlt, info.link)) {
        const char* n = pcap_datalink_val_to_name(info.dlt);
        pcap_close(p);
        throw std::runtime_error("capture '" + path + "' has link type " +
                                 (n ? std::string(n) : std::string("?")) + " (" +
                                 std::to_string(info.dlt) +
                                 "); rstmon reads Ethernet, Linux cooked (SLL, SLL2), raw IP and "
                                 "BSD loopback captures");
    }
    pcap_pkthdr* h;
    const u_char* d;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        info.frames++;
        info.bytes += h->caplen;
        if (info.clock_frame == 0 && (h->ts.tv_sec != 0 || h->ts.tv_usec != 0)) {
            info.clock_frame = info.frames;
            info.clock_ns = static_cast<uint64_t>(h->ts.tv_sec) * 1000000000ull +
                            static_cast<uint64_t>(h->ts.tv_usec);  // ns: see the open above
        }
    }
    const std::string perr = rc == PCAP_ERROR ? pcap_geterr(p) : "";
    pcap_close(p);
    if (rc == PCAP_ERROR && info.frames == 0)
        throw std::runtime_error("capture '" + path + "' cannot be read: " + perr);
    // A file cut short after some frames is still replayed (net_pcap delivers what it can read),
    // and the run then says so and exits non-zero.
    if (rc == PCAP_ERROR) info.cut_short = perr;
    return info;
}

}  // namespace rstmon::app
