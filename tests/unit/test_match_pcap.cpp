// The extractors and databases on real traffic: tests/data/tls-http.pcap, written by
// tests/data/make-tls-http.sh with openssl s_client, curl, openssl s_server and python3's
// http.server in network namespaces. Its truth file lists, per connection in SYN order, the
// server, what the client's first payload holds and whether it came in several segments.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "match/first_payload.hpp"
#include "packet/packet.hpp"

using namespace rstmon;
using namespace rstmon::match;

namespace {

const std::string kDir = std::string(RSTMON_SOURCE_ROOT) + "/tests/data/";

struct Segment {
    uint32_t seq;
    std::vector<uint8_t> bytes;
};

// One connection: the client (SYN sender) side's payload segments before the server's first.
struct Flow {
    std::string server;
    uint16_t server_port = 0;
    std::vector<Segment> client_first;
    bool server_spoke = false;
};

struct TruthRow {
    std::string server, kind, result, name;
    uint16_t port = 0;
    bool split = false;
};

std::vector<Flow> read_flows(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE];
    std::unique_ptr<pcap_t, void (*)(pcap_t*)> p(pcap_open_offline(path.c_str(), err), pcap_close);
    if (!p) {
        ADD_FAILURE() << "cannot open " << path << ": " << err;
        return {};
    }
    packet::LinkType link;
    if (!packet::link_type_from_dlt(pcap_datalink(p.get()), link)) {
        ADD_FAILURE() << "link type " << pcap_datalink(p.get());
        return {};
    }
    std::vector<Flow> flows;
    std::map<std::string, std::pair<size_t, bool>> index;  // "src:sport>dst:dport" -> flow, is client
    pcap_pkthdr* h;
    const u_char* data;
    while (pcap_next_ex(p.get(), &h, &data) == 1) {
        packet::TcpSegment seg;
        if (packet::parse(link, data, h->caplen, seg).status != packet::ParseStatus::tcp) continue;
        const std::string src = packet::to_string(seg.src, seg.family);
        const std::string dst = packet::to_string(seg.dst, seg.family);
        const std::string fwd = src + ":" + std::to_string(seg.sport) + ">" + dst + ":" +
                                std::to_string(seg.dport);
        const std::string rev = dst + ":" + std::to_string(seg.dport) + ">" + src + ":" +
                                std::to_string(seg.sport);
        if (seg.has(packet::tcpflag::syn) && !seg.has(packet::tcpflag::ack) && !index.count(fwd)) {
            index[fwd] = {flows.size(), true};
            index[rev] = {flows.size(), false};
            flows.push_back({dst, seg.dport, {}, false});
            continue;
        }
        const auto it = index.find(fwd);
        if (it == index.end() || seg.payload_caplen == 0) continue;
        Flow& f = flows[it->second.first];
        if (!it->second.second) {
            f.server_spoke = true;
        } else if (!f.server_spoke) {
            f.client_first.push_back(
                {seg.seq, std::vector<uint8_t>(seg.payload, seg.payload + seg.payload_caplen)});
        }
    }
    return flows;
}

std::vector<TruthRow> read_truth(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << path;
    std::vector<TruthRow> rows;
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        TruthRow r;
        std::string split;
        ls >> r.server >> r.port >> r.kind >> r.result >> r.name >> split;
        r.split = split == "yes";
        rows.push_back(r);
    }
    return rows;
}

struct Decision {
    Identification id;
    std::string name;
    size_t segments = 0;  // client segments it took
};

// What a worker does with a flow's first client payload: identify the first segment in place,
// and only if that needs more, collect the following segments in a FirstPayload.
Decision decide(const Flow& f, const MatchDatabases& db, Scratch& scratch) {
    Decision d;
    HostName name;
    const Segment& first = f.client_first.at(0);
    d.id = identify(first.bytes.data(), first.bytes.size(), db, scratch, name);
    d.segments = 1;
    if (d.id.status == Identification::Status::need_more) {
        auto fp = std::make_unique<FirstPayload>();
        fp->reset(first.seq);
        fp->add(first.seq, first.bytes.data(), first.bytes.size());
        for (size_t i = 1; i < f.client_first.size(); ++i) {
            const Segment& s = f.client_first[i];
            if (fp->add(s.seq, s.bytes.data(), s.bytes.size()) != FirstPayload::Add::appended)
                continue;
            d.id = identify(fp->data(), fp->size(), db, scratch, name);
            d.segments = i + 1;
            if (d.id.status != Identification::Status::need_more) break;
        }
    }
    if (d.id.status == Identification::Status::named) d.name = std::string(name.view());
    return d;
}

std::shared_ptr<const MatchDatabases> example_db() {
    MatchSpec spec;
    spec.services = {
        {{"api\\.example\\.com"}, {}},     // 1
        {{}, {"(www\\.)?example\\.org"}},  // 2
        {{".*\\.example\\.com"}, {}},      // 3
    };
    spec.triggers = {{"curl", "User-Agent: curl/"}, {"alpn", "rstmon-test-protocol-0[1-8]"}};
    return MatchDatabases::compile(spec);
}

class MatchPcap : public ::testing::Test {
protected:
    void SetUp() override {
        flows_ = read_flows(kDir + "tls-http.pcap");
        truth_ = read_truth(kDir + "tls-http.truth.tsv");
        ASSERT_EQ(flows_.size(), truth_.size());
        ASSERT_EQ(flows_.size(), 14u);  // 8 closed with FIN, 6 reset by the server
        for (const Flow& f : flows_) ASSERT_FALSE(f.client_first.empty()) << f.server;
    }
    std::vector<Flow> flows_;
    std::vector<TruthRow> truth_;
};

}  // namespace

TEST_F(MatchPcap, ExtractsWhatEachClientSent) {
    const auto db = example_db();
    Scratch scratch = db->make_scratch();
    for (size_t i = 0; i < flows_.size(); ++i) {
        const TruthRow& t = truth_[i];
        SCOPED_TRACE("connection " + std::to_string(i) + " to " + t.server + ":" +
                     std::to_string(t.port) + " (" + t.kind + " " + t.result + " " + t.name + ")");
        EXPECT_EQ(flows_[i].server, t.server);
        EXPECT_EQ(flows_[i].server_port, t.port);
        const Decision d = decide(flows_[i], *db, scratch);
        if (t.kind == "sni") {
            EXPECT_EQ(sni_result_name(d.id.sni), t.result);
        } else {
            EXPECT_EQ(d.id.sni, SniResult::not_tls);
            EXPECT_EQ(http_host_result_name(d.id.http), t.result);
        }
        if (t.result == "found") {
            EXPECT_EQ(d.id.status, Identification::Status::named);
            EXPECT_EQ(d.id.kind, t.kind == "sni" ? NameKind::sni : NameKind::host);
            EXPECT_EQ(d.name, t.name);
        } else {
            EXPECT_EQ(d.id.status, Identification::Status::no_name);
        }
        // The split ClientHello needs the accumulator; every other first payload decides alone.
        if (t.split)
            EXPECT_GT(d.segments, 1u);
        else
            EXPECT_EQ(d.segments, 1u);
    }
    EXPECT_EQ(scratch.errors(), 0u);
}

TEST_F(MatchPcap, ServicesFromRealNames) {
    const auto db = example_db();
    Scratch scratch = db->make_scratch();
    // api.example.com also matches service 3; the earlier service wins.
    // API.Example.COM and WWW.EXAMPLE.ORG on the wire: names are lower-cased when extracted.
    const std::map<std::string, uint8_t> want = {{"api.example.com", 1},
                                                 {"secure.example.org", 0},
                                                 {"split.example.com", 3},
                                                 {"www.example.org", 2},
                                                 {"other.example.net", 0},
                                                 {"10.98.0.2", 0},
                                                 {"fd00:98::2", 0}};
    size_t named = 0;
    for (const Flow& f : flows_) {
        const Decision d = decide(f, *db, scratch);
        if (d.id.status != Identification::Status::named) continue;
        ++named;
        ASSERT_TRUE(want.count(d.name)) << d.name;
        EXPECT_EQ(d.id.service, want.at(d.name)) << d.name;
    }
    EXPECT_EQ(named, 12u);
}

// The real ClientHellos cut at every byte: incomplete until the server name's last byte, then
// the name (never anything else, and under ASan never a read past the cut).
TEST_F(MatchPcap, RealClientHellosTruncatedAtEveryOffset) {
    for (size_t i = 0; i < flows_.size(); ++i) {
        const TruthRow& t = truth_[i];
        if (t.kind != "sni" || t.result != "found") continue;
        std::vector<uint8_t> hello;
        for (const Segment& s : flows_[i].client_first)
            hello.insert(hello.end(), s.bytes.begin(), s.bytes.end());
        // The truth names the extracted (lower-cased) name; the client may have sent capitals.
        const auto at = std::search(hello.begin(), hello.end(), t.name.begin(), t.name.end(),
                                    [](uint8_t wire, char want) {
                                        return std::tolower(wire) == want;
                                    });
        ASSERT_NE(at, hello.end()) << t.name;
        const size_t name_end = static_cast<size_t>(at - hello.begin()) + t.name.size();
        for (size_t len = 0; len <= hello.size(); ++len) {
            std::vector<uint8_t> cut(hello.begin(), hello.begin() + static_cast<long>(len));
            HostName out;
            const SniResult r = extract_sni(cut.data(), cut.size(), out);
            if (len < name_end) {
                ASSERT_EQ(r, SniResult::incomplete) << t.name << " cut at " << len;
            } else {
                ASSERT_EQ(r, SniResult::found) << t.name << " cut at " << len;
                ASSERT_EQ(out.view(), t.name);
            }
        }
    }
}

// Triggers over the first window of each client payload, segment by segment (block mode) and
// over the reassembled bytes.
TEST_F(MatchPcap, TriggersInRealPayload) {
    const auto db = example_db();
    Scratch scratch = db->make_scratch();
    constexpr uint32_t kWindow = 4096;
    for (size_t i = 0; i < flows_.size(); ++i) {
        const Flow& f = flows_[i];
        uint32_t per_segment = 0;
        std::vector<uint8_t> all;
        const uint32_t seq0 = f.client_first[0].seq;
        for (const Segment& s : f.client_first) {
            const size_t n = bytes_in_window(s.seq - seq0, s.bytes.size(), kWindow);
            per_segment |= db->scan_triggers(s.bytes.data(), n, scratch);
            all.insert(all.end(), s.bytes.begin(), s.bytes.end());
        }
        const uint32_t whole = db->scan_triggers(all.data(), std::min<size_t>(all.size(), kWindow),
                                                 scratch);
        const bool http = truth_[i].kind == "host";
        const bool alpn = truth_[i].split;  // only that client offered the long ALPN list
        const uint32_t want = (http ? 1u : 0u) | (alpn ? 2u : 0u);
        EXPECT_EQ(whole, want) << "connection " << i;
        // Each token here fits within one segment of even the split ClientHello (MSS 108).
        EXPECT_EQ(per_segment, want) << "connection " << i;
    }
    EXPECT_EQ(scratch.errors(), 0u);
}
