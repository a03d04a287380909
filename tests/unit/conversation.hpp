// Feeds built segments through the tracker and classifier the way the pipeline worker does.
#pragma once

#include <optional>

#include "classify/classifier.hpp"
#include "flow/flow_key.hpp"
#include "packet_builder.hpp"

namespace rstmon::test {

// Client 10.0.0.1:40000 <-> server 10.0.0.2:80 (or IPv6), with helpers for both directions.
// As on a client-side SPAN behind one router hop: the client's packets carry TTL 64, the server's
// 63 (a middlebox answering for the server would show 64).
class Conversation {
public:
    explicit Conversation(bool v6 = false) {
        if (v6) {
            c2s_.src = "fd00::1";
            c2s_.dst = "fd00::2";
        }
        s2c_.src = c2s_.dst;
        s2c_.dst = c2s_.src;
        s2c_.sport = c2s_.dport;
        s2c_.dport = c2s_.sport;
    }
    std::optional<classify::Verdict> client(uint8_t flags, uint32_t seq, uint32_t ack,
                                            size_t payload = 0, uint8_t ttl = 64) {
        return feed(c2s_, flags, seq, ack, payload, ttl);
    }
    std::optional<classify::Verdict> server(uint8_t flags, uint32_t seq, uint32_t ack,
                                            size_t payload = 0, uint8_t ttl = 63) {
        return feed(s2c_, flags, seq, ack, payload, ttl);
    }
    const tcp::Connection& conn() const { return conn_; }
    // Lets time pass (milliseconds) before the next segment.
    void wait(tcp::Ms ms) { now_ += ms; }
    classify::Thresholds& thresholds() { return th_; }
    void set_host_ttl(uint8_t ttl) { host_ttl_ = ttl; }
    bool tracked() const { return started_; }
    SegSpec& c2s() { return c2s_; }
    SegSpec& s2c() { return s2c_; }

    // Standard handshake: client ISN 1000, server ISN 5000.
    void handshake() {
        using namespace packet::tcpflag;
        client(syn, 1000, 0);
        server(syn | ack, 5000, 1001);
        client(ack, 1001, 5001);
    }

private:
    std::optional<classify::Verdict> feed(SegSpec s, uint8_t flags, uint32_t seq, uint32_t ack,
                                          size_t payload, uint8_t ttl) {
        s.flags = flags;
        s.ttl = ttl;
        s.seq = seq;
        s.ack = ack;
        s.payload.assign(payload, 'x');
        const packet::TcpSegment seg = parse_ok(frame(s));
        flow::FlowKey key;
        const tcp::Side side = flow::make_key(seg, key);
        if (seg.has(packet::tcpflag::rst)) {
            const auto v =
                classify::classify(started_ ? &conn_ : nullptr, side, seg, th_, host_ttl_);
            if (started_) conn_.note_rst(seg, side);
            return v;
        }
        if (!started_) {
            conn_.start(seg, side);
            started_ = true;
        }
        conn_.update(seg, side, now_);
        return std::nullopt;
    }

    SegSpec c2s_, s2c_;
    tcp::Connection conn_;
    classify::Thresholds th_;
    tcp::Ms now_ = 0;
    uint8_t host_ttl_ = 0;
    bool started_ = false;
};

}  // namespace rstmon::test
