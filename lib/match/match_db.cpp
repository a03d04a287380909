#include "match/match_db.hpp"

#include <hs/hs.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace rstmon::match {
namespace {

constexpr unsigned kServiceFlags = HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY;
constexpr unsigned kTriggerFlags = HS_FLAG_SINGLEMATCH | HS_FLAG_DOTALL;

// A pattern inside a one-line message: control bytes as \xNN so the message stays one line.
std::string printable(std::string_view s) {
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) {
            char buf[5];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out;
}

struct Expression {
    std::string where;  // services[1].sni[0]
    std::string raw;    // as configured
    std::string text;   // as compiled
    unsigned id;
};

[[noreturn]] void fail(const Expression& e, const char* how, const char* hs_message) {
    throw PatternError(e.where + ": pattern '" + printable(e.raw) + "' " + how + ": " + hs_message);
}

// The checks Hyperscan cannot make for us: it reads a C string (an embedded NUL would cut the
// pattern short), and an empty pattern would only ever match an empty name.
void check_text(const Expression& e) {
    if (e.raw.empty()) throw PatternError(e.where + ": empty pattern");
    if (e.raw.find('\0') != std::string::npos)
        throw PatternError(e.where + ": pattern '" + printable(e.raw) + "' contains a NUL byte");
}

// The pattern by itself, so error positions refer to what the user wrote, not to the wrapper.
void check_alone(const Expression& e, unsigned flags) {
    hs_expr_info_t* info = nullptr;
    hs_compile_error_t* err = nullptr;
    if (hs_expression_info(e.raw.c_str(), flags, &info, &err) != HS_SUCCESS) {
        const std::string msg = err != nullptr ? err->message : "unknown error";
        hs_free_compile_error(err);
        fail(e, "does not compile", msg.c_str());
    }
    std::free(info);  // allocated with Hyperscan's misc allocator, malloc by default
}

hs_database_t* compile_set(const std::vector<Expression>& exprs, unsigned flags, bool wrapped,
                           const char* what) {
    if (exprs.empty()) return nullptr;
    std::vector<const char*> texts;
    std::vector<unsigned> all_flags(exprs.size(), flags), ids;
    for (const Expression& e : exprs) {
        texts.push_back(e.text.c_str());
        ids.push_back(e.id);
    }
    hs_database_t* db = nullptr;
    hs_compile_error_t* err = nullptr;
    if (hs_compile_multi(texts.data(), all_flags.data(), ids.data(),
                         static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK, nullptr, &db,
                         &err) != HS_SUCCESS) {
        const std::string msg = err != nullptr ? err->message : "unknown error";
        const int at = err != nullptr ? err->expression : -1;
        hs_free_compile_error(err);
        if (at >= 0 && static_cast<size_t>(at) < exprs.size()) {
            const Expression& e = exprs[static_cast<size_t>(at)];
            if (wrapped)
                fail(e, ("does not compile as a whole-name match " + printable(e.text)).c_str(),
                     msg.c_str());
            fail(e, "does not compile", msg.c_str());
        }
        throw PatternError(std::string(what) + ": the patterns do not compile together: " + msg);
    }
    return db;
}

void add_scratch(hs_database_t* db, hs_scratch_t** scratch) {
    if (db != nullptr && hs_alloc_scratch(db, scratch) != HS_SUCCESS)
        throw std::runtime_error("Hyperscan: cannot allocate scratch space");
}

int on_service(unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) {
    auto* best = static_cast<unsigned*>(ctx);
    if (id < *best) *best = id;
    return 0;  // a service listed earlier may still match: keep scanning
}

struct TriggerScan {
    uint32_t mask;
    uint32_t all;
};

int on_trigger(unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) {
    auto* t = static_cast<TriggerScan*>(ctx);
    t->mask |= uint32_t{1} << id;
    return t->mask == t->all ? 1 : 0;  // every trigger seen: nothing more to learn
}

}  // namespace

Scratch::~Scratch() { hs_free_scratch(s_); }

Scratch& Scratch::operator=(Scratch&& o) noexcept {
    if (this != &o) {
        hs_free_scratch(s_);
        s_ = o.s_;
        errors_ = o.errors_;
        o.s_ = nullptr;
    }
    return *this;
}

std::shared_ptr<const MatchDatabases> MatchDatabases::compile(const MatchSpec& spec) {
    if (spec.services.size() > kMaxServiceIds)
        throw PatternError("services: " + std::to_string(spec.services.size()) +
                           " services, at most " + std::to_string(kMaxServiceIds));
    if (spec.triggers.size() > kMaxTriggers)
        throw PatternError("triggers: " + std::to_string(spec.triggers.size()) +
                           " triggers, at most " + std::to_string(kMaxTriggers));

    std::vector<Expression> sni, host, triggers;
    for (size_t i = 0; i < spec.services.size(); ++i) {
        const auto add = [&](const std::vector<std::string>& pats, const char* kind,
                             std::vector<Expression>& out) {
            for (size_t j = 0; j < pats.size(); ++j) {
                Expression e{"services[" + std::to_string(i) + "]." + kind + "[" +
                                 std::to_string(j) + "]",
                             pats[j], "^(?:" + pats[j] + ")\\z", static_cast<unsigned>(i + 1)};
                check_text(e);
                out.push_back(std::move(e));
            }
        };
        add(spec.services[i].sni, "sni", sni);
        add(spec.services[i].host, "host", host);
    }
    for (size_t i = 0; i < spec.triggers.size(); ++i) {
        Expression e{"triggers[" + std::to_string(i) + "].pattern", spec.triggers[i].pattern,
                     spec.triggers[i].pattern, static_cast<unsigned>(i)};
        check_text(e);
        triggers.push_back(std::move(e));
    }
    if (sni.empty() && host.empty() && triggers.empty())
        return std::shared_ptr<const MatchDatabases>(new MatchDatabases());

    if (hs_valid_platform() != HS_SUCCESS)
        throw PatternError("Hyperscan does not run on this CPU (it needs SSSE3): remove the "
                           "sni, host and triggers patterns");
    // Config order, so a bad pattern is reported where the reader meets it first.
    for (const Expression& e : sni) check_alone(e, kServiceFlags);
    for (const Expression& e : host) check_alone(e, kServiceFlags);
    for (const Expression& e : triggers) check_alone(e, kTriggerFlags);

    std::shared_ptr<MatchDatabases> m(new MatchDatabases());
    m->sni_ = compile_set(sni, kServiceFlags, true, "services (sni)");
    m->host_ = compile_set(host, kServiceFlags, true, "services (host)");
    m->triggers_ = compile_set(triggers, kTriggerFlags, false, "triggers");
    m->trigger_count_ = spec.triggers.size();
    add_scratch(m->sni_, &m->prototype_);
    add_scratch(m->host_, &m->prototype_);
    add_scratch(m->triggers_, &m->prototype_);
    return m;
}

MatchDatabases::~MatchDatabases() {
    hs_free_database(sni_);
    hs_free_database(host_);
    hs_free_database(triggers_);
    hs_free_scratch(prototype_);
}

Scratch MatchDatabases::make_scratch() const {
    Scratch s;
    if (prototype_ != nullptr && hs_clone_scratch(prototype_, &s.s_) != HS_SUCCESS)
        throw std::bad_alloc();
    return s;
}

uint8_t MatchDatabases::classify_service(NameKind kind, std::string_view name,
                                         Scratch& scratch) const {
    const hs_database_t* db = kind == NameKind::sni ? sni_ : kind == NameKind::host ? host_ : nullptr;
    if (db == nullptr) return 0;
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    // No host name is empty or longer than 255 characters; this also bounds the scan.
    if (name.empty() || name.size() > HostName::kMax) return 0;
    unsigned best = UINT_MAX;
    const hs_error_t rc = hs_scan(db, name.data(), static_cast<unsigned>(name.size()), 0,
                                  scratch.s_, on_service, &best);
    if (rc != HS_SUCCESS) {
        ++scratch.errors_;
        return 0;
    }
    return best == UINT_MAX ? 0 : static_cast<uint8_t>(best);
}

uint32_t MatchDatabases::scan_triggers(const uint8_t* data, size_t len, Scratch& scratch) const {
    if (triggers_ == nullptr || len == 0) return 0;
    TriggerScan t{0, trigger_count_ == 32 ? ~uint32_t{0} : (uint32_t{1} << trigger_count_) - 1};
    const unsigned n = len > UINT_MAX ? UINT_MAX : static_cast<unsigned>(len);
    const hs_error_t rc = hs_scan(triggers_, reinterpret_cast<const char*>(data), n, 0,
                                  scratch.s_, on_trigger, &t);
    if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED) ++scratch.errors_;
    return t.mask;
}

}  // namespace rstmon::match
