"""The scenarios: each provokes one RST cause with real Linux sockets (plus scapy where a
cause needs a segment no socket API makes), and the normal traffic mixed in.

Every instance runs on its own server port; PORT_BASE + 100 * cause_index + instance.
Both endpoints are driven from one thread where possible, step by step, so the order of
events is deterministic; waits poll a condition (socket state, a packet on the client tap)
with a deadline, and only sleep where the scenario is about time (idle gaps, timeouts).
"""

import errno
import random
import socket
import struct
import threading
import time
import traceback

import lab as L

CAUSES = [
    "port_closed", "middlebox_reject", "injected", "connect_timeout", "scan_probe",
    "listen_overflow", "unread_data_close", "linger_abort", "data_after_close",
    "orphan_abort", "idle_timeout", "keepalive_timeout", "retransmission_timeout",
    "stale_connection", "time_wait_reuse", "invalid_segment",
]
# scenarios whose outcome is not an RST: checked through rstmon's connection outcomes
# (`connections` in the report, rstmon_connections_total{outcome=...}); they follow CAUSES
# in the port numbering
NO_RST = ["handshake_timeout"]
SCENARIO_NAMES = CAUSES + NO_RST
PORT_BASE = 10000
MAX_INSTANCES = 50

# normal traffic ports
PORT_NORMAL_FIN = 8080
PORT_NORMAL_IDLE = 8081
PORT_NORMAL_KEEPALIVE = 8082
NORMAL_PORTS = (PORT_NORMAL_FIN, PORT_NORMAL_IDLE, PORT_NORMAL_KEEPALIVE)

# timing (seconds)
CT_ESTABLISHED_TIMEOUT = 3      # router conntrack timeout for the idle-timeout ports
IDLE_GAP = 5.0                  # idle_timeout: silence before the client speaks again
IDLE_THRESHOLD = "4s"           # rstmon thresholds.idle_threshold (1 s below the gap)
NORMAL_IDLE = 6.5               # healthy long-lived connections idle longer than IDLE_GAP
NORMAL_KEEPALIVE_IDLE = 5.0     # keepalive-answered connections idle this long
# rstmon flow_table.handshake_timeout. Longer than the longest SYN-only stretch of the RST
# scenarios: connect_timeout's SYN is answered by the late SYN-ACK ~3.05 s later (2.0 s after
# the retransmitted SYN); with a shorter timeout the live sweep expires those flows first
HANDSHAKE_TIMEOUT = 4.0
# handshake_timeout: the client's TCP_SYNCNT. The kernel gives up when the time that many
# exponentially backed-off retransmissions would take has passed, (2^(n+1)-1) s: 3 s for 1.
# Since 6.x the first tcp_syn_linear_timeouts (default 4) retransmissions are 1 s apart, so
# 1 gives SYNs at 0, 1, 2 s (older kernels: 0, 1 s)
HANDSHAKE_SYNCNT = 1

TRIGGER = "FORBIDDEN"
INJECT_THINK = 0.1
IO_TIMEOUT = 5.0

SO_MARK = getattr(socket, "SO_MARK", 36)
LINGER0 = struct.pack("ii", 1, 0)

_scapy_lock = threading.Lock()


def port_of(cause, i):
    return PORT_BASE + 100 * SCENARIO_NAMES.index(cause) + i


def port_map(instances):
    """server port -> cause, for every port any scenario may use."""
    m = {p: "normal" for p in NORMAL_PORTS}
    for c in SCENARIO_NAMES:
        for i in range(instances):
            m[port_of(c, i)] = c
    return m


class ScenarioError(Exception):
    pass


class Inst:
    def __init__(self, cause, i):
        self.cause = cause
        self.i = i
        self.port = port_of(cause, i)
        self.v6 = False
        self.notes = []

    @property
    def fam(self):
        return socket.AF_INET6 if self.v6 else socket.AF_INET

    @property
    def srv(self):
        return L.SRV6 if self.v6 else L.SRV4

    @property
    def cli(self):
        return L.CLI6 if self.v6 else L.CLI4

    def note(self, s):
        self.notes.append(s)

    def __repr__(self):
        return "%s#%d(port %d)" % (self.cause, self.i, self.port)


# --------------------------------------------------------------------------
# helpers

def request(path, extra=""):
    return ("GET /%s HTTP/1.1\r\nHost: lab\r\nUser-Agent: rs-scenarios\r\n%s\r\n"
            % (path, extra)).encode()


BODY = b"x" * 300 + b"\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
            % len(BODY)) + BODY


def recv_until(s, term, limit=1 << 20):
    buf = b""
    while term not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ScenarioError("EOF before %r (got %r)" % (term, buf[:80]))
        buf += chunk
        if len(buf) > limit:
            raise ScenarioError("no %r in %d bytes" % (term, len(buf)))
    return buf


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ScenarioError("EOF after %d/%d bytes" % (len(buf), n))
        buf += chunk
    return buf


def ioctl_int(s, req):
    import fcntl
    return struct.unpack("i", fcntl.ioctl(s.fileno(), req, struct.pack("i", 0)))[0]


def outq(s):
    return ioctl_int(s, 0x5411)     # SIOCOUTQ (TIOCOUTQ): not yet acked by the peer


def inq(s):
    return ioctl_int(s, 0x541B)     # SIOCINQ (FIONREAD): unread bytes


def exchange(c, s, path="req"):
    """Client request, server reads it and answers, client reads the answer; then waits
    until both directions are fully acknowledged (a quiet connection)."""
    req = request(path)
    c.sendall(req)
    got = recv_until(s, b"\r\n\r\n")
    if got != req:
        raise ScenarioError("server got %r" % got[:80])
    s.sendall(RESPONSE)
    if recv_exact(c, len(RESPONSE)) != RESPONSE:
        raise ScenarioError("bad response")
    quiet(c, s)


def quiet(*socks, timeout=3):
    L.wait_until(lambda: all(outq(x) == 0 for x in socks), timeout, "all data acked")


def expect_reset(s, timeout=IO_TIMEOUT):
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        return
    except socket.timeout:
        raise ScenarioError("no reset within %.1f s" % timeout)
    raise ScenarioError("expected a reset, got %r" % data[:80])


def wait_state(s, states, timeout, what=None):
    if isinstance(states, int):
        states = (states,)
    L.wait_until(lambda: L.tcp_state(s) in states, timeout,
                 what or "TCP state in %s (now %d)" % (states, L.tcp_state(s)))


def keepalive(s, idle=1, intvl=1, cnt=2):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)


def craft(l3src, l3dst, sport, dport, flags, seq, ack=0, options=None, payload=b"",
          window=64240):
    """Builds a TCP/IP packet with scapy; returns bytes."""
    from scapy.all import IP, IPv6, TCP, Raw  # noqa: F401
    with _scapy_lock:
        l3 = IPv6(src=l3src, dst=l3dst) if ":" in l3src else IP(src=l3src, dst=l3dst)
        t = TCP(sport=sport, dport=dport, flags=flags, seq=seq % 2**32, ack=ack % 2**32,
                window=window, options=options or [])
        pkt = l3 / t
        if payload:
            pkt = pkt / Raw(payload)
        return bytes(pkt)


class Ctx:
    """What scenarios share: the lab, the client-side tap, and the socket registry (every
    socket a scenario makes stays open until the capture has stopped)."""

    def __init__(self, lab, tap, log):
        self.lab = lab
        self.tap = tap
        self.log = log
        self._socks = []
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def sock(self, ns, fam=socket.AF_INET, type=socket.SOCK_STREAM, proto=0):
        s = ns.socket(fam, type, proto)
        with self._lock:
            self._socks.append(s)
        return s

    def listen(self, port, fam=socket.AF_INET, backlog=64, ns=None, ip=None):
        ns = ns or self.lab.srv
        s = self.sock(ns, fam)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((ip or (L.SRV6 if fam == socket.AF_INET6 else L.SRV4), port))
        s.listen(backlog)
        return s

    def client(self, fam=socket.AF_INET, bind_port=0, timeout=IO_TIMEOUT):
        c = self.sock(self.lab.cli, fam)
        c.settimeout(timeout)
        if bind_port:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind((L.CLI6 if fam == socket.AF_INET6 else L.CLI4, bind_port))
        return c

    def connect(self, inst_or_port, fam=socket.AF_INET, ip=None, bind_port=0):
        if isinstance(inst_or_port, Inst):
            port, fam, ip = inst_or_port.port, inst_or_port.fam, ip or inst_or_port.srv
        else:
            port = inst_or_port
        c = self.client(fam, bind_port)
        c.connect((ip or (L.SRV6 if fam == socket.AF_INET6 else L.SRV4), port))
        return c

    def pair(self, ls, inst, bind_port=0):
        c = self.connect(inst, bind_port=bind_port)
        ls.settimeout(IO_TIMEOUT)
        s, _ = ls.accept()
        s.settimeout(IO_TIMEOUT)
        with self._lock:
            self._socks.append(s)
        return c, s

    def raw(self, ns, v6=False, mark=None):
        s = self.sock(ns, socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                      socket.IPPROTO_RAW)
        if mark is not None:
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        return s

    def send_raw(self, ns, pkt_bytes, dst, mark=None):
        r = self.raw(ns, ":" in dst, mark)
        r.sendto(pkt_bytes, (dst, 0))
        r.close()

    def wait_pkt(self, pred, timeout, what):
        return self.tap.wait(pred, timeout, what)

    def close_all(self):
        """Abortive close of every socket still open (after the capture has stopped), so no
        orphan keeps a namespace alive."""
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                if s.fileno() != -1:
                    if s.type == socket.SOCK_STREAM:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
                    s.close()
            except OSError:
                pass


def is_rst(p):
    return bool(p.flags & 0x04)


def from_client(port, sport=None):
    return lambda p: p.dport == port and (sport is None or p.sport == sport) and \
        p.src in L.CLIENT_IPS


def from_server(port, dport=None):
    return lambda p: p.sport == port and (dport is None or p.dport == dport) and \
        p.src in L.SERVER_IPS


# --------------------------------------------------------------------------
# the causes


def expect_refused(ctx, inst, what):
    """connect() must fail with ECONNREFUSED (an RST answered the SYN)."""
    c = ctx.client(inst.fam)
    try:
        c.connect((inst.srv, inst.port))
    except ConnectionRefusedError:
        return
    raise ScenarioError(f"connect {what} succeeded")


def sc_port_closed(ctx, inst):
    inst.v6 = inst.i % 2 == 1
    expect_refused(ctx, inst, "to a closed port")


def sc_middlebox_reject(ctx, inst):
    lab = ctx.lab
    ls = ctx.listen(inst.port)            # the port is open: the router refuses for it
    if inst.i % 2 == 0:
        inst.note("router nft: tcp dport reject with tcp reset (SYN refused)")
        lab.set_add(lab.rtr, "mb", inst.port)
        expect_refused(ctx, inst, "through the rejecting router")
        return
    inst.note("router nft: payload 'BLOCKME' -> reject with tcp reset (mid-flow)")
    lab.set_add(lab.rtr, "mbstr", inst.port)
    c, s = ctx.pair(ls, inst)
    exchange(c, s, "allowed")
    c.sendall(b"BLOCKME /secret HTTP/1.1\r\nHost: lab\r\n\r\n")
    expect_reset(c)


def sc_injected(ctx, inst):
    ls = ctx.listen(inst.port)
    c, s = ctx.pair(ls, inst)
    if inst.i % 2 == 1:
        exchange(c, s, "before-trigger")
    c.sendall(request(TRIGGER + "-topic"))
    # The server reads the request, "thinks" for 100 ms (standing in for the distance that
    # lets a real injector win the race) and answers, unless a forged RST reset it first.
    try:
        recv_until(s, b"\r\n\r\n")
        time.sleep(INJECT_THINK)
        s.sendall(RESPONSE)
        inst.note("server survived and answered")
    except (ConnectionResetError, BrokenPipeError, ScenarioError):
        inst.note("server was reset before answering")
    expect_reset(c)
    try:
        wait_state(s, L.CLOSE, 1.5)
    except L.LabError:
        inst.note("server socket survived")


def sc_connect_timeout(ctx, inst):
    lab = ctx.lab
    ctx.listen(inst.port)
    lab.set_add(lab.rtr, "synack_hold", inst.port)   # SYN-ACKs held back on the path
    c = ctx.client(inst.fam)
    c.setblocking(False)
    cport = c.getsockname()[1]
    try:
        c.connect((inst.srv, inst.port))
    except BlockingIOError:
        pass
    ctx.wait_pkt(lambda p: from_client(inst.port, cport)(p) and p.flags & 0x02, 3, "SYN")
    if inst.i % 2 == 1:
        # a patient app gives up after its SYN was retransmitted once
        L.wait_until(lambda: len(ctx.tap.find(lambda p: from_client(inst.port, cport)(p)
                                              and p.flags & 0x02)) >= 2, 3, "SYN retransmit")
        time.sleep(0.2)
        c.close()                                        # SYN_SENT: silent
    else:
        t_syn = time.monotonic()
        time.sleep(0.3)                                  # app connect timeout of 300 ms
        c.close()                                        # SYN_SENT: silent
        # hold the SYN-ACK past its first retransmission, so it arrives ~2-3 s late
        time.sleep(max(0.0, t_syn + 1.3 - time.monotonic()))
    lab.set_del(lab.rtr, "synack_hold", inst.port)
    ctx.wait_pkt(lambda p: from_client(inst.port, cport)(p) and is_rst(p), 6,
                 "client RST to the late SYN-ACK")


def sc_scan_probe(ctx, inst):
    ctx.listen(inst.port)                                 # an open port being scanned
    sport = 21000 + inst.i
    isn = random.randrange(2**32)
    pkt = craft(L.CLI4, L.SRV4, sport, inst.port, "S", isn, window=1024,
                options=[("MSS", 1460)])
    ctx.send_raw(ctx.lab.cli, pkt, L.SRV4)
    ctx.wait_pkt(lambda p: from_client(inst.port, sport)(p) and is_rst(p), 3,
                 "client kernel RST to the SYN-ACK")


def sc_listen_overflow(ctx, inst):
    lab = ctx.lab
    ls = ctx.listen(inst.port, backlog=1)                 # never accept()ed
    # two victims complete the handshake while their final ACKs are dropped at the router
    # (seen on the SPAN, never reaching the server): their requests stay in SYN_RECV
    lab.set_add(lab.rtr, "ackhold", inst.port)
    victims = []
    for _ in range(2):
        v = ctx.client(inst.fam)
        v.setblocking(False)
        try:
            v.connect((inst.srv, inst.port))
        except BlockingIOError:
            pass
        victims.append(v)
    L.wait_until(lambda: all(L.tcp_state(v) == L.ESTABLISHED for v in victims), 0.8,
                 "victims established")
    lab.set_del(lab.rtr, "ackhold", inst.port)
    # two more clients fill the accept queue (backlog 1 holds 2)
    for _ in range(2):
        ctx.connect(inst)

    def queued():
        return sum(1 for r in lab.srv.proc_tcp() if r[1] == inst.port
                   and r[4] == L.ESTABLISHED)
    L.wait_until(lambda: queued() == 2, 0.8, "accept queue full")
    # victim 0 sends its request at once: the server answers it with RST
    # (tcp_abort_on_overflow); victim 1 stays silent until the server retransmits its SYN-ACK
    # (after 1 s): the kernel's duplicate ACK is what gets the RST
    for v in victims:
        v.setblocking(True)
    victims[0].sendall(request("victim"))
    expect_reset(victims[0], 2)
    expect_reset(victims[1], 4)
    del ls


def sc_unread_data_close(ctx, inst):
    ls = ctx.listen(inst.port)
    c, s = ctx.pair(ls, inst)
    if inst.i % 2 == 0:
        inst.note("server closes with a pipelined request unread")
        exchange(c, s, "one")
        c.sendall(request("two-never-read"))
        L.wait_until(lambda: inq(s) > 0, 3, "request 2 arrived")
        quiet(c)
        s.close()
        expect_reset(c)
    else:
        inst.note("client closes with the response unread")
        c.sendall(request("one"))
        recv_until(s, b"\r\n\r\n")
        s.sendall(RESPONSE)
        L.wait_until(lambda: inq(c) >= len(RESPONSE), 3, "response arrived")
        quiet(s)
        c.close()
        expect_reset(s)


def sc_linger_abort(ctx, inst):
    ls = ctx.listen(inst.port)
    c, s = ctx.pair(ls, inst)
    if inst.i % 4 == 1:
        inst.note("client health check: connect, then SO_LINGER {1,0} close (no payload)")
        quiet(c, s)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        c.close()
        expect_reset(s)
        return
    exchange(c, s, "linger")
    if inst.i % 4 == 3:
        inst.note("client: request, response, QUIT (read and acked), SO_LINGER {1,0} close")
        c.sendall(b"QUIT\r\n")
        if recv_exact(s, 6) != b"QUIT\r\n":
            raise ScenarioError("server did not get QUIT")
        quiet(c)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        c.close()
        expect_reset(s)
        return
    inst.note("server answers, then SO_LINGER {1,0} close")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    s.close()
    expect_reset(c)


def sc_data_after_close(ctx, inst):
    lab = ctx.lab
    ls = ctx.listen(inst.port)
    c, s = ctx.pair(ls, inst)
    exchange(c, s, "first")
    cport = c.getsockname()[1]
    if inst.i % 2 == 1:
        inst.note("server TCP_LINGER2=120: stays a full FIN_WAIT2 socket")
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, 120)
    else:
        inst.note("server plain close: orphan FIN_WAIT2 becomes a timewait socket")
    s.close()                                              # FIN
    c.settimeout(3)
    if c.recv(100) != b"":
        raise ScenarioError("expected EOF")
    L.wait_until(lambda: any(r[1] == inst.port and r[3] == cport and r[4] == L.FIN_WAIT2
                             for r in lab.srv.proc_tcp()), 3, "server in FIN_WAIT2")
    c.sendall(request("after-close"))                      # the client keeps talking
    wait_state(c, L.CLOSE, 3)


def sc_orphan_abort(ctx, inst):
    ls = ctx.listen(inst.port)
    c, s = ctx.pair(ls, inst)
    exchange(c, s, "orphan")
    if inst.i % 2 == 0:
        inst.note("server shutdown(WR), FIN_WAIT2, TCP_LINGER2=-1, close()")
        s.shutdown(socket.SHUT_WR)
        wait_state(s, L.FIN_WAIT2, 3)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1)
        s.close()
    else:
        inst.note("server TCP_LINGER2=-1, close(): killed when the FIN is acked")
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1)
        s.close()
    wait_state(c, L.CLOSE, 3)


def sc_idle_timeout(ctx, inst):
    lab = ctx.lab
    lab.set_add(lab.rtr, "idle", inst.port)               # tracked by the router's conntrack
    ls = ctx.listen(inst.port)
    c, s = ctx.pair(ls, inst)
    exchange(c, s, "before-idle")
    time.sleep(IDLE_GAP)                                   # the conntrack entry expires
    c.sendall(request("after-idle"))
    expect_reset(c)


def sc_keepalive_timeout(ctx, inst):
    lab = ctx.lab
    ls = ctx.listen(inst.port)
    c, s = ctx.pair(ls, inst)
    x = c if inst.i % 2 == 0 else s
    keepalive(x, 1, 1, 2)
    exchange(c, s, "keepalive")
    if x is c:
        inst.note("client keepalive; server blackholed at the router")
        lab.set_add(lab.rtr, "bh", inst.port)
    else:
        inst.note("server keepalive; client blackholed at the client")
        lab.set_add(lab.cli, "in_drop", inst.port)
    wait_state(x, L.CLOSE, 8)


def sc_retransmission_timeout(ctx, inst):
    lab = ctx.lab
    ls = ctx.listen(inst.port)
    c, s = ctx.pair(ls, inst)
    exchange(c, s, "retrans")
    if inst.i % 2 == 0:
        inst.note("client TCP_USER_TIMEOUT=1000 gives up; server blackholed at the router")
        cport = c.getsockname()[1]
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
        lab.set_add(lab.rtr, "bh", inst.port)
        c.sendall(request("lost"))
        wait_state(c, L.CLOSE, 6)
        lab.set_del(lab.rtr, "bh", inst.port)
        s.sendall(b"server speaks again\n")
        ctx.wait_pkt(lambda p: from_client(inst.port, cport)(p) and is_rst(p), 3,
                     "client RST")
    else:
        inst.note("server TCP_USER_TIMEOUT=1000 gives up; client blackholed at the client")
        cport = c.getsockname()[1]
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
        lab.set_add(lab.cli, "in_drop", inst.port)
        s.sendall(b"server push that is never acked\n")
        wait_state(s, L.CLOSE, 6)
        lab.set_del(lab.cli, "in_drop", inst.port)
        c.sendall(request("client speaks again"))
        ctx.wait_pkt(lambda p: from_server(inst.port, cport)(p) and is_rst(p), 3,
                     "server RST")


def sc_time_wait_reuse(ctx, inst):
    lab = ctx.lab
    ls = ctx.listen(inst.port)
    cport = 23000 + inst.i
    c, s = ctx.pair(ls, inst, bind_port=cport)
    exchange(c, s, "first")
    s.close()                                               # server closes first
    if c.recv(100) != b"":
        raise ScenarioError("expected EOF")
    c.close()                                               # client: LAST_ACK -> CLOSED
    L.wait_until(lambda: not any(r[1] == cport for r in lab.cli.proc_tcp()), 3,
                 "client socket gone")
    L.wait_until(lambda: any(r[1] == inst.port and r[3] == cport and r[4] == L.TIME_WAIT
                             for r in lab.srv.proc_tcp()), 3, "server in TIME_WAIT")
    fin = ctx.wait_pkt(lambda p: from_client(inst.port, cport)(p) and p.flags & 0x01, 2,
                       "client FIN")
    rcv_nxt = fin.seq + 1
    isn = (rcv_nxt - random.randrange(100000, 1000000)) % 2**32     # lower ISN
    inst.note("SYN with ISN %d below the TIME_WAIT rcv_nxt %d" % (isn, rcv_nxt))
    t0 = time.time()
    ctx.send_raw(lab.cli, craft(L.CLI4, L.SRV4, cport, inst.port, "S", isn,
                                options=[("MSS", 1460)]), L.SRV4)
    ctx.wait_pkt(lambda p: from_client(inst.port, cport)(p) and is_rst(p) and p.ts >= t0 - 1,
                 3, "client RST to the TIME_WAIT ACK")
    # the client tries again (the RST killed the TIME_WAIT socket): a normal connection
    c2 = ctx.client(bind_port=cport)
    c2.connect((L.SRV4, inst.port))
    s2, _ = ls.accept()
    s2.settimeout(IO_TIMEOUT)
    exchange(c2, s2, "second")
    c2.close()
    if s2.recv(100) != b"":
        raise ScenarioError("expected EOF")
    s2.close()


def sc_invalid_segment(ctx, inst):
    lab = ctx.lab
    kind = inst.i % 5
    ls = ctx.listen(inst.port)
    if kind in (0, 2, 4):
        # client in SYN_SENT (the real SYN-ACK is held back at the server); a crafted
        # segment from the server's namespace is answered by the client kernel with RST
        lab.set_add(lab.srv, "synack_drop", inst.port)
        c = ctx.client()
        c.setblocking(False)
        cport = c.getsockname()[1]
        try:
            c.connect((L.SRV4, inst.port))
        except BlockingIOError:
            pass
        syn = ctx.wait_pkt(lambda p: from_client(inst.port, cport)(p) and p.flags & 0x02, 3,
                           "client SYN")
        sisn = random.randrange(2**32)
        if kind == 0:
            inst.note("SYN-ACK with an ack outside the client's sent range")
            pkt = craft(L.SRV4, L.CLI4, inst.port, cport, "SA", sisn,
                        ack=syn.seq + 1 + random.randrange(10**6, 10**8),
                        options=[("MSS", 1460)])
        elif kind == 2:
            inst.note("SYN-ACK with a valid ack but a timestamp echo from the past (PAWS)")
            pkt = craft(L.SRV4, L.CLI4, inst.port, cport, "SA", sisn, ack=syn.seq + 1,
                        options=[("MSS", 1460), ("SAckOK", b""),
                                 ("Timestamp", (12345, (syn.tsval - 500000) % 2**32)),
                                 ("NOP", None), ("WScale", 7)])
        else:
            inst.note("bare ACK with an ack outside the client's sent range")
            pkt = craft(L.SRV4, L.CLI4, inst.port, cport, "A", sisn,
                        ack=syn.seq + 1 + random.randrange(10**6, 10**8))
        t0 = time.time()
        ctx.send_raw(lab.srv, pkt, L.CLI4, mark=L.PASS_MARK)
        ctx.wait_pkt(lambda p: from_client(inst.port, cport)(p) and is_rst(p) and
                     p.ts >= t0 - 1, 3, "client RST to the crafted segment")
        # then the real handshake completes (SYN retransmitted after 1 s) and the
        # connection is used and closed normally
        lab.set_del(lab.srv, "synack_drop", inst.port)
        c.setblocking(True)
        wait_state(c, L.ESTABLISHED, 4)
        c.settimeout(IO_TIMEOUT)
        ls.settimeout(IO_TIMEOUT)
        s, _ = ls.accept()
        with ctx._lock:
            ctx._socks.append(s)
        s.settimeout(IO_TIMEOUT)
        exchange(c, s, "after-invalid")
        c.close()
        if s.recv(100) != b"":
            raise ScenarioError("expected EOF")
        s.close()
        return
    # server half-open: a scapy SYN from the client namespace (the client kernel's RST to
    # the SYN-ACK is dropped at the client), then a crafted segment into the SYN_RECV state
    sport = 22000 + inst.i
    lab.set_add(lab.cli, "rst_drop", inst.port)
    isn = random.randrange(2**32)
    ctx.send_raw(lab.cli, craft(L.CLI4, L.SRV4, sport, inst.port, "S", isn,
                                options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]),
                 L.SRV4)
    synack = ctx.wait_pkt(lambda p: from_server(inst.port, sport)(p) and p.flags & 0x12 == 0x12,
                          3, "SYN-ACK")
    if kind == 1:
        inst.note("in-window SYN into the server's SYN_RECV")
        pkt = craft(L.CLI4, L.SRV4, sport, inst.port, "S", isn + 1)
    else:
        inst.note("ACK with an ack outside the server's sent range into SYN_RECV")
        pkt = craft(L.CLI4, L.SRV4, sport, inst.port, "A", isn + 1,
                    ack=synack.seq + 1 + random.randrange(10**6, 10**8))
    t0 = time.time()
    ctx.send_raw(lab.cli, pkt, L.SRV4)
    ctx.wait_pkt(lambda p: from_server(inst.port, sport)(p) and is_rst(p) and p.ts >= t0 - 1,
                 3, "server RST to the crafted segment")


def group_stale_connection(ctx, insts):
    """All instances share the stale server namespace: connect, exchange, then the server
    namespace is destroyed (link first, so its sockets vanish without a word) and re-created
    with the same address; every client then speaks and gets an RST from the new kernel."""
    lab = ctx.lab
    pairs = []
    for inst in insts:
        ls = ctx.listen(inst.port, ns=lab.stl, ip=L.STL4)
        c = ctx.connect(inst.port, ip=L.STL4)
        ls.settimeout(IO_TIMEOUT)
        s, _ = ls.accept()
        s.settimeout(IO_TIMEOUT)
        for k in range(1 + inst.i % 2):
            exchange(c, s, "stale-%d" % k)
        pairs.append((inst, ls, c, s))
    time.sleep(0.3)                                         # a quiet moment before the crash
    lab.rtr.run(["ip", "link", "del", "r2"])               # the server is gone from the wire
    for _inst, ls, _c, s in pairs:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.close()
        ls.close()
    lab.stl.delete()
    L.wait_until(lambda: not lab.stl.exists(), 3, "stale namespace deleted")
    lab.make_stale_ns()                                     # rebooted, same address
    for inst, _ls, _c, _s in pairs:
        if inst.i % 2 == 1:
            inst.note("service listening again after the restart")
            ctx.listen(inst.port, ns=lab.stl, ip=L.STL4)
        else:
            inst.note("nothing listening after the restart")
    for inst, _ls, c, _s in pairs:
        cport = c.getsockname()[1]
        c.sendall(request("anyone-there"))
        ctx.wait_pkt(lambda p: from_server(inst.port, cport)(p) and is_rst(p), 4,
                     "RST from the restarted server")


# --------------------------------------------------------------------------
# outcomes without an RST


def listen_backlog(ns, port, v6=False):
    """Connections waiting in the accept queue of the listener on port (the rx_queue column of
    /proc/net/tcp{,6} is sk_ack_backlog for a listening socket); None if none listens."""
    with ns.enter():
        with open("/proc/thread-self/net/tcp6" if v6 else "/proc/thread-self/net/tcp") as f:
            lines = f.read().splitlines()[1:]
    for ln in lines:
        parts = ln.split()
        if int(parts[1].split(":")[1], 16) == port and int(parts[3], 16) == L.LISTEN:
            return int(parts[4].split(":")[1], 16)
    return None


def sc_handshake_timeout(ctx, inst):
    """The SYN backlog is full: the listener drops the SYN silently, the client retransmits it
    and gives up (TCP_SYNCNT, ETIMEDOUT). Nothing is ever answered, no RST: rstmon
    must end the flow as handshake_timeout. The accept queue (listen backlog 0, which holds
    one connection) is filled by a connection made inside the server namespace, over lo, so
    the SPAN only ever sees the client's SYNs."""
    lab = ctx.lab
    inst.v6 = inst.i % 2 == 1
    ctx.listen(inst.port, inst.fam, backlog=0)             # never accept()ed
    filler = ctx.sock(lab.srv, inst.fam)
    filler.settimeout(IO_TIMEOUT)
    filler.connect((inst.srv, inst.port))
    L.wait_until(lambda: listen_backlog(lab.srv, inst.port, inst.v6) == 1, 2,
                 "accept queue full (1 connection > backlog 0)")
    c = ctx.client(inst.fam)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, HANDSHAKE_SYNCNT)
    c.setblocking(False)
    cport = c.getsockname()[1]
    try:
        c.connect((inst.srv, inst.port))
    except BlockingIOError:
        pass
    # SYNs at 0, 1, 2 s; the kernel gives up at 3 s without a word
    wait_state(c, L.CLOSE, 2 ** (HANDSHAKE_SYNCNT + 1) + 3, "client gave up")
    err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err != errno.ETIMEDOUT:
        raise ScenarioError("connect ended with %s, expected ETIMEDOUT" % errno.errorcode.get(
            err, err))
    if listen_backlog(lab.srv, inst.port, inst.v6) != 1:
        raise ScenarioError("accept queue no longer full")
    mine = ctx.tap.find(lambda p: inst.port in (p.sport, p.dport))
    syns = [p for p in mine if from_client(inst.port, cport)(p) and p.flags & 0x17 == 0x02]
    if len(syns) < 1 + HANDSHAKE_SYNCNT or len(mine) != len(syns):
        raise ScenarioError("expected >= %d SYNs and nothing else on the port, saw: %s" % (
            1 + HANDSHAKE_SYNCNT, mine))
    inst.note("accept queue full (backlog 0, filled over lo); %d SYNs dropped, ETIMEDOUT after "
              "%.1f s" % (len(syns), time.time() - syns[0].ts))
    # rstmon ends the flow HANDSHAKE_TIMEOUT after its last SYN: stay until then, so the
    # normal traffic (which runs until every scenario has returned) drives the capture past it
    time.sleep(max(0.0, syns[-1].ts + HANDSHAKE_TIMEOUT + 1.0 - time.time()))


SCENARIOS = {c: globals()["sc_" + c] for c in SCENARIO_NAMES if "sc_" + c in globals()}
GROUPS = {"stale_connection": group_stale_connection}


# --------------------------------------------------------------------------
# normal traffic

class NormalTraffic:
    """FIN-closed request/response connections (IPv4 and IPv6, client- or server-initiated
    close), long-lived connections idle longer than IDLE_GAP, and connections whose
    keepalive probes are answered. None of it may produce an RST."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.errors = []
        self.threads = []
        self.count = {"fin": 0, "idle": 0, "keepalive": 0}
        self._lock = threading.Lock()

    def setup(self):
        ctx = self.ctx
        self.listeners = []
        for fam in (socket.AF_INET, socket.AF_INET6):
            for port in NORMAL_PORTS:
                ls = ctx.listen(port, fam, backlog=128)
                if port == PORT_NORMAL_KEEPALIVE:
                    keepalive(ls, 1, 1, 2)          # inherited: the server probes too
                self.listeners.append(ls)

    def ready(self):
        """Polls until the normal service answers over IPv4 and IPv6."""
        for fam in (socket.AF_INET, socket.AF_INET6):
            self._one(fam, "probe", 1, server_close=False)

    def _serve_conn(self, s):
        try:
            s.settimeout(30)
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\r\n\r\n" in buf:
                    req, buf = buf.split(b"\r\n\r\n", 1)
                    s.sendall(RESPONSE)
                    if b"Connection: close" in req:
                        s.shutdown(socket.SHUT_WR)
                        while s.recv(65536):
                            pass
                        s.close()
                        return
            s.close()
        except Exception as e:  # noqa: BLE001
            self._err("normal server: %r" % e)

    def _accept_loop(self, ls):
        import select
        ls.setblocking(False)
        while not self.ctx.stop.is_set():
            try:
                r, _, _ = select.select([ls], [], [], 0.1)
                if not r:
                    continue
                s, _ = ls.accept()
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                if self.ctx.stop.is_set():
                    return
                raise
            s.setblocking(True)
            with self.ctx._lock:
                self.ctx._socks.append(s)
            t = threading.Thread(target=self._serve_conn, args=(s,), daemon=True)
            t.start()

    def _err(self, msg):
        with self._lock:
            self.errors.append(msg)

    def _one(self, fam, path, nreq, server_close, idle=0.0, ka=False, kind="fin"):
        c = self.ctx.client(fam, timeout=30)
        if ka:
            keepalive(c, 1, 1, 2)
        c.connect((L.SRV6 if fam == socket.AF_INET6 else L.SRV4,
                   {"fin": PORT_NORMAL_FIN, "idle": PORT_NORMAL_IDLE,
                    "keepalive": PORT_NORMAL_KEEPALIVE}[kind]))
        for k in range(nreq):
            last = k == nreq - 1
            if k > 0 and idle:
                time.sleep(idle)
            c.sendall(request("%s-%d" % (path, k),
                              "Connection: close\r\n" if last and server_close else ""))
            if recv_exact(c, len(RESPONSE)) != RESPONSE:
                raise ScenarioError("bad normal response")
        if server_close:
            if c.recv(100) != b"":
                raise ScenarioError("expected EOF from the normal server")
        c.close()
        with self._lock:
            self.count[kind] += 1

    def start(self):
        for ls in self.listeners:
            t = threading.Thread(target=self._accept_loop, args=(ls,), daemon=True)
            t.start()

    def start_clients(self):
        def fin_worker(w):
            k = 0
            while not self.ctx.stop.is_set():
                fam = socket.AF_INET6 if (k + w) % 3 == 0 else socket.AF_INET
                try:
                    self._one(fam, "fin-%d-%d" % (w, k), 1 + k % 3, server_close=k % 2 == 0)
                except Exception as e:  # noqa: BLE001
                    self._err("normal fin client: %r" % e)
                    return
                k += 1
                self.ctx.stop.wait(random.uniform(0.05, 0.15))

        def long_lived(kind, fam, idle, ka, n):
            try:
                self._one(fam, kind, 2, server_close=n % 2 == 0, idle=idle, ka=ka, kind=kind)
            except Exception as e:  # noqa: BLE001
                self._err("normal %s client: %r" % (kind, e))

        self.threads = [threading.Thread(target=fin_worker, args=(w,), daemon=True)
                        for w in range(2)]
        self.long = []
        for n in range(3):
            self.long.append(threading.Thread(
                target=long_lived, daemon=True,
                args=("idle", socket.AF_INET6 if n == 2 else socket.AF_INET, NORMAL_IDLE,
                      False, n)))
        for n in range(2):
            self.long.append(threading.Thread(
                target=long_lived, daemon=True,
                args=("keepalive", socket.AF_INET, NORMAL_KEEPALIVE_IDLE, True, n)))
        for t in self.threads + self.long:
            t.start()

    def join_long(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.long:
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                self._err("a long-lived normal connection did not finish")

    def stop_clients(self):
        self.ctx.stop.set()
        for t in self.threads:
            t.join(10)


def run_instance(ctx, inst, delay, results):
    t0 = time.monotonic()
    try:
        time.sleep(delay)
        SCENARIOS[inst.cause](ctx, inst)
        results[inst] = None
    except Exception as e:  # noqa: BLE001
        results[inst] = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
    inst.elapsed = time.monotonic() - t0


def run_group(ctx, cause, insts, delay, results):
    try:
        time.sleep(delay)
        GROUPS[cause](ctx, insts)
        for inst in insts:
            results[inst] = None
    except Exception as e:  # noqa: BLE001
        for inst in insts:
            results[inst] = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
