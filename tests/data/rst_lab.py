#!/usr/bin/python3
"""Helper for make-rst-lab.sh: provokes TCP RSTs with real Linux sockets.

Modes (run inside the lab namespaces via `ip netns exec`):

  rst_lab.py server READY_FILE
      Listens on 10.99.0.2 and fd00:99::2, ports 8080 (fin_close),
      9002 (linger_abort) and 9003 (unread_data_close).  Port 9001 is
      deliberately left closed (port_closed).  Touches READY_FILE once all
      listeners are up, then serves connections one at a time until killed.

  rst_lab.py client CONNS_TSV
      Runs the interleaved scenario sequence against the server and writes
      one line per connection: scenario family src sport dst dport.

  rst_lab.py truth CONNS_TSV TRACE_FILE PCAP OUT_TSV
      Joins the connection list, the tcp:tcp_send_reset trace output
      (TRACE_FILE may be "-" if the tracepoint was unavailable) and the
      capture into the ground-truth file, and verifies it.  Exits non-zero
      on any inconsistency.
"""

import fcntl
import re
import select
import socket
import struct
import sys
import termios
import time

SRV4, CLI4 = "10.99.0.2", "10.99.0.1"
SRV6, CLI6 = "fd00:99::2", "fd00:99::1"

PORT_FIN = 8080
PORT_CLOSED = 9001
PORT_LINGER = 9002
PORT_UNREAD = 9003

SCENARIO_PORT = {
    "fin_close": PORT_FIN,
    "port_closed": PORT_CLOSED,
    "linger_abort": PORT_LINGER,
    "unread_data_close": PORT_UNREAD,
}
PORT_SCENARIO = {v: k for k, v in SCENARIO_PORT.items()}
RST_SCENARIOS = ("port_closed", "linger_abort", "unread_data_close")

ROUNDS = 6  # each scenario once per round, families alternate -> 3 v4 + 3 v6
TIMEOUT = 3.0

BODY = b"hello from rst-lab\n"
RESPONSE = (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY


def die(msg):
    sys.stderr.write("rst_lab.py: ERROR: %s\n" % msg)
    sys.exit(1)


def request(path, host):
    return ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: rst-lab\r\n\r\n"
            % (path, host)).encode()


def recv_until(sock, terminator):
    """Read until terminator is seen; never reads beyond what was sent
    in one request because each request is sent as one write."""
    buf = b""
    while terminator not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("EOF before terminator")
        buf += chunk
    return buf


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("EOF after %d/%d bytes" % (len(buf), n))
        buf += chunk
    return buf


def outq(sock):
    """Bytes not yet acknowledged by the peer (SIOCOUTQ == TIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                          struct.pack("i", 0)))[0]


def inq(sock):
    """Bytes queued for reading (SIOCINQ == FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD,
                                          struct.pack("i", 0)))[0]


# --------------------------------------------------------------------------
# server


def serve_one(conn, port):
    conn.settimeout(TIMEOUT)
    if port == PORT_FIN:
        recv_until(conn, b"\r\n\r\n")
        conn.sendall(RESPONSE)
        conn.shutdown(socket.SHUT_WR)          # our FIN
        # wait for the client's FIN so nothing is left unread
        while conn.recv(4096):
            pass
        conn.close()
    elif port == PORT_LINGER:
        recv_until(conn, b"\r\n\r\n")
        conn.sendall(RESPONSE)
        # wait until the client has ACKed the whole response so the abort
        # happens on a quiet connection with nothing in flight either way
        deadline = time.monotonic() + TIMEOUT
        while outq(conn) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("response not acked")
            time.sleep(0.002)
        if inq(conn) != 0:
            raise RuntimeError("linger_abort: unexpected unread data")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
        conn.close()                           # -> RST (abort on linger)
    elif port == PORT_UNREAD:
        recv_until(conn, b"\r\n\r\n")          # request 1
        conn.sendall(RESPONSE)
        # wait until pipelined request 2 has arrived, but do NOT read it
        r, _, _ = select.select([conn], [], [], TIMEOUT)
        if not r or inq(conn) == 0:
            raise TimeoutError("request 2 did not arrive")
        conn.close()                           # -> RST (unread data)
    else:
        conn.close()


def server(ready_file):
    listeners = {}
    for fam, addr in ((socket.AF_INET, SRV4), (socket.AF_INET6, SRV6)):
        for port in (PORT_FIN, PORT_LINGER, PORT_UNREAD):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            s.listen(16)
            listeners[s] = port
    with open(ready_file, "w") as f:
        f.write("ready\n")
    while True:
        r, _, _ = select.select(list(listeners), [], [])
        for ls in r:
            conn, _peer = ls.accept()
            try:
                serve_one(conn, listeners[ls])
            except Exception as e:  # keep serving; client will notice
                sys.stderr.write("server: port %d: %r\n" % (listeners[ls], e))
                conn.close()


# --------------------------------------------------------------------------
# client


def new_sock(fam):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    # bind first so the local port is known even if connect() fails
    s.bind((CLI4 if fam == socket.AF_INET else CLI6, 0))
    return s


def expect_reset(s):
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        return
    raise RuntimeError("expected ECONNRESET, got %r" % (data,))


def run_client_conn(scenario, fam):
    srv = SRV4 if fam == socket.AF_INET else SRV6
    port = SCENARIO_PORT[scenario]
    s = new_sock(fam)
    local = s.getsockname()
    host = srv if fam == socket.AF_INET else "[%s]" % srv
    try:
        if scenario == "port_closed":
            try:
                s.connect((srv, port))
            except ConnectionRefusedError:
                pass
            else:
                raise RuntimeError("connect to closed port succeeded")
        elif scenario == "fin_close":
            s.connect((srv, port))
            s.sendall(request("/fin", host))
            resp = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                resp += chunk
            if resp != RESPONSE:
                raise RuntimeError("bad response %r" % resp)
        elif scenario == "linger_abort":
            s.connect((srv, port))
            s.sendall(request("/linger", host))
            if recv_exact(s, len(RESPONSE)) != RESPONSE:
                raise RuntimeError("bad response")
            expect_reset(s)                 # send nothing more; wait for RST
        elif scenario == "unread_data_close":
            s.connect((srv, port))
            s.sendall(request("/one", host))
            if recv_exact(s, len(RESPONSE)) != RESPONSE:
                raise RuntimeError("bad response")
            s.sendall(request("/two-never-read", host))   # pipelined
            expect_reset(s)
    finally:
        s.close()
    return (scenario, "ipv4" if fam == socket.AF_INET else "ipv6",
            local[0], local[1], srv, port)


def client(conns_tsv):
    order = ["fin_close", "port_closed", "linger_abort", "unread_data_close"]
    rows = []
    for i in range(ROUNDS):
        fam = socket.AF_INET if i % 2 == 0 else socket.AF_INET6
        # rotate so the scenarios interleave differently each round
        for scen in order[i % 4:] + order[:i % 4]:
            rows.append(run_client_conn(scen, fam))
            time.sleep(0.01)
    # linger a moment so trailing segments are on the wire before capture ends
    time.sleep(0.1)
    with open(conns_tsv, "w") as f:
        f.write("scenario\tfamily\tsrc\tsport\tdst\tdport\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")


# --------------------------------------------------------------------------
# truth

TRACE_RE = re.compile(
    r"tcp_send_reset:.*?src=(\S+) dest=(\S+) state=(\S+) reason=(\S+)")


def split_addr(s):
    """'10.0.0.1:80' or '[fd00::1]:80' -> ('10.0.0.1', 80)."""
    host, _, port = s.rpartition(":")
    return socket.inet_ntop(*_fam_pton(host.strip("[]"))), int(port)


def _fam_pton(h):
    if ":" in h:
        return socket.AF_INET6, socket.inet_pton(socket.AF_INET6, h)
    return socket.AF_INET, socket.inet_pton(socket.AF_INET, h)


def norm(addr):
    return socket.inet_ntop(*_fam_pton(addr))


def truth(conns_tsv, trace_file, pcap, out_tsv):
    from scapy.all import rdpcap, IP, IPv6, TCP  # noqa: E402

    conns = []
    with open(conns_tsv) as f:
        next(f)
        for line in f:
            scen, fam, src, sport, dst, dport = line.rstrip("\n").split("\t")
            conns.append((scen, fam, norm(src), int(sport), norm(dst),
                          int(dport)))
    # key: (client addr, client port, server addr, server port)
    by_tuple = {(c[2], c[3], c[4], c[5]): c for c in conns}
    if len(by_tuple) != len(conns):
        die("duplicate 4-tuples in connection list")

    # kernel reasons keyed by (rst src, sport, rst dst, dport); list per key
    reasons = {}
    have_trace = trace_file != "-"
    if have_trace:
        with open(trace_file) as f:
            for line in f:
                m = TRACE_RE.search(line)
                if not m:
                    continue
                s, d = split_addr(m.group(1)), split_addr(m.group(2))
                key = (s[0], s[1], d[0], d[1])
                reasons.setdefault(key, []).append(m.group(4))

    pkts = rdpcap(pcap)
    if pkts[0].__class__.__name__ != "Ether":
        die("capture is not Ethernet link type")
    rows = []
    syn_isn = {}
    for p in pkts:
        if IP in p:
            ip = p[IP]
        elif IPv6 in p:
            ip = p[IPv6]
        else:
            continue
        if TCP not in p:
            continue
        t = p[TCP]
        src, dst = norm(ip.src), norm(ip.dst)
        flags = int(t.flags)
        if flags & 0x02 and not flags & 0x10:        # SYN
            syn_isn[(src, t.sport, dst, t.dport)] = t.seq
        if not flags & 0x04:
            continue
        if PORT_FIN in (t.sport, t.dport):
            die("RST on port %d: %s" % (PORT_FIN, p.summary()))
        ckey = (dst, t.dport, src, t.sport)           # RST sent by server
        conn = by_tuple.get(ckey)
        if conn is None:
            die("RST not from a lab server to a lab client: %s" % p.summary())
        scen = conn[0]
        if scen not in RST_SCENARIOS or PORT_SCENARIO[t.sport] != scen:
            die("RST on unexpected connection %s: %s" % (scen, p.summary()))
        if not flags & 0x10:
            die("RST without ACK: %s" % p.summary())
        if scen == "port_closed":
            isn = syn_isn.get(ckey)
            if isn is None or t.ack != (isn + 1) % 2**32 or t.seq != 0:
                die("port_closed RST does not answer SYN: %s" % p.summary())
        key = (src, t.sport, dst, t.dport)
        if have_trace:
            lst = reasons.get(key)
            if not lst:
                die("no tcp_send_reset trace event for %s" % (key,))
            reason = lst.pop(0)
        else:
            reason = "-"
        rows.append((src, t.sport, dst, t.dport, scen, reason))

    # each RST scenario connection must have exactly one RST
    seen = {}
    for r in rows:
        seen[(r[2], r[3], r[0], r[1])] = seen.get((r[2], r[3], r[0], r[1]), 0) + 1
    for c in conns:
        n = seen.get((c[2], c[3], c[4], c[5]), 0)
        want = 1 if c[0] in RST_SCENARIOS else 0
        if n != want:
            die("%s connection %s:%d -> %s:%d has %d RSTs (want %d)"
                % (c[0], c[2], c[3], c[4], c[5], n, want))
    if have_trace:
        left = {k: v for k, v in reasons.items()
                if v and (k[0] in (SRV4, CLI4, norm(SRV6), norm(CLI6)))}
        if left:
            die("trace events without RST on the wire: %r" % left)

    with open(out_tsv, "w") as f:
        f.write("src\tsport\tdst\tdport\tcause\tkernel_reason\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")

    summary = {}
    for r in rows:
        summary.setdefault((r[4], r[5]), 0)
        summary[(r[4], r[5])] += 1
    per_scen = {}
    for c in conns:
        per_scen[c[0]] = per_scen.get(c[0], 0) + 1
    print("connections: " + ", ".join("%s=%d" % kv for kv in
                                       sorted(per_scen.items())))
    print("RSTs: %d total; " % len(rows) + ", ".join(
        "%s/%s=%d" % (k[0], k[1], v) for k, v in sorted(summary.items())))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "server" and len(sys.argv) == 3:
        server(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "client" and len(sys.argv) == 3:
        client(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "truth" and len(sys.argv) == 6:
        truth(*sys.argv[2:])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
