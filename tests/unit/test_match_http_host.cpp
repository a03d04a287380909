// extract_http_host on request heads written out here (curl's real ones are in
// test_match_pcap.cpp). Inputs are copied into buffers of exactly their size, so an ASan build
// catches any read past the bytes given.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "match/http_host.hpp"

using namespace rstmon::match;

namespace {

struct Got {
    HttpHostResult r;
    std::string name;
};

Got run(const std::string& s, size_t len) {
    std::vector<uint8_t> exact(s.begin(), s.begin() + static_cast<long>(len));
    HostName out;
    const HttpHostResult r = extract_http_host(exact.data(), exact.size(), out);
    return {r, r == HttpHostResult::found ? std::string(out.view()) : std::string()};
}
Got run(const std::string& s) { return run(s, s.size()); }

std::string host_of(const std::string& s) {
    const Got g = run(s);
    EXPECT_EQ(g.r, HttpHostResult::found) << s;
    return g.name;
}

std::string get_with(const std::string& host_line) {
    return "GET /index.html HTTP/1.1\r\nUser-Agent: t\r\n" + host_line + "\r\nAccept: */*\r\n\r\n";
}

}  // namespace

TEST(HttpHost, PlainRequest) {
    EXPECT_EQ(host_of("GET / HTTP/1.1\r\nHost: www.example.org\r\n\r\n"), "www.example.org");
    EXPECT_EQ(host_of(get_with("Host: api.example.com")), "api.example.com");
    EXPECT_EQ(host_of("POST /submit HTTP/1.0\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n"),
              "a.example");
}

TEST(HttpHost, HeaderNameIsCaseInsensitiveValueIsLowerCased) {
    EXPECT_EQ(host_of(get_with("hOsT: WWW.Example.ORG")), "www.example.org");
    EXPECT_EQ(host_of(get_with("HOST: x.example")), "x.example");
    // Neither a longer nor a shorter name is Host.
    EXPECT_EQ(run(get_with("Hostname: x.example")).r, HttpHostResult::no_host);
    EXPECT_EQ(run(get_with("X-Host: x.example")).r, HttpHostResult::no_host);
}

TEST(HttpHost, SpacesAndTabsAroundTheValueAreTrimmed) {
    EXPECT_EQ(host_of(get_with("Host:example.org")), "example.org");
    EXPECT_EQ(host_of(get_with("Host: \t  example.org \t ")), "example.org");
}

TEST(HttpHost, PortIsStripped) {
    EXPECT_EQ(host_of(get_with("Host: example.org:8080")), "example.org");
    EXPECT_EQ(host_of(get_with("Host: example.org:")), "example.org");  // empty port is allowed
    EXPECT_EQ(host_of(get_with("Host: 10.1.2.3:80")), "10.1.2.3");
    EXPECT_EQ(run(get_with("Host: example.org:80x")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: example.org:123456")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: :80")).r, HttpHostResult::malformed);
}

TEST(HttpHost, Ipv6LiteralInBrackets) {
    EXPECT_EQ(host_of(get_with("Host: [::1]:8080")), "::1");
    EXPECT_EQ(host_of(get_with("Host: [FD00:98::2]")), "fd00:98::2");
    EXPECT_EQ(host_of(get_with("Host: [::ffff:10.0.0.1]:443")), "::ffff:10.0.0.1");
    EXPECT_EQ(run(get_with("Host: [::1")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: []:80")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: [::1]x")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: [zz::1]")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: ::1")).r, HttpHostResult::malformed);  // unbracketed
}

TEST(HttpHost, TrailingDotIsDropped) {
    EXPECT_EQ(host_of(get_with("Host: example.org.:80")), "example.org");
}

TEST(HttpHost, MissingOrEmptyHost) {
    EXPECT_EQ(run("GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n").r, HttpHostResult::no_host);
    EXPECT_EQ(run("GET / HTTP/1.0\r\n\r\n").r, HttpHostResult::no_host);  // HTTP/1.0, no Host
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost:\r\n\r\n").r, HttpHostResult::no_host);
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost:   \r\n\r\n").r, HttpHostResult::no_host);
}

TEST(HttpHost, BareLfLineEnds) {
    EXPECT_EQ(host_of("GET / HTTP/1.1\nHost: lf.example\n\n"), "lf.example");
    EXPECT_EQ(run("GET / HTTP/1.1\nA: b\n\n").r, HttpHostResult::no_host);
}

TEST(HttpHost, FirstHostWins) {
    EXPECT_EQ(host_of("GET / HTTP/1.1\r\nHost: first.example\r\nHost: second.example\r\n\r\n"),
              "first.example");
}

TEST(HttpHost, NoCrlfYetIsIncomplete) {
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: example.org").r, HttpHostResult::incomplete);
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: example.org\r").r, HttpHostResult::incomplete);
    // The Host line has ended, but a folded continuation could still follow.
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: example.org\r\n").r, HttpHostResult::incomplete);
    EXPECT_EQ(run("GET / HTTP/1.1\r\nAccept: */*\r\n").r, HttpHostResult::incomplete);
    EXPECT_EQ(run("GET /very/long/path?q=").r, HttpHostResult::incomplete);
}

// The request split at every byte: `incomplete` up to the byte after the Host line's end, then
// the same name, whatever else follows.
TEST(HttpHost, SplitAtEveryOffset) {
    const std::string req =
        "GET /a/b?c=d HTTP/1.1\r\nUser-Agent: curl/7.88.1\r\nHost: split.example:8080\r\n"
        "Accept: */*\r\n\r\n";
    const size_t decided = req.find("\r\nAccept") + 3;  // the 'A' after the Host line's CRLF
    for (size_t len = 0; len <= req.size(); ++len) {
        const Got g = run(req, len);
        if (len < decided) {
            ASSERT_EQ(g.r, HttpHostResult::incomplete) << len;
        } else {
            ASSERT_EQ(g.r, HttpHostResult::found) << len;
            ASSERT_EQ(g.name, "split.example");
        }
    }
    const std::string no_host = "GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n";
    for (size_t len = 0; len < no_host.size(); ++len)
        ASSERT_EQ(run(no_host, len).r, HttpHostResult::incomplete) << len;
    EXPECT_EQ(run(no_host).r, HttpHostResult::no_host);
}

TEST(HttpHost, NotHttp) {
    EXPECT_EQ(run("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").r, HttpHostResult::not_http);
    EXPECT_EQ(run(std::string("\x16\x03\x01\x02\x00\x01", 6)).r, HttpHostResult::not_http);
    EXPECT_EQ(run("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").r, HttpHostResult::not_http);
    EXPECT_EQ(run("get / HTTP/1.1\r\n").r, HttpHostResult::not_http);  // methods are upper case
    EXPECT_EQ(run("EHLO client.example\r\n").r, HttpHostResult::not_http);  // SMTP
    EXPECT_EQ(run("GET /\r\n").r, HttpHostResult::not_http);                // HTTP/0.9
    EXPECT_EQ(run("GET  / HTTP/1.1\r\n").r, HttpHostResult::not_http);
    EXPECT_EQ(run("GET / HTTP/2\r\n").r, HttpHostResult::not_http);
    EXPECT_EQ(run(std::string(40, 'A') + " / HTTP/1.1\r\n").r, HttpHostResult::not_http);
    EXPECT_EQ(run("SSH-").r, HttpHostResult::incomplete);  // could still be a method
    EXPECT_EQ(run("").r, HttpHostResult::incomplete);
}

TEST(HttpHost, MalformedHeaderLines) {
    EXPECT_EQ(run(get_with("Host : example.org")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with(": no-name")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: exa\x01mple.org")).r, HttpHostResult::malformed);
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a.example\rX\r\n\r\n").r, HttpHostResult::malformed);
    EXPECT_EQ(run("GET / HTTP/1.1x\r\n").r, HttpHostResult::malformed);
    // A folded Host value cannot be trusted to be what the server reads.
    EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a.example\r\n b.example\r\n\r\n").r,
              HttpHostResult::malformed);
    // A folded other header is passed over.
    EXPECT_EQ(host_of("GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\nHost: c.example\r\n\r\n"), "c.example");
}

TEST(HttpHost, MalformedHostValues) {
    EXPECT_EQ(run(get_with("Host: two words")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: user@example.org")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: example.org/path")).r, HttpHostResult::malformed);
    EXPECT_EQ(run(get_with("Host: " + std::string(256, 'a'))).r, HttpHostResult::malformed);
    EXPECT_EQ(host_of(get_with("Host: " + std::string(255, 'a'))), std::string(255, 'a'));
    EXPECT_EQ(run(get_with("Host: .")).r, HttpHostResult::malformed);
}

TEST(HttpHost, ResultNames) {
    EXPECT_EQ(http_host_result_name(HttpHostResult::found), "found");
    EXPECT_EQ(http_host_result_name(HttpHostResult::not_http), "not_http");
    EXPECT_EQ(http_host_result_name(HttpHostResult::incomplete), "incomplete");
    EXPECT_EQ(http_host_result_name(HttpHostResult::malformed), "malformed");
    EXPECT_EQ(http_host_result_name(HttpHostResult::no_host), "no_host");
}

// Random bytes spliced into a valid request: a `found` name always obeys the HostName rules,
// and (under ASan) nothing outside the buffer is read.
TEST(HttpHost, MutatedRequestsNeverYieldAnInvalidName) {
    const std::string base = get_with("Host: mutant.example.org:8080");
    std::mt19937 rng(777);
    size_t found = 0, malformed = 0;
    for (int iter = 0; iter < 20000; ++iter) {
        std::string s = base;
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < flips; ++k) {
            // Mostly printable: the interesting damage is to the grammar, not the charset.
            const uint32_t v = rng();
            s[rng() % s.size()] = static_cast<char>(v % 4 == 0 ? v >> 8 : 0x20 + (v >> 8) % 95);
        }
        const Got g = run(s, rng() % (s.size() + 1));
        if (g.r == HttpHostResult::found) {
            ++found;
            ASSERT_FALSE(g.name.empty());
            ASSERT_LE(g.name.size(), HostName::kMax);
            for (const char ch : g.name)
                ASSERT_TRUE(ch > 0x20 && ch < 0x7f && !(ch >= 'A' && ch <= 'Z')) << g.name;
        }
        if (g.r == HttpHostResult::malformed) ++malformed;
    }
    EXPECT_GT(found, 100u);
    EXPECT_GT(malformed, 100u);
}
