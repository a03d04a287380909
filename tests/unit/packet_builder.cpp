#include "packet_builder.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace rstmon::test {
namespace {
void put16(std::vector<uint8_t>& v, uint16_t x) {
    v.push_back(static_cast<uint8_t>(x >> 8));
    v.push_back(static_cast<uint8_t>(x));
}
void put32(std::vector<uint8_t>& v, uint32_t x) {
    put16(v, static_cast<uint16_t>(x >> 16));
    put16(v, static_cast<uint16_t>(x));
}
bool is_v6(const std::string& a) { return a.find(':') != std::string::npos; }
}  // namespace

std::vector<uint8_t> ip_packet(const SegSpec& s) {
    std::vector<uint8_t> tcp;
    std::vector<uint8_t> opts = s.options;
    while (opts.size() % 4) opts.push_back(0);
    put16(tcp, s.sport);
    put16(tcp, s.dport);
    put32(tcp, s.seq);
    put32(tcp, s.ack);
    tcp.push_back(static_cast<uint8_t>((5 + opts.size() / 4) << 4));
    tcp.push_back(s.flags);
    put16(tcp, s.window);
    put16(tcp, 0);  // checksum: not verified by a passive monitor
    put16(tcp, 0);
    tcp.insert(tcp.end(), opts.begin(), opts.end());
    tcp.insert(tcp.end(), s.payload.begin(), s.payload.end());

    std::vector<uint8_t> ip;
    if (is_v6(s.src)) {
        put32(ip, 0x60000000);
        put16(ip, static_cast<uint16_t>(tcp.size()));
        ip.push_back(6);
        ip.push_back(s.ttl);
        uint8_t a[16];
        inet_pton(AF_INET6, s.src.c_str(), a);
        ip.insert(ip.end(), a, a + 16);
        inet_pton(AF_INET6, s.dst.c_str(), a);
        ip.insert(ip.end(), a, a + 16);
    } else {
        ip.push_back(0x45);
        ip.push_back(0);
        put16(ip, static_cast<uint16_t>(20 + tcp.size()));
        put16(ip, s.ip_id);
        put16(ip, 0x4000);  // DF
        ip.push_back(s.ttl);
        ip.push_back(6);
        put16(ip, 0);
        uint8_t a[4];
        inet_pton(AF_INET, s.src.c_str(), a);
        ip.insert(ip.end(), a, a + 4);
        inet_pton(AF_INET, s.dst.c_str(), a);
        ip.insert(ip.end(), a, a + 4);
    }
    ip.insert(ip.end(), tcp.begin(), tcp.end());
    return ip;
}

std::vector<uint8_t> frame(const SegSpec& s) {
    std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
    for (size_t i = 0; i < s.vlans.size(); ++i) {
        put16(f, i == 0 && s.vlans.size() > 1 ? 0x88a8 : 0x8100);
        put16(f, s.vlans[i]);
    }
    put16(f, is_v6(s.src) ? 0x86dd : 0x0800);
    const auto ip = ip_packet(s);
    f.insert(f.end(), ip.begin(), ip.end());
    return f;
}

packet::TcpSegment parse_ok(const std::vector<uint8_t>& f, packet::LinkType link) {
    packet::TcpSegment seg;
    const auto r = packet::parse(link, f.data(), f.size(), seg);
    EXPECT_EQ(r.status, packet::ParseStatus::tcp)
        << "malformed=" << packet::malformed_name(r.malformed)
        << " ignored=" << packet::ignored_name(r.ignored);
    return seg;
}

}  // namespace rstmon::test
