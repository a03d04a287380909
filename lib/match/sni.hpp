// TLS ClientHello -> server name (RFC 8446 4.1.2, RFC 6066 3). A pure function on the bytes a
// client sent first: no allocation, every length checked against both its enclosing structure and
// the bytes present, so it can be fed anything (truncated, hostile, not TLS at all).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "match/host_name.hpp"

namespace rstmon::match {

// X(name, one line for an operator). Defined once: enum and names derive from it.
#define RSTMON_SNI_RESULTS(X)                                                                   \
    X(found, "server_name host_name extracted")                                                 \
    X(not_tls, "the payload does not start a TLS handshake with a ClientHello")                 \
    X(incomplete, "the ClientHello goes on past the bytes given (e.g. split over segments)")    \
    X(malformed, "a length or value contradicts the TLS/ClientHello/server_name structure")     \
    X(no_sni, "a complete ClientHello without a server_name host_name")

enum class SniResult : uint8_t {
#define X(name, help) name,
    RSTMON_SNI_RESULTS(X)
#undef X
        count_
};
inline constexpr size_t kSniResultCount = static_cast<size_t>(SniResult::count_);
std::string_view sni_result_name(SniResult r);

// Reads TLS record(s) -> Handshake -> ClientHello -> extensions (in any order) -> server_name ->
// the first host_name. The ClientHello may span several TLS records. `found` is returned as soon
// as the server_name extension is complete, even if the ClientHello continues past `len`, so a
// name in the first segment needs no reassembly; `incomplete` means the bytes end before the
// name (or before the end of a ClientHello that has none). `out` holds the name only on `found`:
// lower-cased, one trailing dot removed, printable ASCII, 1-255 characters (anything else is
// `malformed`).
SniResult extract_sni(const uint8_t* data, size_t len, HostName& out);

}  // namespace rstmon::match
