// One classified RST, as handed from a worker to the control thread over an rte_ring (by value).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "classify/taxonomy.hpp"
#include "packet/packet.hpp"

namespace rstmon::events {

inline constexpr uint64_t kUnknownNs = UINT64_MAX;

struct RstEvent {
    uint64_t ts_ns = 0;       // capture time (pcap timestamp offline, receive time live)
    // Evidence, kUnknownNs when the RST found no flow: the flow's silence before the RST (the
    // longer of the gap right before it and the gap before the segment it answers) and its age.
    uint64_t idle_ns = kUnknownNs;
    uint64_t age_ns = kUnknownNs;
    packet::IpAddr src, dst;  // src = the RST's sender
    uint32_t seq = 0, ack = 0;
    uint32_t payload_len = 0;
    uint16_t sport = 0, dport = 0;
    uint16_t port = 0;        // rstmon port index
    uint16_t worker = 0;
    uint16_t vlan = 0;
    uint8_t family = 4;
    uint8_t flags = 0;
    uint8_t ttl = 0;
    uint8_t service = 0;
    classify::Cause cause = classify::Cause::unclassified;
    classify::Stage stage = classify::Stage::no_state;
    classify::Sender sender = classify::Sender::unknown;
    classify::Validity validity = classify::Validity::unverifiable;
    uint8_t first = 1;        // opened its flow's RST episode (0: a later RST of the episode)
    uint8_t pad_ = 0;
};
static_assert(sizeof(RstEvent) % 4 == 0, "rte_ring element size must be a multiple of 4");

// One JSON object, no newline. The field set is a public interface (README "Event stream").
std::string to_json(const RstEvent& e, const std::vector<std::string>& service_names,
                    const std::vector<std::string>& port_names);

}  // namespace rstmon::events
