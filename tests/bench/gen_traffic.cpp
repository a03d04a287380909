// Deterministic generator of mirrored TCP traffic for the benchmark: a fixed number of concurrent
// connections, each living a realistic lifecycle (handshake, request/response, FIN close, or one
// of the RST causes in a realistic share), interleaved so the flow table holds --flows flows.
// Writes a classic Ethernet pcap. Same arguments, same bytes.
//
//   gen_traffic --out F.pcap [--flows 1000000] [--packets 4000000] [--size 64|imix] [--seed 1]
//               [--finish] [--names N]
//   gen_traffic --out F.pcap --rst-storm [--packets 4000000] [--seed 1]
//
// --names N: the client's first request carries a TLS ClientHello (server port 443) or an HTTP
// request (port 80) naming h<K>.example.com, K = connection number mod N, so rstmon's SNI/Host
// matching has something to match (the benchmark's 0/10/1000-pattern runs). Without it the
// output is byte for byte what it was before the option existed.
//
// --rst-storm: no connections at all: every frame is a bare RST or an RST+ACK (half each) of a
// 4-tuple drawn at random (client 10.0.0.0/8, server 172.16.0.0/12, any ports >= 1024 or 80/443,
// either direction), IPv4, 64-byte frames, --packets of them (default 4 x --flows), the same bytes
// for the same --seed. What an RST flood or a scan's resets look like to the monitor: nearly
// every frame an RST of a flow it has never seen.
#include <arpa/inet.h>
#include <pcap/pcap.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Rng {  // splitmix64: small, fast, reproducible everywhere
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
};

// The RST causes a connection script can end with (named as rstmon names them), or a FIN close.
// Causes that need wall-clock gaps (idle_timeout, connect_timeout) or a reused 4-tuple
// (time_wait_reuse) are left to the scenario suite.
#define SCRIPTS(X)                                                                               \
    X(fin, 790) X(port_closed, 50) X(linger_abort, 40) X(unread_data_close, 40)                 \
    X(data_after_close, 15) X(orphan_abort, 10) X(scan_probe, 10) X(stale_connection, 10)       \
    X(middlebox_reject, 5) X(listen_overflow, 5) X(injected, 5) X(invalid_segment, 5)           \
    X(keepalive_timeout, 10) X(retransmission_timeout, 5)
enum class Script : uint8_t {
#define X(name, share) name,
    SCRIPTS(X)
#undef X
        count_
};
// Per mille of connections. About one in five ends with an RST (Arlitt & Williamson found 15-25%).
constexpr uint16_t kShare[] = {
#define X(name, share) share,
    SCRIPTS(X)
#undef X
};
constexpr const char* kScriptName[] = {
#define X(name, share) #name,
    SCRIPTS(X)
#undef X
};
static_assert(sizeof kShare / sizeof kShare[0] == static_cast<size_t>(Script::count_));
uint64_t g_rsts[static_cast<size_t>(Script::count_)] = {};  // RSTs written, by script

constexpr uint8_t FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;

struct Conn {
    uint32_t cip = 0, sip = 0;
    uint16_t cport = 0, sport = 0;
    uint32_t cseq = 0, sseq = 0;
    Script script = Script::fin;
    uint64_t id = 0;
    uint8_t step = 0;
    uint8_t data_rounds = 0;
    bool retransmit = false;
    uint32_t unacked = 0;
};

class Writer {
public:
    Writer(const std::string& path, bool imix, uint64_t seed) : imix_(imix), rng_{seed ^ 0xabcdef} {
        dead_ = pcap_open_dead(DLT_EN10MB, 65535);
        dump_ = pcap_dump_open(dead_, path.c_str());
        if (!dump_) {
            std::fprintf(stderr, "gen_traffic: cannot write %s: %s\n", path.c_str(), pcap_geterr(dead_));
            std::exit(2);
        }
    }
    ~Writer() {
        pcap_dump_close(dump_);
        pcap_close(dead_);
    }
    // One segment; `data` = carries payload (size from the mix), else a 64-byte control frame.
    // Returns the payload length put on the wire.
    uint32_t seg(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, uint32_t seq,
                 uint32_t ack, uint8_t flags, bool data, uint8_t ttl,
                 const std::string* app = nullptr) {
        uint32_t payload = 0;
        if (app != nullptr) {  // given bytes (--names); no draw from the size mix
            payload = static_cast<uint32_t>(app->size());
        } else if (data) {
            if (!imix_) {
                payload = 6;  // 14 + 20 + 20 + 6 = 60 bytes: a 64-byte frame with the FCS
            } else {
                const uint32_t r = rng_.below(12);  // simple IMIX 7:4:1 of 64, 594, 1518 bytes
                payload = r < 7 ? 6 : (r < 11 ? 540 : 1460);
            }
        }
        const uint32_t len = 14 + 20 + 20 + payload;
        uint8_t* f = buf_;
        std::memset(f, 0, len < 60 ? 60 : len);
        f[0] = 0x02, f[5] = 0x01, f[6] = 0x02, f[11] = 0x02;
        f[12] = 0x08;
        uint8_t* ip = f + 14;
        ip[0] = 0x45;
        put16(ip + 2, static_cast<uint16_t>(20 + 20 + payload));
        put16(ip + 4, static_cast<uint16_t>(ipid_++));
        ip[6] = 0x40;
        ip[8] = ttl;
        ip[9] = 6;
        put32(ip + 12, src);
        put32(ip + 16, dst);
        uint8_t* t = ip + 20;
        put16(t, sport);
        put16(t + 2, dport);
        put32(t + 4, seq);
        put32(t + 8, ack);
        t[12] = 0x50;
        t[13] = flags;
        put16(t + 14, 64240);
        if (app != nullptr) std::memcpy(t + 20, app->data(), app->size());
        pcap_pkthdr h{};
        h.ts.tv_sec = static_cast<time_t>(1700000000 + ts_us_ / 1000000);
        h.ts.tv_usec = static_cast<suseconds_t>(ts_us_ % 1000000);
        ts_us_ += 1;  // 1 Mpps nominal: timeouts and episodes behave as on a busy link
        h.caplen = h.len = len < 60 ? 60 : len;
        pcap_dump(reinterpret_cast<u_char*>(dump_), &h, f);
        ++packets_;
        if (flags & 0x04) ++rsts_;
        return payload;
    }
    uint64_t packets() const { return packets_; }
    uint64_t rsts() const { return rsts_; }

private:
    static void put16(uint8_t* p, uint16_t v) { p[0] = v >> 8, p[1] = v & 0xff; }
    static void put32(uint8_t* p, uint32_t v) { put16(p, v >> 16), put16(p + 2, v & 0xffff); }
    pcap_t* dead_;
    pcap_dumper_t* dump_;
    bool imix_;
    Rng rng_;
    uint8_t buf_[2048];
    uint64_t ts_us_ = 0, packets_ = 0, rsts_ = 0;
    uint16_t ipid_ = 1;
};

Script pick(Rng& r) {
    uint32_t x = r.below(1000);
    for (size_t i = 0; i < static_cast<size_t>(Script::count_); ++i) {
        if (x < kShare[i]) return static_cast<Script>(i);
        x -= kShare[i];
    }
    return Script::fin;
}

uint64_t g_names = 0;  // --names

void put16s(std::string& b, size_t v) {
    b += static_cast<char>(v >> 8);
    b += static_cast<char>(v & 0xff);
}

// The smallest ClientHello that names a server: one cipher suite, one extension (server_name).
std::string client_hello(const std::string& name) {
    std::string ext, body, hs, rec;
    put16s(ext, 0);  // server_name
    put16s(ext, name.size() + 5);
    put16s(ext, name.size() + 3);
    ext += '\0';  // host_name
    put16s(ext, name.size());
    ext += name;
    body = std::string("\x03\x03", 2) + std::string(32, '\x5a') + std::string(1, '\0') +
           std::string("\x00\x02\x13\x01\x01\x00", 6);
    put16s(body, ext.size());
    body += ext;
    hs = std::string(1, '\x01') + std::string(1, '\0');
    put16s(hs, body.size());
    hs += body;
    rec = std::string("\x16\x03\x01", 3);
    put16s(rec, hs.size());
    return rec + hs;
}

// What a client sends first (--names): TLS to 443, HTTP/1.1 to 80.
std::string first_request(uint64_t id, uint16_t server_port) {
    const std::string name = "h" + std::to_string(id % g_names) + ".example.com";
    if (server_port == 443) return client_hello(name);
    return "GET / HTTP/1.1\r\nHost: " + name + "\r\nUser-Agent: gen_traffic\r\n\r\n";
}

// Servers that have sent a packet: a firewall's reset is only recognisable against the server's
// own TTL, so middlebox_reject is scripted only for servers already seen.
std::vector<bool> g_server_seen(256);

void fresh(Conn& c, uint64_t id, Rng& r) {
    c = Conn{};
    c.id = id;
    c.cip = 0x0a000000u | static_cast<uint32_t>(id % 0xfffffe + 1);  // 10.0.0.0/8
    c.sip = 0xac100000u | (1 + r.below(200));                         // 200 servers
    c.cport = static_cast<uint16_t>(1024 + (id / 0xfffffe + r.below(60000)) % 64000);
    c.sport = r.below(4) == 0 ? 443 : 80;
    c.cseq = static_cast<uint32_t>(r.next());
    c.sseq = static_cast<uint32_t>(r.next());
    c.script = pick(r);
    if (c.script == Script::middlebox_reject && !g_server_seen[c.sip & 0xff]) c.script = Script::fin;
    c.data_rounds = static_cast<uint8_t>(1 + r.below(3));
    c.retransmit = r.below(50) == 0;  // 2% of connections re-send a segment
}

// Emits the connection's next packet; returns false when the connection is over.
bool step_inner(Conn& c, Writer& w);
bool step(Conn& c, Writer& w) {
    const uint64_t before = w.rsts();
    const bool more = step_inner(c, w);
    g_rsts[static_cast<size_t>(c.script)] += w.rsts() - before;
    return more;
}

bool step_inner(Conn& c, Writer& w) {
    const uint8_t ct = 64, st = 60, fw = 64;  // TTLs: client, server (4 hops), firewall (0 hops)
    auto C = [&](uint8_t fl, bool data, const std::string* app = nullptr) {
        c.cseq += w.seg(c.cip, c.cport, c.sip, c.sport, c.cseq, c.sseq, fl, data, ct, app) +
                  ((fl & (SYN | FIN)) ? 1 : 0);
    };
    auto S = [&](uint8_t fl, bool data) {
        g_server_seen[c.sip & 0xff] = true;
        c.sseq += w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, c.cseq, fl, data, st) +
                  ((fl & (SYN | FIN)) ? 1 : 0);
    };
    const uint8_t s = c.step++;
    switch (c.script) {
        case Script::port_closed:
        case Script::middlebox_reject:
            if (s == 0) return C(SYN, false), true;
            w.seg(c.sip, c.sport, c.cip, c.cport, 0, c.cseq, RST | ACK, false,
                  c.script == Script::port_closed ? st : fw);
            return false;
        case Script::scan_probe:
            if (s == 0) return C(SYN, false), true;
            if (s == 1) return S(SYN | ACK, false), true;
            w.seg(c.cip, c.cport, c.sip, c.sport, c.cseq, 0, RST, false, ct);
            return false;
        case Script::invalid_segment:  // a SYN-ACK acknowledging the wrong ISN is refused
            if (s == 0) return C(SYN, false), true;
            if (s == 1) {
                w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, c.cseq + 1000, SYN | ACK, false, st);
                return true;
            }
            w.seg(c.cip, c.cport, c.sip, c.sport, c.cseq + 1000, 0, RST, false, ct);
            return false;
        default:
            break;
    }
    if (s == 0) return C(SYN, false), true;
    if (s == 1) return S(SYN | ACK, false), true;
    if (s == 2) return C(ACK, false), true;
    if (c.script == Script::listen_overflow) {
        w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, 0, RST, false, st);
        return false;
    }
    const uint8_t d = static_cast<uint8_t>(s - 3);  // request/response rounds: 3 packets each
    if (d < 3 * c.data_rounds) {
        switch (d % 3) {
            case 0: {
                const uint32_t seq = c.cseq;
                std::string app;
                if (g_names != 0 && d == 0) app = first_request(c.id, c.sport);
                const std::string* first = app.empty() ? nullptr : &app;
                C(PSH | ACK, true, first);
                if (c.retransmit && d == 0)  // the same request again, as after a lost ACK
                    w.seg(c.cip, c.cport, c.sip, c.sport, seq, c.sseq, PSH | ACK, true, ct, first);
                return true;
            }
            case 1: return S(PSH | ACK, true), true;
            default: return C(ACK, false), true;
        }
    }
    const uint8_t e = static_cast<uint8_t>(d - 3 * c.data_rounds);
    switch (c.script) {
        case Script::fin:
            if (e == 0) return C(FIN | ACK, false), true;
            if (e == 1) return S(FIN | ACK, false), true;
            C(ACK, false);
            return false;
        case Script::linger_abort:
            w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, c.cseq, RST | ACK, false, st);
            return false;
        case Script::unread_data_close:
            if (e == 0) return C(PSH | ACK, true), true;  // pipelined request, never read
            w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, c.cseq, RST | ACK, false, st);
            return false;
        case Script::data_after_close:
            if (e == 0) return S(FIN | ACK, false), true;
            if (e == 1) return C(PSH | ACK, true), true;
            w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, 0, RST, false, st);
            return false;
        case Script::orphan_abort:
            if (e == 0) return S(FIN | ACK, false), true;
            if (e == 1) return C(ACK, false), true;
            w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, c.cseq, RST | ACK, false, st);
            return false;
        case Script::stale_connection:
            if (e == 0) return C(PSH | ACK, true), true;
            w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, 0, RST, false, st);
            return false;
        case Script::injected:  // a forged RST (another hop distance), and the server talks on
            if (e == 0) return C(PSH | ACK, true), true;
            if (e == 1) {
                w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, c.cseq, RST | ACK, false, fw);
                return true;
            }
            S(PSH | ACK, true);
            return false;
        case Script::keepalive_timeout:  // two unanswered probes (seq = snd_una - 1), then abort
            if (e < 2) {
                w.seg(c.cip, c.cport, c.sip, c.sport, c.cseq - 1, c.sseq, ACK, false, ct);
                return true;
            }
            w.seg(c.cip, c.cport, c.sip, c.sport, c.cseq, c.sseq, RST | ACK, false, ct);
            return false;
        case Script::retransmission_timeout:  // re-sent, never acknowledged; later the peer
            if (e == 0) {                        // speaks to a socket that is gone
                c.unacked = c.cseq;
                return C(PSH | ACK, true), true;
            }
            if (e < 4) {
                w.seg(c.cip, c.cport, c.sip, c.sport, c.unacked, c.sseq, PSH | ACK, true, ct);
                return true;
            }
            if (e == 4) {
                w.seg(c.sip, c.sport, c.cip, c.cport, c.sseq, c.unacked, PSH | ACK, true, st);
                return true;
            }
            w.seg(c.cip, c.cport, c.sip, c.sport, c.unacked, 0, RST, false, ct);
            return false;
        default:
            return false;
    }
}

// --rst-storm: `packets` RSTs of random 4-tuples (see the header).
void rst_storm(Writer& w, uint64_t packets, uint64_t seed) {
    Rng r{seed ^ 0x5157u};
    while (w.packets() < packets) {
        const uint32_t cip = 0x0a000000u | (r.below(0xfffffe) + 1);
        const uint32_t sip = 0xac100000u | (r.below(0xffffe) + 1);
        const uint32_t pick = r.below(4);
        const uint16_t sport =
            pick == 0 ? 443 : pick == 1 ? 80 : static_cast<uint16_t>(1024 + r.below(64512));
        const uint16_t cport = static_cast<uint16_t>(1024 + r.below(64512));
        const bool with_ack = r.below(2) == 0;
        const uint32_t seq = static_cast<uint32_t>(r.next());
        const uint32_t ack = with_ack ? static_cast<uint32_t>(r.next()) : 0;
        if (r.below(2) == 0)  // from the server (a refusal, an abort) or from the client
            w.seg(sip, sport, cip, cport, seq, ack, with_ack ? RST | ACK : RST, false, 60);
        else
            w.seg(cip, cport, sip, sport, seq, ack, with_ack ? RST | ACK : RST, false, 64);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string out, size = "64";
    uint64_t flows = 1000000, packets = 0, seed = 1;
    CLI::App app{"Deterministic mirrored-TCP traffic generator for the rstmon benchmark"};
    app.add_option("--out", out, "pcap file to write")->required();
    app.add_option("--flows", flows, "concurrent connections")->check(CLI::Range(1ull, 50000000ull));
    app.add_option("--packets", packets,
                   "packets before the open connections are run to their end (default 4 x flows)");
    app.add_option("--size", size, "64 (every frame 64 bytes) or imix")
        ->check(CLI::IsMember({"64", "imix"}));
    app.add_option("--seed", seed, "random seed");
    bool finish = false;
    app.add_flag("--finish", finish,
                 "run the open connections to their end after --packets (every scripted RST is "
                 "written; the rsts counts are then exact)");
    app.add_option("--names", g_names,
                   "first requests name h<K>.example.com, K < N (TLS SNI to 443, HTTP Host to 80)");
    bool storm = false;
    app.add_flag("--rst-storm", storm,
                 "only RSTs (bare or with ACK) of random 4-tuples, 64-byte frames (no connections)")
        ->excludes("--finish")
        ->excludes("--names");
    CLI11_PARSE(app, argc, argv);
    if (packets == 0) packets = 4 * flows;
    if (storm) {
        Writer w(out, false, seed);
        rst_storm(w, packets, seed);
        std::printf("{\"packets\":%llu,\"size\":\"64\",\"rst_storm\":true,\"rst_packets\":%llu}\n",
                    static_cast<unsigned long long>(w.packets()),
                    static_cast<unsigned long long>(w.rsts()));
        return 0;
    }

    Rng rng{seed};
    Writer w(out, size == "imix", seed);
    std::vector<Conn> slots(flows);
    uint64_t next_id = 0;
    for (auto& c : slots) fresh(c, next_id++, rng);
    // Round robin over the slots: every connection advances one packet per round, so about
    // `flows` connections are open at any time; a finished one is replaced by a new one.
    while (w.packets() < packets)
        for (size_t i = 0; i < slots.size() && w.packets() < packets; ++i)
            if (!step(slots[i], w)) fresh(slots[i], next_id++, rng);
    // With --finish, let the open connections run to their end (no new ones), so every scripted
    // RST is on the wire (a known answer for tests): the file then holds more than --packets.
    std::vector<bool> open(slots.size(), true);
    for (size_t left = finish ? slots.size() : 0; left > 0;)
        for (size_t i = 0; i < slots.size(); ++i)
            if (open[i] && !step(slots[i], w)) open[i] = false, --left;
    std::printf("{\"packets\":%llu,\"flows\":%llu,\"connections\":%llu,\"size\":\"%s\","
                "\"rsts\":{",
                static_cast<unsigned long long>(w.packets()), static_cast<unsigned long long>(flows),
                static_cast<unsigned long long>(next_id), size.c_str());
    for (size_t i = 1; i < static_cast<size_t>(Script::count_); ++i)
        std::printf("%s\"%s\":%llu", i > 1 ? "," : "", kScriptName[i],
                    static_cast<unsigned long long>(g_rsts[i]));
    std::printf("}}\n");
    return 0;
}
