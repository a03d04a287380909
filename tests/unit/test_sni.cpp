// extract_sni on ClientHellos built field by field here (the real ones from openssl s_client and
// curl are in test_match_pcap.cpp). Prefixes are copied into buffers of exactly their size, so
// an ASan build catches any read past the bytes given.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "match/sni.hpp"

using namespace rstmon::match;

namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, size_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
void put24(Bytes& b, size_t v) {
    b.push_back(static_cast<uint8_t>(v >> 16));
    put16(b, v & 0xffff);
}
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

struct Ext {
    uint16_t type;
    Bytes data;
};

Bytes ext_bytes(const Ext& e) {
    Bytes b;
    put16(b, e.type);
    put16(b, e.data.size());
    append(b, e.data);
    return b;
}

// server_name extension data: a list of (name_type, name) entries.
Bytes server_name_list(const std::vector<std::pair<uint8_t, std::string>>& names) {
    Bytes list;
    for (const auto& [type, name] : names) {
        list.push_back(type);
        put16(list, name.size());
        list.insert(list.end(), name.begin(), name.end());
    }
    Bytes d;
    put16(d, list.size());
    append(d, list);
    return d;
}

Ext sni(const std::string& name) { return {0, server_name_list({{0, name}})}; }
Ext filler(uint16_t type, size_t n, uint8_t fill = 0xab) { return {type, Bytes(n, fill)}; }

// ClientHello handshake message (type 1) with the given extensions; no extension block at all
// when `exts` is null.
Bytes client_hello(const std::vector<Ext>* exts) {
    Bytes body;
    put16(body, 0x0303);                // legacy_version
    body.insert(body.end(), 32, 0x11);  // random
    body.push_back(32);                 // legacy_session_id
    body.insert(body.end(), 32, 0x22);
    put16(body, 6);  // three cipher suites
    for (uint16_t cs : {0x1301, 0x1302, 0xc02f}) put16(body, cs);
    body.push_back(1);  // compression: null
    body.push_back(0);
    if (exts != nullptr) {
        Bytes all;
        for (const Ext& e : *exts) append(all, ext_bytes(e));
        put16(body, all.size());
        append(body, all);
    }
    Bytes hs{1};
    put24(hs, body.size());
    append(hs, body);
    return hs;
}
Bytes client_hello(const std::vector<Ext>& exts) { return client_hello(&exts); }

// The handshake message in TLS records of at most `frag` bytes each.
Bytes records(const Bytes& hs, size_t frag = 16384) {
    Bytes out;
    for (size_t off = 0; off < hs.size(); off += frag) {
        const size_t n = std::min(frag, hs.size() - off);
        out.push_back(22);
        put16(out, 0x0301);
        put16(out, n);
        out.insert(out.end(), hs.begin() + static_cast<long>(off),
                   hs.begin() + static_cast<long>(off + n));
    }
    return out;
}

struct Got {
    SniResult r;
    std::string name;
};

// On a heap buffer of exactly `len` bytes.
Got run(const Bytes& b, size_t len) {
    Bytes exact(b.begin(), b.begin() + static_cast<long>(len));
    HostName out;
    const SniResult r = extract_sni(exact.data(), exact.size(), out);
    return {r, r == SniResult::found ? std::string(out.view()) : std::string()};
}
Got run(const Bytes& b) { return run(b, b.size()); }

Bytes from_string(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Offset in records(hs, frag) just past the last byte of `needle` in the handshake message:
// the name's last byte is what turns `incomplete` into `found`.
size_t end_in_records(const Bytes& hs, const std::string& needle, size_t frag) {
    const auto it = std::search(hs.begin(), hs.end(), needle.begin(), needle.end());
    EXPECT_NE(it, hs.end()) << needle;
    const size_t last = static_cast<size_t>(it - hs.begin()) + needle.size() - 1;
    return last + 5 * (last / frag + 1) + 1;
}

}  // namespace

TEST(Sni, FoundInMinimalClientHello) {
    const Got g = run(records(client_hello({sni("api.example.com")})));
    EXPECT_EQ(g.r, SniResult::found);
    EXPECT_EQ(g.name, "api.example.com");
}

TEST(Sni, FoundAfterSeveralOtherExtensions) {
    // The order Chrome randomises into: SNI after a large (post-quantum) key share.
    const std::vector<Ext> exts = {filler(0x002b, 3),    filler(0x0010, 14),
                                   filler(0x0033, 1250), filler(0xfe0d, 200),
                                   sni("late.example.net"), filler(0x0015, 40, 0)};
    const Got g = run(records(client_hello(exts)));
    EXPECT_EQ(g.r, SniResult::found);
    EXPECT_EQ(g.name, "late.example.net");
}

TEST(Sni, NameIsLowerCasedAndLosesOneTrailingDot) {
    EXPECT_EQ(run(records(client_hello({sni("API.Example.COM.")}))).name, "api.example.com");
}

TEST(Sni, OtherNameTypesAreSkipped) {
    const Ext e{0, server_name_list({{7, "opaque"}, {0, "second.example.org"}})};
    const Got g = run(records(client_hello({e})));
    EXPECT_EQ(g.r, SniResult::found);
    EXPECT_EQ(g.name, "second.example.org");
    EXPECT_EQ(run(records(client_hello({Ext{0, server_name_list({{7, "x"}})}}))).r,
              SniResult::no_sni);
}

TEST(Sni, NoServerName) {
    EXPECT_EQ(run(records(client_hello({filler(0x002b, 3), filler(0x000a, 8)}))).r,
              SniResult::no_sni);
    EXPECT_EQ(run(records(client_hello(std::vector<Ext>{}))).r, SniResult::no_sni);
    EXPECT_EQ(run(records(client_hello(nullptr))).r, SniResult::no_sni);  // no extension block
}

TEST(Sni, ClientHelloOverManyRecordsWithTheNameSplitAcrossThem) {
    const Bytes hs = client_hello({filler(0x0033, 300), sni("fragmented.example.com")});
    for (size_t frag : {1, 2, 7, 64, 100, 333}) {
        const Got g = run(records(hs, frag));
        EXPECT_EQ(g.r, SniResult::found) << frag;
        EXPECT_EQ(g.name, "fragmented.example.com") << frag;
    }
}

TEST(Sni, TruncatedAtEveryOffsetIsIncompleteUntilTheNameEnds) {
    const std::string name = "truncated.example.com";
    const Bytes hs = client_hello({filler(0x002b, 5), sni(name), filler(0x0033, 90)});
    for (size_t frag : {size_t{16384}, size_t{50}}) {
        const Bytes full = records(hs, frag);
        const size_t name_end = end_in_records(hs, name, frag);
        for (size_t len = 0; len <= full.size(); ++len) {
            const Got g = run(full, len);
            if (len < name_end) {
                ASSERT_EQ(g.r, SniResult::incomplete) << "frag " << frag << " len " << len;
            } else {
                ASSERT_EQ(g.r, SniResult::found) << "frag " << frag << " len " << len;
                ASSERT_EQ(g.name, name);
            }
        }
    }
}

TEST(Sni, TruncatedWithoutServerNameIsIncompleteUntilTheEnd) {
    const Bytes full = records(client_hello({filler(0x002b, 5), filler(0x0033, 90)}), 40);
    for (size_t len = 0; len < full.size(); ++len)
        ASSERT_EQ(run(full, len).r, SniResult::incomplete) << len;
    EXPECT_EQ(run(full).r, SniResult::no_sni);
}

TEST(Sni, HostileLengthsAreMalformedNotOutOfBounds) {
    // Extension length past the end of the extension block.
    {
        Bytes hs = client_hello({sni("a.example")});
        // ext header sits right after the 2-byte extensions length: bump its length by 100
        const size_t ext_len_at = hs.size() - ext_bytes(sni("a.example")).size() + 2;
        hs[ext_len_at + 1] = static_cast<uint8_t>(hs[ext_len_at + 1] + 100);
        EXPECT_EQ(run(records(hs)).r, SniResult::malformed);
    }
    // Extensions block longer than the ClientHello.
    {
        Bytes hs = client_hello({sni("a.example")});
        const size_t total_at = hs.size() - ext_bytes(sni("a.example")).size() - 2;
        hs[total_at] = 0x40;
        EXPECT_EQ(run(records(hs)).r, SniResult::malformed);
    }
    // Name length 0.
    EXPECT_EQ(run(records(client_hello({Ext{0, server_name_list({{0, ""}})}}))).r,
              SniResult::malformed);
    // Name length 65535 inside a short list.
    {
        Bytes d;
        put16(d, 3 + 4);
        d.push_back(0);
        put16(d, 65535);
        append(d, from_string("abcd"));
        EXPECT_EQ(run(records(client_hello({Ext{0, d}}))).r, SniResult::malformed);
    }
    // Lengths that agree with each other up to the 65535-byte extension block, claiming a
    // 65526-byte name: refused from its length, before any of those bytes arrive (no host name
    // is that long).
    {
        constexpr size_t kName = 65535 - 4 - 2 - 3;
        Bytes tail;
        put16(tail, 0);              // extension type server_name
        put16(tail, 65535 - 4);      // extension length
        put16(tail, 65535 - 4 - 2);  // list length
        tail.push_back(0);
        put16(tail, kName);
        Bytes hs = client_hello(std::vector<Ext>{});
        hs.resize(hs.size() - 2);  // drop the empty extensions length
        put16(hs, 65535);
        append(hs, tail);
        const size_t body = hs.size() - 4 + kName;
        hs[1] = static_cast<uint8_t>(body >> 16);
        hs[2] = static_cast<uint8_t>(body >> 8);
        hs[3] = static_cast<uint8_t>(body);
        EXPECT_EQ(run(records(hs, 512)).r, SniResult::malformed);
    }
    // A list length that does not fill the extension.
    {
        Bytes d = server_name_list({{0, "x.example"}});
        d.push_back(0);
        EXPECT_EQ(run(records(client_hello({Ext{0, d}}))).r, SniResult::malformed);
    }
    // Empty server_name extension (allowed in a ServerHello only).
    EXPECT_EQ(run(records(client_hello({Ext{0, {}}}))).r, SniResult::malformed);
}

TEST(Sni, HostileHeaderFieldsAreMalformed) {
    const Bytes good = records(client_hello({sni("a.example")}));
    auto with = [&](size_t at, uint8_t v) {
        Bytes b = good;
        b[at] = v;
        return run(b).r;
    };
    {
        Bytes b = good;  // record length 0
        b[3] = 0;
        b[4] = 0;
        EXPECT_EQ(run(b).r, SniResult::malformed);
        b[3] = 0x4e;  // 20000 > 2^14
        b[4] = 0x20;
        EXPECT_EQ(run(b).r, SniResult::malformed);
    }
    EXPECT_EQ(with(8, 40), SniResult::malformed);  // handshake length below a ClientHello's
    // A handshake length beyond the bytes given: the name within them is still found.
    EXPECT_EQ(with(6, 0x01), SniResult::found);
    EXPECT_EQ(with(9, 2), SniResult::malformed);      // legacy_version major 2
    EXPECT_EQ(with(43, 33), SniResult::malformed);    // session id longer than 32
    {
        Bytes b = good;  // an odd cipher_suites length
        b[5 + 4 + 2 + 32 + 1 + 32 + 1] = 5;
        EXPECT_EQ(run(b).r, SniResult::malformed);
    }
    // The ClientHello continued in a record that is not a handshake record.
    Bytes two = records(client_hello({filler(0x0033, 100), sni("b.example")}), 60);
    two[5 + 60] = 23;  // application_data
    EXPECT_EQ(run(two).r, SniResult::malformed);
}

TEST(Sni, NamesThatAreNoHostNamesAreMalformed) {
    using namespace std::string_literals;
    for (const std::string& bad : {"has space.example"s, "tab\t.example"s, "nul\0x"s, "."s,
                                   "\x7f"s, "caf\xc3\xa9.example"s}) {
        EXPECT_EQ(run(records(client_hello({sni(bad)}))).r, SniResult::malformed) << bad;
    }
    const std::string longest(255, 'a');
    EXPECT_EQ(run(records(client_hello({sni(longest)}))).name, longest);
    EXPECT_EQ(run(records(client_hello({sni(longest + ".")}))).name, longest);
    EXPECT_EQ(run(records(client_hello({sni(longest + "a")}))).r, SniResult::malformed);
}

TEST(Sni, NotTlsIsDecidedOnTheFirstBytes) {
    EXPECT_EQ(run(from_string("GET / HTTP/1.1\r\nHost: a\r\n\r\n")).r, SniResult::not_tls);
    EXPECT_EQ(run(from_string("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")).r,
              SniResult::not_tls);
    EXPECT_EQ(run(from_string("G")).r, SniResult::not_tls);
    EXPECT_EQ(run(Bytes{0x16, 0x02}).r, SniResult::not_tls);     // not version 3.x
    EXPECT_EQ(run(Bytes{0x16, 0x03, 0x07}).r, SniResult::not_tls);
    EXPECT_EQ(run(Bytes{0x80, 0x2e, 0x01, 0x03, 0x01}).r, SniResult::not_tls);  // SSLv2 hello
    // A ServerHello (a capture from the wrong side, or a mid-stream pickup).
    Bytes server_hello = records(client_hello({sni("a.example")}));
    server_hello[5] = 2;
    EXPECT_EQ(run(server_hello).r, SniResult::not_tls);
    // Too few bytes to tell.
    EXPECT_EQ(run(Bytes{}).r, SniResult::incomplete);
    EXPECT_EQ(run(Bytes{0x16}).r, SniResult::incomplete);
    EXPECT_EQ(run(Bytes{0x16, 0x03, 0x01, 0x00}).r, SniResult::incomplete);
}

TEST(Sni, ResultNames) {
    EXPECT_EQ(sni_result_name(SniResult::found), "found");
    EXPECT_EQ(sni_result_name(SniResult::not_tls), "not_tls");
    EXPECT_EQ(sni_result_name(SniResult::incomplete), "incomplete");
    EXPECT_EQ(sni_result_name(SniResult::malformed), "malformed");
    EXPECT_EQ(sni_result_name(SniResult::no_sni), "no_sni");
}

// Random corruption of a valid ClientHello and random bytes behind a TLS header: whatever comes
// back, a `found` name obeys the HostName rules, and (under ASan) nothing outside the buffer is
// read.
TEST(Sni, MutatedClientHellosNeverYieldAnInvalidName) {
    const Bytes base =
        records(client_hello({filler(0x002b, 3), sni("mutant.example.org"), filler(0x0033, 70)}),
                90);
    std::mt19937 rng(12345);
    size_t found = 0, malformed = 0;
    for (int iter = 0; iter < 20000; ++iter) {
        Bytes b = base;
        if (iter % 2 == 0) {
            const int flips = 1 + static_cast<int>(rng() % 4);
            for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
        } else {
            for (size_t k = 5; k < b.size(); ++k) b[k] = static_cast<uint8_t>(rng());
            b[5] = 1;
        }
        const size_t len = rng() % (b.size() + 1);
        const Got g = run(b, len);
        if (g.r == SniResult::found) {
            ++found;
            ASSERT_FALSE(g.name.empty());
            ASSERT_LE(g.name.size(), HostName::kMax);
            for (const char ch : g.name) {
                ASSERT_TRUE(ch > 0x20 && ch < 0x7f && !(ch >= 'A' && ch <= 'Z')) << g.name;
            }
        }
        if (g.r == SniResult::malformed) ++malformed;
    }
    // Both outcomes occur, so the loop exercised the paths it claims to.
    EXPECT_GT(found, 100u);
    EXPECT_GT(malformed, 100u);
}
