// A host name taken from a flow's first payload (TLS SNI or HTTP Host), held in a fixed buffer
// owned by the caller: extraction never allocates. Shared by the SNI and Host extractors and the
// pattern matcher.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rstmon::match {

// Where a name came from; each kind has its own pattern database (config `sni:` / `host:`).
enum class NameKind : uint8_t { none, sni, host };

struct HostName {
    // A DNS name is at most 253 characters (255 octets on the wire); anything longer is no host
    // name, so a bounded buffer loses nothing real.
    static constexpr size_t kMax = 255;

    char bytes[kMax];
    uint16_t len = 0;

    std::string_view view() const { return {bytes, len}; }
    void clear() { len = 0; }
};

namespace detail {

// The extractors' common last step: accepts only printable ASCII without spaces (no host name
// needs more, and it keeps control bytes out of logs and labels), lower-cases it and drops one
// trailing dot (an FQDN's root). False if nothing valid remains.
inline bool store_name(const uint8_t* p, size_t n, HostName& out) {
    if (n > 0 && p[n - 1] == '.') --n;
    if (n == 0 || n > HostName::kMax) return false;
    for (size_t i = 0; i < n; ++i) {
        uint8_t ch = p[i];
        if (ch < 0x21 || ch > 0x7e) return false;
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<uint8_t>(ch - 'A' + 'a');
        out.bytes[i] = static_cast<char>(ch);
    }
    out.len = static_cast<uint16_t>(n);
    return true;
}

}  // namespace detail
}  // namespace rstmon::match
