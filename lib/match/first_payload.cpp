#include "match/first_payload.hpp"

#include <cstring>

namespace rstmon::match {

FirstPayload::Add FirstPayload::add(uint32_t seq, const uint8_t* p, size_t n) {
    if (size_ == kCapacity) return Add::full;  // whatever comes now cannot be kept
    // Offsets are taken modulo 2^32 like TCP sequence numbers; a segment starting before seq0_
    // (a retransmission reaching back) has its old head cut off.
    const auto rel = static_cast<int32_t>(seq - seq0_);
    size_t from = 0;  // first byte of p that is not before seq0_
    size_t at = 0;    // where p[from] belongs in the buffer
    if (rel < 0) {
        const size_t before = static_cast<size_t>(-static_cast<int64_t>(rel));
        if (n <= before) return Add::duplicate;
        from = before;
    } else {
        at = static_cast<size_t>(rel);
    }
    if (at > size_) return Add::gap;
    const size_t have = size_ - at;  // bytes of this segment already held
    if (n - from <= have) return Add::duplicate;
    from += have;
    const size_t room = kCapacity - size_;
    const size_t take = n - from < room ? n - from : room;
    std::memcpy(buf_ + size_, p + from, take);
    size_ += static_cast<uint32_t>(take);
    return take < n - from ? Add::full : Add::appended;
}

Identification identify(const uint8_t* data, size_t len, const MatchDatabases& db,
                        Scratch& scratch, HostName& name) {
    Identification r;
    r.sni = extract_sni(data, len, name);
    if (r.sni == SniResult::found) {
        r.status = Identification::Status::named;
        r.kind = NameKind::sni;
        r.service = db.classify_service(NameKind::sni, name.view(), scratch);
        return r;
    }
    if (r.sni != SniResult::not_tls) {
        r.status = r.sni == SniResult::incomplete ? Identification::Status::need_more
                                                  : Identification::Status::no_name;
        return r;
    }
    r.http = extract_http_host(data, len, name);
    switch (r.http) {
        case HttpHostResult::found:
            r.status = Identification::Status::named;
            r.kind = NameKind::host;
            r.service = db.classify_service(NameKind::host, name.view(), scratch);
            break;
        case HttpHostResult::incomplete:
            r.status = Identification::Status::need_more;
            break;
        default:
            r.status = Identification::Status::no_name;
            break;
    }
    return r;
}

}  // namespace rstmon::match
