#include "match/sni.hpp"

#include <algorithm>
#include <cstring>

namespace rstmon::match {
namespace {

constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kTlsMajor = 3;
constexpr uint8_t kMaxTlsMinor = 4;  // TLS 1.3 (records say 0x0301 or 0x0303; SSL 3.0 is 0x0300)
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecord = 16384;  // TLSPlaintext.length limit (RFC 8446 5.1)
constexpr uint8_t kClientHello = 1;
// legacy_version 2 + random 32 + session_id length 1 + cipher_suites length 2 + one suite 2 +
// compression_methods length 1 + one method 1
constexpr size_t kMinClientHello = 41;
constexpr uint16_t kExtServerName = 0;
constexpr uint8_t kHostNameType = 0;

enum class Step : uint8_t { ok, incomplete, malformed };

// The payload bytes of consecutive handshake records, read as one stream without copying them
// together: a ClientHello may legally be fragmented over several records.
class HandshakeStream {
public:
    HandshakeStream(const uint8_t* data, size_t len) : p_(data), n_(len) {}

    // Moves k bytes on, copying them to dst unless it is null.
    Step read(uint8_t* dst, size_t k) {
        while (k > 0) {
            if (record_left_ == 0) {
                const Step s = next_record();
                if (s != Step::ok) return s;
            }
            const size_t avail = std::min(record_left_, n_ - pos_);
            if (avail == 0) return Step::incomplete;
            const size_t take = std::min(avail, k);
            if (dst != nullptr) {
                std::memcpy(dst, p_ + pos_, take);
                dst += take;
            }
            pos_ += take;
            record_left_ -= take;
            k -= take;
        }
        return Step::ok;
    }

    Step skip(size_t k) { return read(nullptr, k); }

    Step u8(uint32_t& v) { return number(1, v); }
    Step u16(uint32_t& v) { return number(2, v); }
    Step u24(uint32_t& v) { return number(3, v); }

private:
    Step number(size_t k, uint32_t& v) {
        uint8_t b[3];
        const Step s = read(b, k);
        if (s != Step::ok) return s;
        v = 0;
        for (size_t i = 0; i < k; ++i) v = (v << 8) | b[i];
        return Step::ok;
    }

    // Only a handshake record may continue a fragmented handshake message (RFC 8446 5.1).
    Step next_record() {
        const size_t have = n_ - pos_;
        const uint8_t* h = p_ + pos_;
        if (have >= 1 && h[0] != kContentHandshake) return Step::malformed;
        if (have >= 2 && h[1] != kTlsMajor) return Step::malformed;
        if (have < kRecordHeader) return Step::incomplete;
        const size_t len = (size_t{h[3]} << 8) | h[4];
        if (len == 0 || len > kMaxRecord) return Step::malformed;
        pos_ += kRecordHeader;
        record_left_ = len;
        return Step::ok;
    }

    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
    size_t record_left_ = 0;
};

SniResult to_result(Step s) {
    return s == Step::incomplete ? SniResult::incomplete : SniResult::malformed;
}

}  // namespace

std::string_view sni_result_name(SniResult r) {
    static constexpr std::string_view names[] = {
#define X(name, help) #name,
        RSTMON_SNI_RESULTS(X)
#undef X
    };
    const auto i = static_cast<size_t>(r);
    return i < kSniResultCount ? names[i] : "?";
}

SniResult extract_sni(const uint8_t* data, size_t len, HostName& out) {
    out.clear();
    // Not TLS as soon as a byte of the first record header says so: most first payloads are not
    // TLS, and a protocol that waits for the server never completes five bytes.
    if (len >= 1 && data[0] != kContentHandshake) return SniResult::not_tls;
    if (len >= 2 && data[1] != kTlsMajor) return SniResult::not_tls;
    if (len >= 3 && data[2] > kMaxTlsMinor) return SniResult::not_tls;
    if (len >= kRecordHeader + 1 && data[kRecordHeader] != kClientHello) return SniResult::not_tls;

    HandshakeStream in(data, len);
    // Each field is checked against the bytes its enclosing length leaves (`left`) before it is
    // read, so a hostile length is `malformed` whether or not the bytes it claims are present.
    Step s;
#define RSTMON_TRY(expr)                          \
    if ((s = (expr)) != Step::ok) return to_result(s)

    uint32_t type, msg_len;
    RSTMON_TRY(in.u8(type));
    RSTMON_TRY(in.u24(msg_len));
    if (type != kClientHello) return SniResult::not_tls;
    if (msg_len < kMinClientHello) return SniResult::malformed;
    size_t left = msg_len;

    uint32_t version;
    RSTMON_TRY(in.u16(version));
    if ((version >> 8) != kTlsMajor) return SniResult::malformed;
    RSTMON_TRY(in.skip(32));  // random
    left -= 34;

    uint32_t n;
    RSTMON_TRY(in.u8(n));  // legacy_session_id <0..32>
    if (n > 32 || 1 + n > left) return SniResult::malformed;
    RSTMON_TRY(in.skip(n));
    left -= 1 + n;

    if (left < 2) return SniResult::malformed;
    RSTMON_TRY(in.u16(n));  // cipher_suites <2..2^16-2>, pairs of bytes
    if (n < 2 || (n & 1) != 0 || 2 + n > left) return SniResult::malformed;
    RSTMON_TRY(in.skip(n));
    left -= 2 + n;

    if (left < 1) return SniResult::malformed;
    RSTMON_TRY(in.u8(n));  // legacy_compression_methods <1..2^8-1>
    if (n < 1 || 1 + n > left) return SniResult::malformed;
    RSTMON_TRY(in.skip(n));
    left -= 1 + n;

    if (left == 0) return SniResult::no_sni;  // pre-extension (SSL 3.0 era) ClientHello
    if (left < 2) return SniResult::malformed;
    uint32_t ext_total;
    RSTMON_TRY(in.u16(ext_total));
    left -= 2;
    if (ext_total > left) return SniResult::malformed;
    size_t ext_left = ext_total;

    while (ext_left > 0) {
        if (ext_left < 4) return SniResult::malformed;
        uint32_t ext_type, ext_len;
        RSTMON_TRY(in.u16(ext_type));
        RSTMON_TRY(in.u16(ext_len));
        ext_left -= 4;
        if (ext_len > ext_left) return SniResult::malformed;
        ext_left -= ext_len;
        if (ext_type != kExtServerName) {
            RSTMON_TRY(in.skip(ext_len));
            continue;
        }
        // ServerNameList server_name_list <1..2^16-1>, filling the extension exactly.
        uint32_t list_len;
        if (ext_len < 2) return SniResult::malformed;
        RSTMON_TRY(in.u16(list_len));
        if (list_len == 0 || list_len + 2 != ext_len) return SniResult::malformed;
        size_t list_left = list_len;
        while (list_left > 0) {
            if (list_left < 3) return SniResult::malformed;
            uint32_t name_type, name_len;
            RSTMON_TRY(in.u8(name_type));
            RSTMON_TRY(in.u16(name_len));  // HostName <1..2^16-1>
            list_left -= 3;
            if (name_len == 0 || name_len > list_left) return SniResult::malformed;
            list_left -= name_len;
            if (name_type != kHostNameType) {  // no other type is defined; skip it as opaque
                RSTMON_TRY(in.skip(name_len));
                continue;
            }
            // One more than HostName::kMax: the trailing dot of an FQDN is dropped.
            uint8_t raw[HostName::kMax + 1];
            if (name_len > sizeof raw) return SniResult::malformed;
            RSTMON_TRY(in.read(raw, name_len));
            return detail::store_name(raw, name_len, out) ? SniResult::found
                                                          : SniResult::malformed;
        }
        return SniResult::no_sni;
    }
#undef RSTMON_TRY
    return SniResult::no_sni;
}

}  // namespace rstmon::match
