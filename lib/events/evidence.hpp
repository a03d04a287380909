// The evidence an RST event carries besides its labels: what the classifier looked at (TTLs and
// hop distances, retransmission runs, keepalive probes, bytes each way) and what it lacked.
// Pure functions of the connection state before the RST: no DPDK, tested on buffers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "classify/classifier.hpp"
#include "events/rst_event.hpp"
#include "packet/packet.hpp"
#include "tcp/connection.hpp"

namespace rstmon::events {

// Hops a packet travelled: its initial TTL is taken as the smallest of the usual defaults
// (64 Linux/BSD/macOS, 128 Windows, 255 network gear) at or above the TTL seen.
inline uint8_t hops_from_ttl(uint8_t ttl) {
    const unsigned initial = ttl <= 64 ? 64u : ttl <= 128 ? 128u : 255u;
    return static_cast<uint8_t>(initial - ttl);
}

// How many hops closer to the monitor than its purported sender an RST was made: the sender's
// own packets' hop distance minus the RST's. 0: made where the sender is; > 0: a device on the
// path (firewall, NAT, injector) answered for it. `baseline_ttl` 0 = unknown (returns 0).
inline int hop_delta(uint8_t rst_ttl, uint8_t baseline_ttl) {
    if (baseline_ttl == 0) return 0;
    return static_cast<int>(hops_from_ttl(baseline_ttl)) - static_cast<int>(hops_from_ttl(rst_ttl));
}

// Evidence the classifier did not have for an RST. Defined once: bit, JSON name and help.
#define RSTMON_MISSING_EVIDENCE(X)                                                          \
    X(flow, "the RST belongs to no tracked flow (lone RST, or the table was full)")        \
    X(handshake, "the flow was picked up mid-stream: its handshake was not seen")         \
    X(roles, "which side is the client is unknown")                                        \
    X(sender_ttl, "no TTL baseline for the sender, in this flow or from its other flows") \
    X(sequence, "no sequence state to judge the RST against (validity unverifiable)")       \
    X(peer, "the RST's receiver was never heard in this flow (one-sided capture)")          \
    X(capture_loss, "the newest part of one side's sequence space was not seen (lossy capture)")

enum class Missing : uint8_t {
#define X(name, help) name,
    RSTMON_MISSING_EVIDENCE(X)
#undef X
        count_
};
inline constexpr size_t kMissingCount = static_cast<size_t>(Missing::count_);
inline constexpr std::string_view kMissingNames[] = {
#define X(name, help) #name,
    RSTMON_MISSING_EVIDENCE(X)
#undef X
};
static_assert(kMissingCount <= 8, "RstEvent::missing is 8 bits");

// Payload bytes the sender has put on the wire in this flow, as the sequence space says (so
// bytes the monitor missed count too; modulo 4 GiB).
uint32_t bytes_sent(const tcp::Direction& d);

// Fills the evidence fields of `e` for an RST sent by `side` (`c` null: no flow), from the state
// before the RST. `host_ttl`: the sender address's TTL in other flows (0 = unknown).
void fill_evidence(RstEvent& e, const tcp::Connection* c, tcp::Side side, uint8_t host_ttl,
                   const classify::Verdict& v);

// Keeps up to RstEvent::kPayloadMax captured payload bytes of the RST (events.include_payload).
void keep_payload(RstEvent& e, const packet::TcpSegment& seg);

// The name of a forensic capture file: prefix + "w<worker>-<file number, 6 digits>.pcap".
std::string pcap_file_name(const std::string& prefix, uint16_t worker, uint32_t file_no);

}  // namespace rstmon::events
