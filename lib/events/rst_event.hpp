// One classified RST, as handed from a worker to the control thread over an rte_ring (by value).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "classify/taxonomy.hpp"
#include "packet/packet.hpp"

namespace rstmon::events {

inline constexpr uint64_t kUnknownNs = UINT64_MAX;
inline constexpr uint8_t kNoTrigger = 0xff;

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
    // Evidence behind the cause (events/evidence.hpp fills it; JSON names in the README).
    uint32_t src_bytes = 0, dst_bytes = 0;  // payload each way in the flow (sequence space)
    uint8_t flow_ttl = 0;         // the sender's first TTL in this flow (0 = it had not spoken)
    uint8_t host_ttl = 0;         // the sender address's TTL in other flows (0 = unknown)
    uint8_t rexmit_run = 0;       // the sender's retransmissions without ACK progress
    uint8_t peer_rexmit_run = 0;  // the receiver's
    uint8_t ka_probes = 0;        // the sender's keepalive probes left unanswered
    uint8_t missing = 0;          // bit set of events::Missing: evidence the classifier lacked
    uint8_t payload_caplen = 0;   // bytes of `payload` kept (events.include_payload only)
    uint8_t pad2_ = 0;
    // Forensic capture of the RST's episode (forensics/): 0 = none.
    uint32_t capture_id = 0;      // the worker's capture number (internal)
    uint32_t pcap_file = 0;       // file number the capture went to (0 = not written)
    uint32_t pcap_first = 0;      // frame number (1-based) of the capture's first packet there
    uint16_t pcap_packets = 0;    // frames of the capture
    uint16_t pcap_rst = UINT16_MAX;  // this RST's position in the capture (0-based), if in it
    static constexpr size_t kPayloadMax = 64;
    uint8_t payload[kPayloadMax] = {};
    // Services and triggers (pipeline/flow_match.hpp): the first trigger, in config order, that
    // the flow's first bytes matched, and the TLS server name or HTTP Host that named the
    // service (name_kind = match::NameKind: 1 sni, 2 host; 0 = the service came from the port).
    uint8_t trigger = kNoTrigger;
    uint8_t name_kind = 0;
    uint8_t name_len = 0;
    char name[255] = {};  // match::HostName::kMax; name_len bytes are valid
};
static_assert(sizeof(RstEvent) % 4 == 0, "rte_ring element size must be a multiple of 4");

// One JSON object, no newline. The field set is a public interface (README "Event stream").
// `pcap_prefix`: forensic file names are pcap_prefix + "w<worker>-<file number>.pcap"
// (events::pcap_file_name). `trigger_names`: config triggers, by index.
std::string to_json(const RstEvent& e, const std::vector<std::string>& service_names,
                    const std::vector<std::string>& port_names,
                    const std::string& pcap_prefix = {},
                    const std::vector<std::string>& trigger_names = {});

}  // namespace rstmon::events
