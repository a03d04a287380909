#!/usr/bin/env python3
"""Servers that end their connections with an RST, for make-tls-http.sh (run in the server
namespace; stdlib only). Each abort is SO_LINGER {1, 0} + close(): the kernel discards what is
unsent and answers with an RST.

  reset_server.py HTTP_PORT TLS_PORT REPLY_PORT REPLY_WORD

HTTP_PORT   reads one HTTP/1.x request head, then aborts.
TLS_PORT    reads one complete ClientHello (TLS records until its handshake message is whole,
            however many records and segments it spans), then aborts.
REPLY_PORT  reads one HTTP/1.x request head, answers with a response head and the start of a
            body that contains REPLY_WORD, waits until the client has acknowledged all of it
            (so it is on the wire), then aborts.
"""

import fcntl
import socket
import struct
import sys
import threading
import time

SIOCOUTQ = 0x5411  # bytes not yet acknowledged by the peer (linux/sockios.h, = TIOCOUTQ)


def recv_until(conn, done):
    buf = b""
    while not done(buf):
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def http_head_read(buf):
    return b"\r\n\r\n" in buf


def client_hello_read(buf):
    """True once the TLS records in buf hold a whole handshake message."""
    hs, off = b"", 0
    while off + 5 <= len(buf):
        length = struct.unpack("!H", buf[off + 3:off + 5])[0]
        hs += buf[off + 5:off + 5 + length]
        off += 5 + length
    return len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big")


def abort(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def wait_acked(conn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if struct.unpack("i", fcntl.ioctl(conn.fileno(), SIOCOUTQ, b"\0" * 4))[0] == 0:
            return
        time.sleep(0.005)
    raise SystemExit("reset_server: the client never acknowledged the reply")


def handle(kind, conn, word):
    if kind == "http":
        recv_until(conn, http_head_read)
    elif kind == "tls":
        recv_until(conn, client_hello_read)
    else:
        recv_until(conn, http_head_read)
        body = b"<html>this page mentions " + word + b" and then breaks off"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 4096\r\n\r\n"
                     + body)
        wait_acked(conn)
    abort(conn)


def serve(kind, port, word):
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", port))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        handle(kind, conn, word)


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    http_port, tls_port, reply_port = (int(a) for a in sys.argv[1:4])
    word = sys.argv[4].encode()
    threads = [threading.Thread(target=serve, args=(k, p, word), daemon=True)
               for k, p in (("http", http_port), ("tls", tls_port), ("reply", reply_port))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
