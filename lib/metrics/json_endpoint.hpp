// A JSON GET endpoint served by the metrics server's own civetweb context (prometheus::Exposer
// keeps its CivetServer private; civetweb's init_context callback hands us the context, and
// mg_set_request_handler is civetweb's public API). It shares the port, TLS and basic auth of
// /metrics. Requests run on civetweb's threads, never on a worker lcore.
#pragma once

#include <functional>
#include <string>

struct mg_context;
struct mg_connection;

namespace rstmon::metrics {

class JsonEndpoint {
public:
    // `body(query)` returns the JSON document (throws std::invalid_argument for a 400).
    // `username` non-empty: HTTP basic auth with `password`, as on /metrics.
    JsonEndpoint(mg_context* ctx, std::string uri,
                 std::function<std::string(const std::string& query)> body, std::string username,
                 std::string password);
    ~JsonEndpoint();  // unregisters the handler
    JsonEndpoint(const JsonEndpoint&) = delete;
    JsonEndpoint& operator=(const JsonEndpoint&) = delete;

    // True when `header` (an Authorization header value) carries user:password (basic auth).
    static bool basic_auth_ok(const char* header, const std::string& user, const std::string& pass);

private:
    static int handle(mg_connection* conn, void* self);
    mg_context* ctx_;
    std::string uri_;
    std::function<std::string(const std::string&)> body_;
    std::string username_, password_;
};

}  // namespace rstmon::metrics
