// Offline replays: DPDK's net_pcap reads each frame of a capture file with two stdio fread()s
// (record header, then data) through libpcap. In a process with threads, as every DPDK process
// is, glibc takes the FILE's lock around each one: a locked compare-and-swap that also drains
// the store buffer, measured at half of the RX lcore's samples (`perf record` of `rstmon --pcap`
// on the 2.4 M-frame benchmark file: 93% of `__fread_chk` on that one instruction). The RX
// lcore is the only reader of a capture it replays, so the lock guards nothing.
//
// rstmon defines libpcap's two functions that open capture files (net_pcap 22.11 calls
// pcap_open_offline, inspect_capture() and later drivers the nanosecond one) and exports them
// from the executable, so the driver, loaded later as a plugin, binds to them. Each opens the
// file with libpcap's own function and tells glibc that the caller does the locking
// (__fsetlocking), which here means none. Nothing else changes: a driver that opened files
// another way would simply not come here. tests/dpdk/test_offline_cli.py checks the binding.
#include <dlfcn.h>
#include <pcap/pcap.h>
#include <stdio_ext.h>

namespace {

template <typename Open>
Open libpcap_function(const char* name) {
    return reinterpret_cast<Open>(dlsym(RTLD_NEXT, name));
}

pcap_t* caller_locked(pcap_t* p) {
    if (p != nullptr && pcap_file(p) != nullptr) __fsetlocking(pcap_file(p), FSETLOCKING_BYCALLER);
    return p;
}

pcap_t* not_found(const char* name, char* errbuf) {  // cannot happen with libpcap linked
    snprintf(errbuf, PCAP_ERRBUF_SIZE, "libpcap's %s was not found", name);
    return nullptr;
}

}  // namespace

extern "C" pcap_t* pcap_open_offline_with_tstamp_precision(const char* fname, u_int precision,
                                                           char* errbuf) {
    using Open = pcap_t* (*)(const char*, u_int, char*);
    static const Open open = libpcap_function<Open>(__func__);
    return open ? caller_locked(open(fname, precision, errbuf)) : not_found(__func__, errbuf);
}

extern "C" pcap_t* pcap_open_offline(const char* fname, char* errbuf) {
    using Open = pcap_t* (*)(const char*, char*);
    static const Open open = libpcap_function<Open>(__func__);
    return open ? caller_locked(open(fname, errbuf)) : not_found(__func__, errbuf);
}
