// Loaded (dlopen, RTLD_GLOBAL) before the metrics endpoint starts TLS. Debian 12's civetweb 1.15
// loads OpenSSL itself with dlopen("libssl.so") and looks up SSL_get_peer_certificate, which
// OpenSSL 3 no longer exports (it became a macro for SSL_get1_peer_certificate); civetweb then
// calls a null pointer on the first TLS connection. This module carries the SONAME "libssl.so",
// so the dynamic linker hands it to civetweb's dlopen, and it provides the missing symbol on top
// of the real libssl.so.3 (a NEEDED dependency, so every other symbol resolves there).
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate

extern "C" __attribute__((visibility("default"))) X509* SSL_get_peer_certificate(const SSL* s) {
    return SSL_get1_peer_certificate(s);  // same reference semantics as OpenSSL 1.1's
}
