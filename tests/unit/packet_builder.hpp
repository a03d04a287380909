// Builds frames byte by byte for the parser/tracker/classifier tests (no DPDK, no pcap).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "packet/packet.hpp"

namespace rstmon::test {

struct SegSpec {
    std::string src = "10.0.0.1", dst = "10.0.0.2";
    uint16_t sport = 40000, dport = 80;
    uint32_t seq = 1000, ack = 0;
    uint8_t flags = packet::tcpflag::syn;
    uint16_t window = 65535;
    uint8_t ttl = 64;
    uint16_t ip_id = 1;
    std::vector<uint8_t> options;  // raw TCP options (padded to 4 bytes by the builder)
    std::vector<uint8_t> payload;
    std::vector<uint16_t> vlans;   // outermost first
};

// Ethernet frame carrying IPv4 or IPv6 (chosen by the address text) and TCP.
std::vector<uint8_t> frame(const SegSpec& s);
// Just the IP packet (for raw-IP link type tests).
std::vector<uint8_t> ip_packet(const SegSpec& s);

// Parses a built frame; fails the test if it is not TCP.
packet::TcpSegment parse_ok(const std::vector<uint8_t>& f,
                            packet::LinkType link = packet::LinkType::ethernet);

}  // namespace rstmon::test
