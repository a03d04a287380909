// libFuzzer target: lib/match's TLS SNI and HTTP Host extractors, which read a flow's first
// payload, i.e. bytes any client (or attacker) chooses. Both run on every input (each rejects the
// other's protocol within a few bytes). As in fuzz_packet, the bytes are copied into a heap buffer
// of exactly their length, and prefixes into their own, so ASan sees a read one byte too far.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "match/http_host.hpp"
#include "match/sni.hpp"

using namespace rstmon;

namespace {

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "fuzz_sni_host: invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                         __LINE__);                                                                \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

std::unique_ptr<uint8_t[]> exact_copy(const uint8_t* data, size_t len) {
    std::unique_ptr<uint8_t[]> p(new uint8_t[len]);  // new[0] is valid; reading it is reported
    if (len) std::memcpy(p.get(), data, len);
    return p;
}

// What HostName promises its readers (labels, logs, pattern matching).
void check_name(const match::HostName& h) {
    FUZZ_CHECK(h.len >= 1 && h.len <= match::HostName::kMax);
    for (size_t i = 0; i < h.len; ++i) {
        const auto ch = static_cast<uint8_t>(h.bytes[i]);
        FUZZ_CHECK(ch >= 0x21 && ch <= 0x7e);
        FUZZ_CHECK(!(ch >= 'A' && ch <= 'Z'));
    }
    // Not checked: a trailing dot. One is removed (an FQDN's root); "a.." keeps the second, as
    // HostName documents, and no resolver or server accepts such a name anyway.
}

struct Outcome {
    int result;
    std::string name;
};

template <typename Result, typename Extract>
Outcome run(Extract extract, const uint8_t* data, size_t len, Result found, size_t count,
            std::string_view (*result_name)(Result)) {
    const auto buf = exact_copy(data, len);
    match::HostName h;
    std::memset(h.bytes, 'X', sizeof h.bytes);  // stale upper-case bytes must never show
    h.len = 7;
    const Result r = extract(buf.get(), len, h);
    FUZZ_CHECK(static_cast<size_t>(r) < count);
    FUZZ_CHECK(!result_name(r).empty() && result_name(r) != "?");
    if (r == found)
        check_name(h);
    else
        FUZZ_CHECK(h.len == 0);  // `out` holds a name only on found
    return {static_cast<int>(r), r == found ? std::string(h.view()) : std::string()};
}

// The extractors decide on the first bytes that settle a question and never revisit it: a name
// found in a prefix is the name of the whole input, and a prefix that is not TLS / not HTTP stays
// so (the worker hands them the first segment, and later segments must not change the answer).
template <typename Result, typename Extract>
Outcome check_prefixes(Extract extract, const uint8_t* data, size_t len, Result found,
                       Result not_it, size_t count, std::string_view (*result_name)(Result)) {
    const Outcome full = run(extract, data, len, found, count, result_name);
    const size_t cuts[] = {len / 2, len > 0 ? len - 1 : 0, len > 16 ? size_t{16} : 0};
    for (const size_t cut : cuts) {
        if (cut >= len) continue;
        const Outcome part = run(extract, data, cut, found, count, result_name);
        if (part.result == static_cast<int>(found)) {
            FUZZ_CHECK(full.result == static_cast<int>(found));
            FUZZ_CHECK(full.name == part.name);
        }
        if (part.result == static_cast<int>(not_it)) FUZZ_CHECK(full.result == part.result);
    }
    return full;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const Outcome sni =
        check_prefixes(match::extract_sni, data, size, match::SniResult::found,
                       match::SniResult::not_tls, match::kSniResultCount, match::sni_result_name);
    const Outcome host = check_prefixes(
        match::extract_http_host, data, size, match::HttpHostResult::found,
        match::HttpHostResult::not_http, match::kHttpHostResultCount, match::http_host_result_name);
    // RSTMON_FUZZ_TRACE=1: what each extractor made of the input (to read a seed or a crash).
    static const bool trace = std::getenv("RSTMON_FUZZ_TRACE") != nullptr;
    if (trace)
        std::printf(
            "sni=%s '%s' host=%s '%s'\n",
            match::sni_result_name(static_cast<match::SniResult>(sni.result)).data(),
            sni.name.c_str(),
            match::http_host_result_name(static_cast<match::HttpHostResult>(host.result)).data(),
            host.name.c_str());
    return 0;
}
