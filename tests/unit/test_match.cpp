// MatchDatabases (real Hyperscan), identify() and the FirstPayload accumulator.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "match/first_payload.hpp"
#include "match/match_db.hpp"

using namespace rstmon::match;

namespace {

std::shared_ptr<const MatchDatabases> compile(const MatchSpec& spec) {
    return MatchDatabases::compile(spec);
}

std::string error_of(const MatchSpec& spec) {
    try {
        compile(spec);
    } catch (const PatternError& e) {
        return e.what();
    }
    return "";
}

const uint8_t* bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// The example, plus a wildcard service listed after a more specific one.
MatchSpec example_spec() {
    MatchSpec s;
    s.services = {
        {{"api\\.example\\.com"}, {}},                 // 1 api
        {{}, {"(www\\.)?example\\.org"}},              // 2 web
        {{".*\\.example\\.com", "example\\.com"}, {}},  // 3 any example.com name
    };
    s.triggers = {{"blocked_word", "forbidden-word"}};
    return s;
}

}  // namespace

TEST(MatchDb, WholeNameOnly) {
    const auto db = compile(example_spec());
    Scratch s = db->make_scratch();
    EXPECT_EQ(db->classify_service(NameKind::sni, "api.example.com", s), 1);
    EXPECT_EQ(db->classify_service(NameKind::sni, "api.example.com.evil", s), 0);
    EXPECT_EQ(db->classify_service(NameKind::sni, "xapi.example.co", s), 0);
    EXPECT_EQ(db->classify_service(NameKind::host, "www.example.org", s), 2);
    EXPECT_EQ(db->classify_service(NameKind::host, "example.org", s), 2);
    EXPECT_EQ(db->classify_service(NameKind::host, "evil-www.example.org", s), 0);
    EXPECT_EQ(db->classify_service(NameKind::host, "www.example.org.evil", s), 0);
    // `$` would also match before a final newline; the whole name means up to its last byte.
    EXPECT_EQ(db->classify_service(NameKind::sni, "api.example.com\n", s), 0);
    EXPECT_EQ(s.errors(), 0u);
}

TEST(MatchDb, AlternationStaysInsideTheWholeNameAnchor) {
    MatchSpec spec;
    spec.services = {{{"foo|bar"}, {}}};
    const auto db = compile(spec);
    Scratch s = db->make_scratch();
    EXPECT_EQ(db->classify_service(NameKind::sni, "foo", s), 1);
    EXPECT_EQ(db->classify_service(NameKind::sni, "bar", s), 1);
    EXPECT_EQ(db->classify_service(NameKind::sni, "foox", s), 0);
    EXPECT_EQ(db->classify_service(NameKind::sni, "xbar", s), 0);
}

TEST(MatchDb, AnchorsWrittenByTheUserAreHarmless) {
    MatchSpec spec;
    spec.services = {{{"^anchored\\.example$"}, {}}};
    const auto db = compile(spec);
    Scratch s = db->make_scratch();
    EXPECT_EQ(db->classify_service(NameKind::sni, "anchored.example", s), 1);
    EXPECT_EQ(db->classify_service(NameKind::sni, "anchored.example.net", s), 0);
}

TEST(MatchDb, CaseInsensitiveAndTrailingDot) {
    const auto db = compile(example_spec());
    Scratch s = db->make_scratch();
    EXPECT_EQ(db->classify_service(NameKind::sni, "API.Example.COM", s), 1);
    EXPECT_EQ(db->classify_service(NameKind::sni, "api.example.com.", s), 1);
    EXPECT_EQ(db->classify_service(NameKind::host, "WWW.EXAMPLE.ORG.", s), 2);
    EXPECT_EQ(db->classify_service(NameKind::sni, ".", s), 0);
    EXPECT_EQ(db->classify_service(NameKind::sni, "", s), 0);
}

TEST(MatchDb, FirstServiceInConfigOrderWins) {
    const auto db = compile(example_spec());
    Scratch s = db->make_scratch();
    // api.example.com matches services 1 and 3: the earlier one wins.
    EXPECT_EQ(db->classify_service(NameKind::sni, "api.example.com", s), 1);
    EXPECT_EQ(db->classify_service(NameKind::sni, "mail.example.com", s), 3);
    EXPECT_EQ(db->classify_service(NameKind::sni, "example.com", s), 3);
    // Listed the other way round, the wildcard wins.
    MatchSpec reversed;
    reversed.services = {{{".*\\.example\\.com"}, {}}, {{"api\\.example\\.com"}, {}}};
    const auto db2 = compile(reversed);
    Scratch s2 = db2->make_scratch();
    EXPECT_EQ(db2->classify_service(NameKind::sni, "api.example.com", s2), 1);
}

TEST(MatchDb, KindsAreSeparate) {
    const auto db = compile(example_spec());
    Scratch s = db->make_scratch();
    EXPECT_EQ(db->classify_service(NameKind::host, "api.example.com", s), 0);  // sni pattern
    EXPECT_EQ(db->classify_service(NameKind::sni, "www.example.org", s), 0);   // host pattern
    EXPECT_EQ(db->classify_service(NameKind::none, "api.example.com", s), 0);
}

TEST(MatchDb, CatchAllPatternIsAllowed) {
    MatchSpec spec;
    spec.services = {{{}, {}}, {{".*"}, {".*"}}};
    const auto db = compile(spec);
    Scratch s = db->make_scratch();
    EXPECT_EQ(db->classify_service(NameKind::sni, "anything.at.all", s), 2);
    EXPECT_EQ(db->classify_service(NameKind::host, "x", s), 2);
}

TEST(MatchDb, EmptyDatabases) {
    const auto db = compile(MatchSpec{});
    EXPECT_FALSE(db->has_sni_patterns());
    EXPECT_FALSE(db->has_host_patterns());
    EXPECT_EQ(db->trigger_count(), 0u);
    Scratch s = db->make_scratch();
    EXPECT_EQ(db->classify_service(NameKind::sni, "api.example.com", s), 0);
    const std::string p = "forbidden-word";
    EXPECT_EQ(db->scan_triggers(bytes(p), p.size(), s), 0u);
    EXPECT_EQ(s.errors(), 0u);

    // Only triggers: the name databases stay absent.
    MatchSpec t;
    t.triggers = {{"t", "x"}};
    const auto db2 = compile(t);
    EXPECT_FALSE(db2->has_sni_patterns());
    Scratch s2 = db2->make_scratch();
    EXPECT_EQ(db2->classify_service(NameKind::sni, "x", s2), 0);
    EXPECT_EQ(db2->scan_triggers(bytes("axb"), 3, s2), 1u);
}

TEST(MatchDb, TriggerMask) {
    MatchSpec spec;
    spec.triggers = {{"blocked_word", "forbidden-word"},
                     {"secret", "(?i)secret"},
                     {"code", "x\\d{3}y"},
                     {"dotall", "begin.end"}};
    const auto db = compile(spec);
    EXPECT_EQ(db->trigger_count(), 4u);
    Scratch s = db->make_scratch();
    auto scan = [&](const std::string& p) { return db->scan_triggers(bytes(p), p.size(), s); };
    EXPECT_EQ(scan("nothing to see"), 0u);
    EXPECT_EQ(scan("GET /forbidden-word HTTP/1.1"), 0b0001u);
    EXPECT_EQ(scan("a SECRET and the forbidden-word"), 0b0011u);
    EXPECT_EQ(scan(std::string("bin\0x123y\xff", 10)), 0b0100u);
    EXPECT_EQ(scan("begin\nend"), 0b1000u);  // payload is bytes: '.' matches a newline too
    EXPECT_EQ(scan("Forbidden-Word"), 0u);     // case-sensitive unless (?i)
    EXPECT_EQ(s.errors(), 0u);
}

TEST(MatchDb, ThirtyTwoTriggersFillTheMask) {
    MatchSpec spec;
    std::string payload;
    for (int i = 0; i < 32; ++i) {
        spec.triggers.push_back({"t" + std::to_string(i), "tok" + std::to_string(i) + "_"});
        payload += "tok" + std::to_string(i) + "_ ";
    }
    const auto db = compile(spec);
    Scratch s = db->make_scratch();
    EXPECT_EQ(db->scan_triggers(bytes(payload), payload.size(), s), 0xffffffffu);
    const std::string last = "tok31_";
    EXPECT_EQ(db->scan_triggers(bytes(last), last.size(), s), 0x80000000u);
    spec.triggers.push_back({"t32", "y"});
    EXPECT_EQ(error_of(spec), "triggers: 33 triggers, at most 32");
}

TEST(MatchDb, ScratchPerThread) {
    const auto db = compile(example_spec());
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, s = db->make_scratch()]() mutable {
            for (int i = 0; i < 5000; ++i) {
                if (db->classify_service(NameKind::sni, "api.example.com", s) != 1) ++wrong;
                if (db->classify_service(NameKind::host, "www.example.org", s) != 2) ++wrong;
                if (db->scan_triggers(bytes("xforbidden-wordx"), 16, s) != 1u) ++wrong;
            }
            if (s.errors() != 0) ++wrong;
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wrong.load(), 0);
}

TEST(MatchDb, ScanWithoutAScratchIsCountedNotMatched) {
    const auto db = compile(example_spec());
    Scratch none;
    EXPECT_EQ(db->classify_service(NameKind::sni, "api.example.com", none), 0);
    EXPECT_EQ(none.errors(), 1u);
}

TEST(MatchDb, CompileErrorsAreOneLineNamingEntryAndPattern) {
    MatchSpec spec;
    spec.services = {{{"ok\\.example"}, {}}, {{"("}, {}}};
    EXPECT_EQ(error_of(spec),
              "services[1].sni[0]: pattern '(' does not compile: Missing close parenthesis for "
              "group started at index 0.");
    spec.services = {{{}, {"fine", "a{2,1}"}}};
    EXPECT_EQ(error_of(spec),
              "services[0].host[1]: pattern 'a{2,1}' does not compile: Invalid repeat at index 1.");
    spec.services = {};
    spec.triggers = {{"t", "ok"}, {"u", "[z-a]"}};
    EXPECT_EQ(error_of(spec),
              "triggers[1].pattern: pattern '[z-a]' does not compile: Range out of order in "
              "character class at index 3.");
    // Hyperscan has no back-references.
    spec.triggers = {{"t", "(a)\\1"}};
    EXPECT_NE(error_of(spec).find("triggers[0].pattern: pattern '(a)\\1' does not compile: "),
              std::string::npos);
    // Control bytes are shown escaped, so the message stays on one line.
    spec.triggers = {{"t", "a\n("}};
    const std::string e = error_of(spec);
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_EQ(e.rfind("triggers[0].pattern: pattern 'a\\x0a(' does not compile: ", 0), 0u) << e;
}

TEST(MatchDb, PatternsHyperscanCannotSeeWhole) {
    MatchSpec spec;
    spec.services = {{{""}, {}}};
    EXPECT_EQ(error_of(spec), "services[0].sni[0]: empty pattern");
    spec.services = {{{std::string("a\0b", 3)}, {}}};
    EXPECT_EQ(error_of(spec), "services[0].sni[0]: pattern 'a\\x00b' contains a NUL byte");
    // \Q quotes to the end of the pattern, which would swallow the whole-name anchor.
    spec.services = {{{"\\Qa.b"}, {}}};
    EXPECT_EQ(error_of(spec).rfind("services[0].sni[0]: pattern '\\Qa.b' does not compile as a "
                                   "whole-name match ^(?:\\Qa.b)\\z: ",
                                   0),
              0u)
        << error_of(spec);
    // A trigger matching the empty buffer would mark every flow.
    spec.services = {};
    spec.triggers = {{"t", "x*"}};
    EXPECT_NE(error_of(spec).find("triggers[0].pattern: pattern 'x*' does not compile: "),
              std::string::npos);
}

TEST(MatchIdentify, TlsHttpAndNeither) {
    const auto db = compile(example_spec());
    Scratch s = db->make_scratch();
    HostName name;
    const std::string http = "GET / HTTP/1.1\r\nHost: WWW.example.org:80\r\nAccept: */*\r\n\r\n";
    Identification r = identify(bytes(http), http.size(), *db, s, name);
    EXPECT_EQ(r.status, Identification::Status::named);
    EXPECT_EQ(r.kind, NameKind::host);
    EXPECT_EQ(r.service, 2);
    EXPECT_EQ(r.sni, SniResult::not_tls);
    EXPECT_EQ(r.http, HttpHostResult::found);
    EXPECT_EQ(name.view(), "www.example.org");

    const std::string other = "GET / HTTP/1.1\r\nHost: other.example.net\r\n\r\n";
    r = identify(bytes(other), other.size(), *db, s, name);
    EXPECT_EQ(r.status, Identification::Status::named);
    EXPECT_EQ(r.service, 0);  // named, but no pattern: the port map decides
    EXPECT_EQ(name.view(), "other.example.net");

    const std::string ssh = "SSH-2.0-OpenSSH_9.2p1\r\n";
    r = identify(bytes(ssh), ssh.size(), *db, s, name);
    EXPECT_EQ(r.status, Identification::Status::no_name);
    EXPECT_EQ(r.http, HttpHostResult::not_http);

    const std::string partial = "GET / HTTP/1.1\r\nHo";
    r = identify(bytes(partial), partial.size(), *db, s, name);
    EXPECT_EQ(r.status, Identification::Status::need_more);

    const uint8_t tls_start[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
    r = identify(tls_start, sizeof tls_start, *db, s, name);
    EXPECT_EQ(r.status, Identification::Status::need_more);
    EXPECT_EQ(r.sni, SniResult::incomplete);

    const uint8_t tls_bad[] = {0x16, 0x03, 0x01, 0x00, 0x00};
    r = identify(tls_bad, sizeof tls_bad, *db, s, name);
    EXPECT_EQ(r.status, Identification::Status::no_name);
    EXPECT_EQ(r.sni, SniResult::malformed);
}

TEST(MatchFirstPayload, InOrderDuplicatesAndGaps) {
    FirstPayload fp;
    fp.reset(1000);
    const std::string a = "GET / HT", b = "TP/1.1\r\n", c = "Host: x\r\n";
    EXPECT_EQ(fp.add(1000, bytes(a), a.size()), FirstPayload::Add::appended);
    EXPECT_EQ(fp.add(1000, bytes(a), a.size()), FirstPayload::Add::duplicate);
    // c arrives before b: refused, then accepted once b has filled the hole.
    EXPECT_EQ(fp.add(1016, bytes(c), c.size()), FirstPayload::Add::gap);
    EXPECT_EQ(fp.add(1008, bytes(b), b.size()), FirstPayload::Add::appended);
    EXPECT_EQ(fp.add(1016, bytes(c), c.size()), FirstPayload::Add::appended);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(fp.data()), fp.size()), a + b + c);
    EXPECT_EQ(fp.next_seq(), 1025u);
    // A retransmission overlapping the end: only the new bytes are added.
    const std::string d = "x\r\nAccept: */*\r\n";
    EXPECT_EQ(fp.add(1022, bytes(d), d.size()), FirstPayload::Add::appended);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(fp.data()), fp.size()),
              "GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n");
    // A segment reaching back before the first byte.
    FirstPayload fp2;
    fp2.reset(500);
    EXPECT_EQ(fp2.add(498, bytes("abcd"), 4), FirstPayload::Add::appended);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(fp2.data()), fp2.size()), "cd");
    EXPECT_EQ(fp2.add(490, bytes("abcd"), 4), FirstPayload::Add::duplicate);
}

TEST(MatchFirstPayload, SequenceWrapAndCapacity) {
    FirstPayload fp;
    fp.reset(0xfffffffe);
    EXPECT_EQ(fp.add(0xfffffffe, bytes("abcd"), 4), FirstPayload::Add::appended);
    EXPECT_EQ(fp.next_seq(), 2u);
    EXPECT_EQ(fp.add(2, bytes("ef"), 2), FirstPayload::Add::appended);
    EXPECT_EQ(fp.size(), 6u);

    FirstPayload big;
    big.reset(1);
    const std::string chunk(1500, 'z');
    uint32_t seq = 1;
    FirstPayload::Add last = FirstPayload::Add::appended;
    for (int i = 0; i < 3; ++i, seq += 1500) last = big.add(seq, bytes(chunk), chunk.size());
    EXPECT_EQ(last, FirstPayload::Add::full);
    EXPECT_TRUE(big.full());
    EXPECT_EQ(big.size(), FirstPayload::kCapacity);
    EXPECT_EQ(big.add(seq, bytes(chunk), chunk.size()), FirstPayload::Add::full);
}

TEST(MatchFirstPayload, BytesInWindow) {
    EXPECT_EQ(bytes_in_window(0, 1460, 4096), 1460u);
    EXPECT_EQ(bytes_in_window(4000, 1460, 4096), 96u);
    EXPECT_EQ(bytes_in_window(4096, 1460, 4096), 0u);
    EXPECT_EQ(bytes_in_window(10, 100, 0), 0u);
}
