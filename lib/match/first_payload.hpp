// A flow's service from the client's first payload: the TLS server name or the HTTP Host,
// matched against the configured patterns, decided once per flow.
//
// How a worker uses it (per-flow state it needs: the existing service/service_set, a 16-bit
// index of a borrowed FirstPayload while a name is still being collected, and a 32-bit trigger
// mask if it scans triggers):
//
//   on the client's first payload segment of a flow whose service is undecided:
//     r = identify(payload, len, ...)              // zero-copy: most names are in one segment
//     named / no_name -> service = r.service ?: port_map[server port] (0 = other); done
//     need_more       -> borrow a FirstPayload from the worker's pool (none free: decide by
//                        port and count it), reset(seq), add(seq, payload, len)
//   on each later client payload segment while it holds one:
//     a = fp.add(seq, payload, len); r = identify(fp.data(), fp.size(), ...)
//     named / no_name, or need_more with fp.full() -> decide as above, give the buffer back
//   when the flow ends first: give the buffer back (the flow is decided by port)
//
// A ClientHello with post-quantum key shares (about 1.8 KB) is split over two segments, which is
// why the pool exists; kCapacity holds any ClientHello a browser sends today.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "match/host_name.hpp"
#include "match/http_host.hpp"
#include "match/match_db.hpp"
#include "match/sni.hpp"

namespace rstmon::match {

// The first bytes of one direction's payload, in sequence order, in a fixed buffer owned by the
// caller. Retransmissions and overlaps are trimmed; a segment beyond a hole is refused (`gap`)
// and may be offered again once the hole is filled.
class FirstPayload {
public:
    static constexpr size_t kCapacity = 4096;

    enum class Add : uint8_t {
        appended,   // new bytes at the end
        duplicate,  // nothing new (a retransmission of bytes already held)
        gap,        // starts after the bytes held: something is missing in between
        full,       // the buffer is (now) full: what fitted was appended, the rest dropped
    };

    // Starts over: `seq` is the sequence number of the first payload byte.
    void reset(uint32_t seq) {
        seq0_ = seq;
        size_ = 0;
    }

    Add add(uint32_t seq, const uint8_t* p, size_t n);

    const uint8_t* data() const { return buf_; }
    size_t size() const { return size_; }
    bool full() const { return size_ == kCapacity; }
    uint32_t next_seq() const { return seq0_ + size_; }

private:
    uint32_t seq0_ = 0;
    uint32_t size_ = 0;
    uint8_t buf_[kCapacity];
};

struct Identification {
    enum class Status : uint8_t {
        named,      // a name was extracted: `kind`, `name` and `service` are set
        need_more,  // the bytes end inside a ClientHello or request head: call again with more
        no_name,    // not TLS, not HTTP/1.x, malformed, or no name in it: decide by port
    };
    Status status = Status::no_name;
    NameKind kind = NameKind::none;
    uint8_t service = 0;  // 0: no pattern matched (fall back to the port map, then "other")
    SniResult sni = SniResult::not_tls;        // what each extractor said, for counters
    HttpHostResult http = HttpHostResult::not_http;  // (not_http when TLS was recognised)
};

// TLS first (its first byte is 0x16, never the start of an HTTP method), then HTTP/1.x.
// The extracted name is written to `name` (valid when status is named). No allocation.
Identification identify(const uint8_t* data, size_t len, const MatchDatabases& db,
                        Scratch& scratch, HostName& name);

// How a flow's service was finally decided. X(name, one line for an operator): defined once,
// the enum and the metric label derive from it.
#define RSTMON_IDENT_METHODS(X)                                                       \
    X(sni, "a services[].sni pattern matched the TLS server name")                    \
    X(host, "a services[].host pattern matched the HTTP Host")                         \
    X(port, "no name pattern matched: the server port is a configured service port") \
    X(none, "no name pattern matched and the port is no service port: other")

enum class IdentMethod : uint8_t {
#define X(name, help) name,
    RSTMON_IDENT_METHODS(X)
#undef X
        count_
};
inline constexpr size_t kIdentMethodCount = static_cast<size_t>(IdentMethod::count_);
inline constexpr std::string_view kIdentMethodNames[] = {
#define X(name, help) #name,
    RSTMON_IDENT_METHODS(X)
#undef X
};

}  // namespace rstmon::match
