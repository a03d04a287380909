#include "metrics/json_endpoint.hpp"

#include <civetweb.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <exception>
#include <stdexcept>

namespace rstmon::metrics {

namespace {
std::string base64_decode(const char* s) {
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (; *s && *s != '='; ++s) {
        const int v = val(*s);
        if (v < 0) return {};
        acc = (acc << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

// Constant time in the secret's length: an endpoint must not leak the password by timing.
bool same(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() != b.size();
    for (size_t i = 0; i < a.size(); ++i)
        diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

void reply(mg_connection* conn, int status, const char* reason, const std::string& body,
           const char* extra_header = "") {
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
              status, reason, body.size(), extra_header);
    mg_write(conn, body.data(), body.size());
}
}  // namespace

bool JsonEndpoint::basic_auth_ok(const char* header, const std::string& user,
                                 const std::string& pass) {
    if (header == nullptr || std::strncmp(header, "Basic ", 6) != 0) return false;
    const std::string cred = base64_decode(header + 6);
    const size_t colon = cred.find(':');
    if (colon == std::string::npos) return false;
    const bool user_ok = same(cred.substr(0, colon), user);
    return same(cred.substr(colon + 1), pass) && user_ok;
}

JsonEndpoint::JsonEndpoint(mg_context* ctx, std::string uri,
                           std::function<std::string(const std::string&)> body,
                           std::string username, std::string password)
    : ctx_(ctx), uri_(std::move(uri)), body_(std::move(body)), username_(std::move(username)),
      password_(std::move(password)) {
    if (ctx_ == nullptr) throw std::runtime_error("no civetweb context for " + uri_);
    mg_set_request_handler(ctx_, uri_.c_str(), &JsonEndpoint::handle, this);
}

JsonEndpoint::~JsonEndpoint() { mg_set_request_handler(ctx_, uri_.c_str(), nullptr, nullptr); }

int JsonEndpoint::handle(mg_connection* conn, void* self_ptr) {
    auto* self = static_cast<JsonEndpoint*>(self_ptr);
    const mg_request_info* ri = mg_get_request_info(conn);
    if (!self->username_.empty() &&
        !basic_auth_ok(mg_get_header(conn, "Authorization"), self->username_, self->password_)) {
        reply(conn, 401, "Unauthorized", "{\"error\":\"authentication required\"}\n",
              "WWW-Authenticate: Basic realm=\"rstmon\"\r\n");
        return 401;
    }
    if (ri == nullptr || std::strcmp(ri->request_method, "GET") != 0) {
        reply(conn, 405, "Method Not Allowed", "{\"error\":\"GET only\"}\n", "Allow: GET\r\n");
        return 405;
    }
    try {
        reply(conn, 200, "OK", self->body_(ri->query_string ? ri->query_string : "") + "\n");
        return 200;
    } catch (const std::invalid_argument& e) {
        reply(conn, 400, "Bad Request", nlohmann::json{{"error", e.what()}}.dump() + "\n");
        return 400;
    } catch (const std::exception&) {
        reply(conn, 500, "Internal Server Error", "{\"error\":\"internal error\"}\n");
        return 500;
    }
}

}  // namespace rstmon::metrics
