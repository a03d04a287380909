// HTTP/1.x request -> Host header (RFC 9112 3 and 5, RFC 9110 7.2). A pure function on the bytes
// a client sent first: no allocation, never reads past `len`, safe on any input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "match/host_name.hpp"

namespace rstmon::match {

// X(name, one line for an operator). Defined once: enum and names derive from it.
#define RSTMON_HTTP_HOST_RESULTS(X)                                                          \
    X(found, "Host header extracted")                                                        \
    X(not_http, "the payload does not start with an HTTP/1.x request line")                  \
    X(incomplete, "the request line or headers go on past the bytes given")                  \
    X(malformed, "an HTTP/1.x request whose header lines or Host value break the grammar")   \
    X(no_host, "the header section ended without a Host header (or with an empty one)")

enum class HttpHostResult : uint8_t {
#define X(name, help) name,
    RSTMON_HTTP_HOST_RESULTS(X)
#undef X
        count_
};
inline constexpr size_t kHttpHostResultCount = static_cast<size_t>(HttpHostResult::count_);
std::string_view http_host_result_name(HttpHostResult r);

// Request line `METHOD SP target SP HTTP/1.d` (method: A-Z - _, at most 32 characters), then
// header lines up to the empty line; lines end in CRLF or a bare LF. The first Host header wins
// (name matched case-insensitively, value trimmed of spaces and tabs). `found` as soon as the
// Host line is complete and the next byte shows it is not folded, even if more headers follow.
// The value `host[:port]` or `[ipv6]:port` gives `out` without port or brackets, lower-cased,
// one trailing dot removed (see HostName). A request target in absolute form
// (`GET http://h/ ...`, proxies) is not consulted: the Host header is.
// not_http is decided on the first byte that cannot belong to a request line (so an SSH or SMTP
// client's first line is not_http at once); HTTP/2's preface (PRI * HTTP/2.0) is not_http too.
HttpHostResult extract_http_host(const uint8_t* data, size_t len, HostName& out);

}  // namespace rstmon::match
