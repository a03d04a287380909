// The RST taxonomy, defined once. Enum values, Prometheus label values, JSON names and the
// README/dashboards all derive from these lists: adding a cause touches only this file and the
// classifier. See ../shared/design/CAUSES.md for how each cause is recognised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace rstmon::classify {

// X(name, one line for an operator)
#define RSTMON_CAUSES(X)                                                                          \
    X(port_closed, "nothing listens on the port: the server's kernel refused the SYN")            \
    X(middlebox_reject, "a firewall/DPI on the path refused on behalf of the endpoint")           \
    X(injected, "an on-path device forged the RST (censorship, tampering)")                       \
    X(connect_timeout, "the client gave up connecting before the SYN-ACK arrived")                \
    X(scan_probe, "half-open SYN scan: SYN, SYN-ACK, RST, never an ACK")                          \
    X(listen_overflow, "accept queue full with tcp_abort_on_overflow: server reset the handshake") \
    X(unread_data_close, "the application closed with unread data (e.g. pipelined request)")      \
    X(linger_abort, "abortive close with SO_LINGER {1,0}")                                        \
    X(data_after_close, "the peer kept sending after this side closed (FIN sent)")                \
    X(orphan_abort, "a closed socket was killed in FIN_WAIT2 or for memory")                      \
    X(idle_timeout, "state expired in a NAT/LB/firewall after an idle gap")                       \
    X(keepalive_timeout, "keepalive probes went unanswered")                                      \
    X(retransmission_timeout, "the sender gave up retransmitting and later reset the peer")       \
    X(stale_connection, "the endpoint lost the connection (reboot, crash, flushed state)")        \
    X(time_wait_reuse, "a SYN reused a 4-tuple still in TIME_WAIT")                               \
    X(invalid_segment, "the endpoint rejected a segment it judged invalid")                       \
    X(no_state, "rstmon never saw this flow's start (mid-stream pickup)")                         \
    X(unclassified, "none of the known signatures matched")

#define RSTMON_STAGES(X)                                                \
    X(post_syn, "only a SYN seen")                                      \
    X(post_synack, "SYN-ACK seen, handshake not completed")             \
    X(post_ack, "handshake completed, no payload yet")                  \
    X(post_psh, "payload seen from one side only (first request)")      \
    X(later_in_flow, "payload seen from both sides")                    \
    X(closing, "after a FIN from either side")                          \
    X(no_state, "flow not seen from its start")

#define RSTMON_SENDERS(X)                        \
    X(client, "the side that sent the first SYN") \
    X(server, "the side that answered the SYN")   \
    X(unknown, "roles not known")

#define RSTMON_VALIDITIES(X)                                                  \
    X(exact, "seq equals the receiver's rcv_nxt (RFC 5961 acceptable)")        \
    X(in_window, "seq inside the receiver's window but not exact")            \
    X(out_of_window, "seq outside the receiver's window")                     \
    X(unverifiable, "no sequence state to judge against")

#define RSTMON_DEFINE_ENUM(Type, LIST)                  \
    enum class Type : uint8_t { LIST(RSTMON_ENUM_ITEM) count_ }; \
    inline constexpr size_t k##Type##Count = static_cast<size_t>(Type::count_);
#define RSTMON_ENUM_ITEM(name, help) name,

RSTMON_DEFINE_ENUM(Cause, RSTMON_CAUSES)
RSTMON_DEFINE_ENUM(Stage, RSTMON_STAGES)
RSTMON_DEFINE_ENUM(Sender, RSTMON_SENDERS)
RSTMON_DEFINE_ENUM(Validity, RSTMON_VALIDITIES)

#undef RSTMON_ENUM_ITEM
#undef RSTMON_DEFINE_ENUM

struct Described {
    std::string_view name;
    std::string_view help;
};

#define RSTMON_TABLE_ITEM(name, help) Described{#name, help},
inline constexpr Described kCauses[] = {RSTMON_CAUSES(RSTMON_TABLE_ITEM)};
inline constexpr Described kStages[] = {RSTMON_STAGES(RSTMON_TABLE_ITEM)};
inline constexpr Described kSenders[] = {RSTMON_SENDERS(RSTMON_TABLE_ITEM)};
inline constexpr Described kValidities[] = {RSTMON_VALIDITIES(RSTMON_TABLE_ITEM)};
#undef RSTMON_TABLE_ITEM

constexpr std::string_view name(Cause c) { return kCauses[static_cast<size_t>(c)].name; }
constexpr std::string_view name(Stage s) { return kStages[static_cast<size_t>(s)].name; }
constexpr std::string_view name(Sender s) { return kSenders[static_cast<size_t>(s)].name; }
constexpr std::string_view name(Validity v) { return kValidities[static_cast<size_t>(v)].name; }

std::optional<Cause> cause_from_name(std::string_view n);

}  // namespace rstmon::classify
