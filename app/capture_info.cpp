#include "capture_info.hpp"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace rstmon::app {
namespace {

// The count of a classic pcap file by its record headers alone, read in large blocks (1 MiB):
// a 12M-frame, 900 MB capture in about 0.2 s, where libpcap, which copies every frame out, takes
// a second, before the replay can start. True only for a well-formed file that ends exactly
// after its last record; anything else (pcapng, a cut, a record libpcap would refuse) is left to
// libpcap's loop, whose verdicts and messages stay the reference.
bool count_classic_pcap(const std::string& path, CaptureInfo& info) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::vector<uint8_t> buf(1u << 20);
    uint64_t frames = 0, bytes = 0, clock_frame = 0, clock_ns = 0;
    bool ok = false, swapped = false, nano = false;
    size_t have = 0, at = 0;  // bytes in buf, parse position
    bool eof = false;
    auto fill = [&]() {  // keep the unparsed tail, read more after it
        std::memmove(buf.data(), buf.data() + at, have - at);
        have -= at;
        at = 0;
        while (!eof && have < buf.size()) {
            const ssize_t n = read(fd, buf.data() + have, buf.size() - have);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                eof = true;
                break;
            }
            have += static_cast<size_t>(n);
        }
    };
    auto u32 = [&](size_t off) {
        uint32_t v;
        std::memcpy(&v, buf.data() + off, 4);
        return swapped ? __builtin_bswap32(v) : v;
    };
    fill();
    if (have >= 24) {
        uint32_t magic;
        std::memcpy(&magic, buf.data(), 4);
        swapped = magic == 0xd4c3b2a1u || magic == 0x4d3cb2a1u;
        nano = magic == 0xa1b23c4du || magic == 0x4d3cb2a1u;
        ok = swapped || nano || magic == 0xa1b2c3d4u;
        at = 24;
    }
    while (ok) {
        if (have - at < 16) {
            fill();
            if (have == at) break;         // exactly at the end: done
            if (have - at < 16) ok = false;  // cut inside a record header
            continue;
        }
        const uint32_t sec = u32(at), frac = u32(at + 4), caplen = u32(at + 8);
        if (caplen > 262144) {  // libpcap refuses it: its message is the one to give
            ok = false;
            break;
        }
        if (have - at < 16 + static_cast<size_t>(caplen)) {
            fill();
            if (have - at < 16 + static_cast<size_t>(caplen)) ok = false;  // cut inside a frame
            continue;
        }
        frames++;
        bytes += caplen;
        if (clock_frame == 0 && (sec != 0 || frac != 0)) {
            clock_frame = frames;
            clock_ns = uint64_t{sec} * 1000000000ull + (nano ? frac : uint64_t{frac} * 1000ull);
        }
        at += 16 + caplen;
    }
    close(fd);
    if (!ok) return false;
    info.frames = frames;
    info.bytes = bytes;
    info.clock_frame = clock_frame;
    info.clock_ns = clock_ns;
    return true;
}

}  // namespace

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
    if (count_classic_pcap(path, info)) {
        pcap_close(p);
        return info;
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
