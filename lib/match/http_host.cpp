#include "match/http_host.hpp"

namespace rstmon::match {
namespace {

constexpr size_t kMaxMethod = 32;

bool is_method_char(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '-' || c == '_'; }

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

bool is_hex(uint8_t c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 9110 5.6.2 tchar: what a header field name is made of.
bool is_tchar(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
        case '-': case '.': case '^': case '_': case '`': case '|': case '~':
            return true;
        default:
            return false;
    }
}

// RFC 3986 reg-name (unreserved, pct-encoded, sub-delims) and IPv4 characters.
bool is_reg_name_char(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
    switch (c) {
        case '-': case '.': case '_': case '~': case '%': case '!': case '$': case '&':
        case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
            return true;
        default:
            return false;
    }
}

bool is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

bool is_host_name(const uint8_t* p, size_t n) {
    return n == 4 && (p[0] | 0x20) == 'h' && (p[1] | 0x20) == 'o' && (p[2] | 0x20) == 's' &&
           (p[3] | 0x20) == 't';
}

enum class Eol : uint8_t { ok, incomplete, bad };

// At data[i] a line must end: CRLF or a bare LF (RFC 9112 2.2 lets recipients accept the
// latter). Moves i past it.
Eol end_of_line(const uint8_t* data, size_t len, size_t& i) {
    if (i == len) return Eol::incomplete;
    if (data[i] == '\n') {
        ++i;
        return Eol::ok;
    }
    if (data[i] != '\r') return Eol::bad;
    if (i + 1 == len) return Eol::incomplete;
    if (data[i + 1] != '\n') return Eol::bad;
    i += 2;
    return Eol::ok;
}

// Optional `:digits` after the host; an empty port is allowed (RFC 3986 3.2.3).
bool valid_port(const uint8_t* p, size_t n) {
    if (n == 0) return true;
    if (p[0] != ':' || n > 6) return false;
    for (size_t i = 1; i < n; ++i)
        if (!is_digit(p[i])) return false;
    return true;
}

// The Host field value, already trimmed: uri-host [ ":" port ].
HttpHostResult parse_host_value(const uint8_t* v, size_t n, HostName& out) {
    if (n == 0) return HttpHostResult::no_host;  // allowed when the target has no authority
    if (v[0] == '[') {  // IP-literal: the colons inside are the address's, not a port's
        size_t close = 1;
        while (close < n && v[close] != ']') {
            if (!is_hex(v[close]) && v[close] != ':' && v[close] != '.')
                return HttpHostResult::malformed;
            ++close;
        }
        if (close == n || close == 1) return HttpHostResult::malformed;
        if (!valid_port(v + close + 1, n - close - 1)) return HttpHostResult::malformed;
        return detail::store_name(v + 1, close - 1, out) ? HttpHostResult::found
                                                         : HttpHostResult::malformed;
    }
    size_t end = 0;
    while (end < n && v[end] != ':') {
        if (!is_reg_name_char(v[end])) return HttpHostResult::malformed;
        ++end;
    }
    if (end == 0 || !valid_port(v + end, n - end)) return HttpHostResult::malformed;
    return detail::store_name(v, end, out) ? HttpHostResult::found : HttpHostResult::malformed;
}

}  // namespace

std::string_view http_host_result_name(HttpHostResult r) {
    static constexpr std::string_view names[] = {
#define X(name, help) #name,
        RSTMON_HTTP_HOST_RESULTS(X)
#undef X
    };
    const auto i = static_cast<size_t>(r);
    return i < kHttpHostResultCount ? names[i] : "?";
}

HttpHostResult extract_http_host(const uint8_t* data, size_t len, HostName& out) {
    out.clear();
    size_t i = 0;

    // Request line. Every check runs as soon as its byte is present, so other protocols are
    // told apart on their first bytes, and only a plausible request is `incomplete`.
    while (i < len && is_method_char(data[i]))
        if (++i > kMaxMethod) return HttpHostResult::not_http;
    if (i == len) return HttpHostResult::incomplete;
    if (i == 0 || data[i] != ' ') return HttpHostResult::not_http;
    const size_t target = ++i;
    while (i < len && data[i] > 0x20 && data[i] < 0x7f) ++i;
    if (i == len) return HttpHostResult::incomplete;
    if (i == target || data[i] != ' ') return HttpHostResult::not_http;
    ++i;
    static constexpr char kVersion[] = "HTTP/1.";
    for (size_t k = 0; k + 1 < sizeof kVersion; ++k, ++i) {
        if (i == len) return HttpHostResult::incomplete;
        if (data[i] != static_cast<uint8_t>(kVersion[k])) return HttpHostResult::not_http;
    }
    if (i == len) return HttpHostResult::incomplete;
    if (!is_digit(data[i])) return HttpHostResult::not_http;
    ++i;
    switch (end_of_line(data, len, i)) {
        case Eol::ok: break;
        case Eol::incomplete: return HttpHostResult::incomplete;
        case Eol::bad: return HttpHostResult::malformed;
    }

    // Header lines until the empty line.
    for (;;) {
        if (i == len) return HttpHostResult::incomplete;
        if (data[i] == '\r' || data[i] == '\n') {
            switch (end_of_line(data, len, i)) {
                case Eol::ok: return HttpHostResult::no_host;
                case Eol::incomplete: return HttpHostResult::incomplete;
                case Eol::bad: return HttpHostResult::malformed;
            }
        }
        bool host = false;
        if (is_ows(data[i])) {
            // obs-fold: continues a header line that was not Host (a Host line ends the search
            // only once the byte after it shows it is not folded).
            ++i;
        } else {
            const size_t name = i;
            while (i < len && is_tchar(data[i])) ++i;
            if (i == len) return HttpHostResult::incomplete;
            // No whitespace between name and colon (RFC 9112 5.1: such a request is rejected).
            if (i == name || data[i] != ':') return HttpHostResult::malformed;
            host = is_host_name(data + name, i - name);
            ++i;
        }
        const size_t value = i;
        while (i < len && data[i] != '\r' && data[i] != '\n') {
            if ((data[i] < 0x20 && data[i] != '\t') || data[i] == 0x7f)
                return HttpHostResult::malformed;
            ++i;
        }
        if (i == len) return HttpHostResult::incomplete;
        size_t value_end = i;
        switch (end_of_line(data, len, i)) {
            case Eol::ok: break;
            case Eol::incomplete: return HttpHostResult::incomplete;
            case Eol::bad: return HttpHostResult::malformed;
        }
        if (!host) continue;
        if (i == len) return HttpHostResult::incomplete;  // a folded continuation may follow
        if (is_ows(data[i])) return HttpHostResult::malformed;
        size_t v = value;
        while (v < value_end && is_ows(data[v])) ++v;
        while (value_end > v && is_ows(data[value_end - 1])) --value_end;
        return parse_host_value(data + v, value_end - v, out);
    }
}

}  // namespace rstmon::match
