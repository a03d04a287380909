// Offline replays: DPDK's net_pcap reads each frame of a capture file with two stdio fread()s
// (record header, then data) through libpcap. In a process with threads, as every DPDK process
// is, glibc takes the FILE's lock around each one: a locked compare-and-swap that also drains
// the store buffer, measured at half of the RX lcore's samples (`perf record` of `rstmon --pcap`
// on the 2.4 M-frame benchmark file: 93% of `__fread_chk` on that one instruction). The RX
// lcore is the only reader of a capture it replays, so the lock guards nothing.
//
// rstmon defines libpcap's open function for capture files (the one net_pcap and
// inspect_capture() call) and exports it from the executable, so the driver, loaded later as a
// plugin, binds to it. It opens the file with libpcap's own function and tells glibc that the
// caller does the locking (__fsetlocking), which here means none. Nothing else changes: if a
// future net_pcap opened files another way, this would simply not be called.
#include <dlfcn.h>
#include <pcap/pcap.h>
#include <stdio_ext.h>

extern "C" pcap_t* pcap_open_offline_with_tstamp_precision(const char* fname, u_int precision,
                                                           char* errbuf) {
    using Open = pcap_t* (*)(const char*, u_int, char*);
    static const Open libpcap_open = reinterpret_cast<Open>(
        dlsym(RTLD_NEXT, "pcap_open_offline_with_tstamp_precision"));
    if (libpcap_open == nullptr) {  // cannot happen with libpcap linked; say so rather than crash
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "libpcap's pcap_open_offline_with_tstamp_precision "
                                           "was not found");
        return nullptr;
    }
    pcap_t* p = libpcap_open(fname, precision, errbuf);
    if (p != nullptr && pcap_file(p) != nullptr) __fsetlocking(pcap_file(p), FSETLOCKING_BYCALLER);
    return p;
}
