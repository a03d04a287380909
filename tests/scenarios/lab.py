"""Network-namespace lab for the rstmon scenario suite.

Topology (one set per run; names carry the runner's PID so two runs never collide):

    rs-cli-P            rs-rtr-P                         rs-srv-P
    c0 10.77.1.2 ---- r0 10.77.1.1   r1 10.77.2.1 ---- s0 10.77.2.2
       fd77:1::2         fd77:1::1      fd77:2::1         fd77:2::2
                      r2 10.77.3.1 --------------------- t0 10.77.3.2   rs-stl-P
                      sp0 (SPAN)                                         (stale server,
                        |                                                 destroyed and
    root ns:          rsspP  <- rstmon (net_af_packet) and tcpdump        re-created)

r0 (the router's client-facing interface) is mirrored both ways into sp0 with
tc clsact + u32 + mirred; sp0's peer rsspP lives in the root namespace.

Sockets are made in-process: a thread enters a namespace with setns(2) (which
only affects the calling thread), creates the socket and returns; the socket
stays in the namespace it was created in.
"""

import contextlib
import ctypes
import os
import select
import socket
import struct
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

CLI4, CLI6 = "10.77.1.2", "fd77:1::2"
RTR_C4, RTR_C6 = "10.77.1.1", "fd77:1::1"
RTR_S4, RTR_S6 = "10.77.2.1", "fd77:2::1"
SRV4, SRV6 = "10.77.2.2", "fd77:2::2"
RTR_T4 = "10.77.3.1"
STL4 = "10.77.3.2"
SERVER_IPS = (SRV4, SRV6, STL4)
CLIENT_IPS = (CLI4, CLI6)

OFFLOADS = ["tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"]

# packets marked with this (SO_MARK) pass the lab's own "hold back SYN-ACK" rules
PASS_MARK = 0x77

TCP_INFO = 11


class LabError(Exception):
    pass


def sh(args, ns=None, check=True, input=None, timeout=30):
    """Runs a command (inside namespace ns if given); returns CompletedProcess."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise LabError("command failed (%d): %s\n%s%s" % (p.returncode, " ".join(cmd),
                                                          p.stdout, p.stderr))
    return p


def read_sysctl(key, ns=None):
    return sh(["sysctl", "-n", key], ns=ns).stdout.strip()


class Netns:
    """A named network namespace (ip netns)."""

    def __init__(self, name):
        self.name = name

    def create(self):
        sh(["ip", "netns", "add", self.name])

    def delete(self):
        sh(["ip", "netns", "del", self.name], check=False)

    def exists(self):
        return os.path.exists("/run/netns/" + self.name)

    @contextlib.contextmanager
    def enter(self):
        """Moves the calling thread (only) into this namespace for the with-block."""
        orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, "setns(%s): %s" % (self.name, os.strerror(e)))
            finally:
                os.close(fd)
            try:
                yield self
            finally:
                if _libc.setns(orig, CLONE_NEWNET) != 0:  # pragma: no cover - fatal
                    os._exit(99)
        finally:
            os.close(orig)

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0):
        with self.enter():
            return socket.socket(family, type, proto)

    def run(self, args, **kw):
        return sh(args, ns=self.name, **kw)

    def sysctl(self, key, value):
        self.run(["sysctl", "-qw", "%s=%s" % (key, value)])

    def nft(self, script):
        self.run(["nft", "-f", "-"], input=script)

    def proc_tcp(self, v6=False):
        """Rows of /proc/net/tcp{,6} of this namespace: (laddr, lport, raddr, rport, state)."""
        with self.enter():
            with open("/proc/thread-self/net/tcp6" if v6 else "/proc/thread-self/net/tcp") as f:
                lines = f.read().splitlines()[1:]
        out = []
        for ln in lines:
            parts = ln.split()
            la, lp = parts[1].split(":")
            ra, rp = parts[2].split(":")
            out.append((_proc_addr(la), int(lp, 16), _proc_addr(ra), int(rp, 16),
                        int(parts[3], 16)))
        return out


def _proc_addr(h):
    b = bytes.fromhex(h)
    if len(b) == 4:
        return socket.inet_ntop(socket.AF_INET, b[::-1])
    words = [b[i:i + 4][::-1] for i in range(0, 16, 4)]
    return socket.inet_ntop(socket.AF_INET6, b"".join(words))


# TCP states as in include/net/tcp_states.h
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, \
    LAST_ACK, LISTEN, CLOSING = range(1, 12)


def tcp_state(sock):
    """Kernel TCP state of a socket (tcp_info.tcpi_state)."""
    return sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 8)[0]


def wait_until(pred, timeout, what, step=0.005):
    """Polls pred() until truthy; returns its value or raises LabError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise LabError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(step)


# --------------------------------------------------------------------------
# packet parsing (Ethernet / IPv4 / IPv6 / TCP), shared by the tap and the truth step

class Pkt:
    __slots__ = ("ts", "src", "dst", "sport", "dport", "flags", "seq", "ack", "win", "plen",
                 "ttl", "tsval", "tsecr", "payload", "outgoing", "v6")

    def key(self):
        return (self.src, self.sport, self.dst, self.dport)

    def flagstr(self):
        s = ""
        for bit, ch in ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "."),
                        (0x20, "U")):
            if self.flags & bit:
                s += ch
        return s or "none"

    def __repr__(self):
        return "%.6f %s:%d > %s:%d [%s] seq %d ack %d len %d ttl %d" % (
            self.ts, self.src, self.sport, self.dst, self.dport, self.flagstr(), self.seq,
            self.ack, self.plen, self.ttl)


def parse_frame(data, ts=0.0, keep_payload=False):
    """Parses an Ethernet frame; returns Pkt for TCP over IPv4/IPv6, else None."""
    if len(data) < 14:
        return None
    et = struct.unpack_from("!H", data, 12)[0]
    off = 14
    while et in (0x8100, 0x88A8) and len(data) >= off + 4:
        et = struct.unpack_from("!H", data, off + 2)[0]
        off += 4
    return parse_ip(data, off, et, ts, keep_payload)


def parse_ip(data, off, et, ts=0.0, keep_payload=False):
    p = Pkt()
    p.ts = ts
    p.outgoing = False
    if et == 0x0800:
        if len(data) < off + 20:
            return None
        vihl = data[off]
        ihl = (vihl & 15) * 4
        if data[off + 9] != 6:
            return None
        tot = struct.unpack_from("!H", data, off + 2)[0]
        p.ttl = data[off + 8]
        p.src = socket.inet_ntop(socket.AF_INET, data[off + 12:off + 16])
        p.dst = socket.inet_ntop(socket.AF_INET, data[off + 16:off + 20])
        p.v6 = False
        l4 = off + ihl
        end = off + tot
    elif et == 0x86DD:
        if len(data) < off + 40 or data[off + 6] != 6:
            return None
        plen = struct.unpack_from("!H", data, off + 4)[0]
        p.ttl = data[off + 7]
        p.src = socket.inet_ntop(socket.AF_INET6, data[off + 8:off + 24])
        p.dst = socket.inet_ntop(socket.AF_INET6, data[off + 24:off + 40])
        p.v6 = True
        l4 = off + 40
        end = l4 + plen
    else:
        return None
    if len(data) < l4 + 20:
        return None
    p.sport, p.dport, p.seq, p.ack, doff, p.flags, p.win = struct.unpack_from(
        "!HHIIBBH", data, l4)
    hl = (doff >> 4) * 4
    p.plen = max(0, min(end, len(data)) - (l4 + hl))
    p.tsval = p.tsecr = None
    i = l4 + 20
    while i < l4 + hl:
        kind = data[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(data):
            break
        ln = data[i + 1]
        if ln < 2:
            break
        if kind == 8 and ln == 10:
            p.tsval, p.tsecr = struct.unpack_from("!II", data, i + 2)
        i += ln
    p.payload = bytes(data[l4 + hl:min(end, len(data))]) if keep_payload else b""
    return p


def read_pcap(path):
    """Reads a classic pcap (Ethernet); returns (list of Pkt for TCP frames, total frames)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 24:
        raise LabError("%s: not a pcap (%d bytes)" % (path, len(blob)))
    magic = struct.unpack("<I", blob[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    else:
        e = ">"
        magic = struct.unpack(">I", blob[:4])[0]
    ns = magic == 0xA1B23C4D
    linktype = struct.unpack(e + "I", blob[20:24])[0] & 0xFFFF
    if linktype != 1:
        raise LabError("%s: link type %d, want Ethernet" % (path, linktype))
    off = 24
    out = []
    n = 0
    while off + 16 <= len(blob):
        sec, frac, incl, _orig = struct.unpack_from(e + "IIII", blob, off)
        off += 16
        data = blob[off:off + incl]
        off += incl
        n += 1
        p = parse_frame(data, sec + frac / (1e9 if ns else 1e6))
        if p is not None:
            out.append(p)
    return out, n


class Tap:
    """Background AF_PACKET listener on one interface of a namespace. Records every TCP
    packet (both directions) so scenarios can wait for a packet and read its seq/ack."""

    def __init__(self, ns, iface):
        self.sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((iface, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.pkts = []
        self.cv = threading.Condition()
        self.stop_flag = False
        self.thread = threading.Thread(target=self._loop, name="tap-" + iface, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop_flag:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            p = parse_frame(data, time.time(), keep_payload=True)
            if p is None:
                continue
            p.outgoing = addr[2] == socket.PACKET_OUTGOING
            with self.cv:
                self.pkts.append(p)
                self.cv.notify_all()

    def find(self, pred):
        with self.cv:
            return [p for p in self.pkts if pred(p)]

    def wait(self, pred, timeout, what="packet"):
        """Returns the first recorded packet matching pred, waiting up to timeout."""
        deadline = time.monotonic() + timeout
        with self.cv:
            idx = 0
            while True:
                while idx < len(self.pkts):
                    if pred(self.pkts[idx]):
                        return self.pkts[idx]
                    idx += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabError("tap: no %s within %.1f s" % (what, timeout))
                self.cv.wait(min(left, 0.1))

    def wait_quiet(self, quiet, timeout):
        """Waits until no packet has been seen for `quiet` seconds (at most `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cv:
                last = self.pkts[-1].ts if self.pkts else 0.0
            if time.time() - last >= quiet:
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self.stop_flag = True
        self.thread.join(timeout=2)
        self.sock.close()


# --------------------------------------------------------------------------
# the lab


class Lab:
    """Builds and tears down the namespaces, links, mirror and firewall sets."""

    def __init__(self, tag, log, mirror_r1=False):
        self.tag = tag
        self.log = log
        # Also mirror r1 (the server-facing side) into sp0: every routed frame is then seen
        # twice, TTL one apart, as a SPAN of two interfaces along the path delivers it.
        self.mirror_r1 = mirror_r1
        self.cli = Netns("rs-cli-%s" % tag)
        self.rtr = Netns("rs-rtr-%s" % tag)
        self.srv = Netns("rs-srv-%s" % tag)
        self.stl = Netns("rs-stl-%s" % tag)
        self.span = "rssp%s" % tag
        assert len(self.span) <= 15
        self._nft_lock = threading.Lock()
        self.up_done = False

    # ---- building ---------------------------------------------------------

    def up(self):
        for ns in (self.cli, self.rtr, self.srv, self.stl):
            if ns.exists():
                raise LabError("namespace %s already exists" % ns.name)
        for ns in (self.cli, self.rtr, self.srv):
            ns.create()
        sh(["ip", "link", "add", "c0", "netns", self.cli.name, "type", "veth", "peer", "name",
            "r0", "netns", self.rtr.name])
        sh(["ip", "link", "add", "s0", "netns", self.srv.name, "type", "veth", "peer", "name",
            "r1", "netns", self.rtr.name])
        sh(["ip", "link", "add", "sp0", "netns", self.rtr.name, "type", "veth", "peer", "name",
            self.span])
        # the root-namespace end of the SPAN: no addresses, no IPv6 chatter, offloads off
        with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % self.span, "w") as f:
            f.write("1")
        sh(["ethtool", "-K", self.span] + OFFLOADS)
        sh(["ip", "link", "set", self.span, "up"])

        for ns in (self.cli, self.rtr, self.srv):
            ns.run(["ip", "link", "set", "lo", "up"])
            ns.sysctl("net.ipv6.conf.all.accept_dad", 0)
            ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        self.rtr.sysctl("net.ipv4.ip_forward", 1)
        self.rtr.sysctl("net.ipv6.conf.all.forwarding", 1)
        self.rtr.sysctl("net.ipv6.conf.sp0.disable_ipv6", 1)
        self.rtr.run(["ethtool", "-K", "sp0"] + OFFLOADS)
        self.rtr.run(["ip", "link", "set", "sp0", "up"])

        self._iface(self.cli, "c0", [CLI4 + "/24"], [CLI6 + "/64"])
        self._iface(self.rtr, "r0", [RTR_C4 + "/24"], [RTR_C6 + "/64"])
        self._iface(self.rtr, "r1", [RTR_S4 + "/24"], [RTR_S6 + "/64"])
        self._iface(self.srv, "s0", [SRV4 + "/24"], [SRV6 + "/64"])
        self.cli.run(["ip", "route", "add", "default", "via", RTR_C4])
        self.cli.run(["ip", "-6", "route", "add", "default", "via", RTR_C6])
        self.srv.run(["ip", "route", "add", "default", "via", RTR_S4])
        self.srv.run(["ip", "-6", "route", "add", "default", "via", RTR_S6])
        self.make_stale_ns()

        # SPAN: everything that crosses r0 (and r1, if asked), both ways, is copied to sp0
        for dev in ("r0", "r1") if self.mirror_r1 else ("r0",):
            self.rtr.run(["tc", "qdisc", "add", "dev", dev, "clsact"])
            for d in ("ingress", "egress"):
                self.rtr.run(["tc", "filter", "add", "dev", dev, d, "protocol", "all", "prio",
                              "1", "u32", "match", "u32", "0", "0", "action", "mirred",
                              "egress", "mirror", "dev", "sp0"])
        self._firewalls()
        self.up_done = True
        self.wait_links()

    def _iface(self, ns, dev, v4, v6):
        ns.run(["ethtool", "-K", dev] + OFFLOADS)
        for a in v4:
            ns.run(["ip", "addr", "add", a, "dev", dev])
        for a in v6:
            ns.run(["ip", "-6", "addr", "add", a, "dev", dev, "nodad"])
        ns.run(["ip", "link", "set", dev, "up"])

    def make_stale_ns(self):
        """(Re)creates the stale-connection server namespace and its link to the router."""
        self.stl.create()
        sh(["ip", "link", "add", "t0", "netns", self.stl.name, "type", "veth", "peer", "name",
            "r2", "netns", self.rtr.name])
        self.stl.run(["ip", "link", "set", "lo", "up"])
        self.stl.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        self._iface(self.stl, "t0", [STL4 + "/24"], [])
        self.rtr.sysctl("net.ipv6.conf.r2.disable_ipv6", 1)
        self._iface(self.rtr, "r2", [RTR_T4 + "/24"], [])
        self.stl.run(["ip", "route", "add", "default", "via", RTR_T4])
        wait_until(lambda: self._link_up(self.stl, "t0") and self._link_up(self.rtr, "r2"),
                   5, "stale link up")

    def destroy_stale_ns(self):
        """Cuts the stale server off (its link vanishes first, so nothing it does afterwards
        reaches the wire) and deletes its namespace."""
        self.rtr.run(["ip", "link", "del", "r2"], check=False)
        self.stl.delete()

    def _firewalls(self):
        # Router: blackhole set (both directions, by server port), middlebox reject sets,
        # and conntrack only for the idle-timeout ports (everything else is notrack, so the
        # short established timeout cannot touch other flows).
        self.rtr.nft("""
table inet rs {
  set bh { type inet_service; }
  set mb { type inet_service; }
  set mbstr { type inet_service; }
  set idle { type inet_service; }
  set ackhold { type inet_service; }
  set synack_hold { type inet_service; }
  chain raw_pre {
    type filter hook prerouting priority raw;
    meta l4proto tcp tcp dport != @idle tcp sport != @idle notrack
  }
  chain raw_out {
    type filter hook output priority raw;
    meta l4proto tcp tcp dport != @idle tcp sport != @idle notrack
  }
  chain filt_fwd {
    type filter hook forward priority filter;
    tcp dport @bh drop
    tcp sport @bh drop
    tcp dport @ackhold tcp flags & (fin | syn | rst | psh | ack) == ack drop
    tcp sport @synack_hold tcp flags & (syn | ack) == syn | ack drop
    tcp dport @mb reject with tcp reset
    tcp dport @mbstr @ih,0,56 0x424c4f434b4d45 reject with tcp reset
    tcp dport @idle ct state invalid reject with tcp reset
  }
}
""")
        # Client: drop what comes from a server port (peer blackholed at the client), and
        # suppress our own kernel's RSTs toward a port (scapy half-open connections).
        self.cli.nft("""
table inet rs {
  set in_drop { type inet_service; }
  set rst_drop { type inet_service; }
  chain filt_in {
    type filter hook input priority filter;
    tcp sport @in_drop drop
  }
  chain filt_out {
    type filter hook output priority filter;
    tcp dport @in_drop drop
    tcp dport @rst_drop tcp flags & rst == rst drop
  }
}
""")
        # Server: hold back SYN-ACKs of a port (packets marked PASS_MARK still pass). Note:
        # a SYN-ACK *retransmission* refused by the local firewall makes the kernel drop the
        # request (inet_rtx_syn_ack fails); to hold SYN-ACKs across a retransmission, use
        # the router's synack_hold set instead.
        self.srv.nft("""
table inet rs {
  set synack_drop { type inet_service; }
  chain filt_out {
    type filter hook output priority filter;
    meta mark != 0x%x tcp sport @synack_drop tcp flags & (syn | ack) == syn | ack drop
  }
}
""" % PASS_MARK)

    def set_add(self, ns, setname, port):
        with self._nft_lock:
            ns.run(["nft", "add", "element", "inet", "rs", setname, "{ %d }" % port])

    def set_del(self, ns, setname, port):
        with self._nft_lock:
            ns.run(["nft", "delete", "element", "inet", "rs", setname, "{ %d }" % port])

    @staticmethod
    def _link_up(ns, dev):
        out = ns.run(["ip", "link", "show", "dev", dev], check=False).stdout
        return "LOWER_UP" in out

    def wait_links(self):
        def ready():
            for ns, dev in ((self.cli, "c0"), (self.rtr, "r0"), (self.rtr, "r1"),
                            (self.srv, "s0"), (self.rtr, "sp0")):
                if not self._link_up(ns, dev):
                    return False
            for ns in (self.cli, self.rtr, self.srv):
                if "tentative" in ns.run(["ip", "-6", "addr"], check=False).stdout:
                    return False
            return True
        wait_until(ready, 10, "lab links up", step=0.02)

    # ---- teardown -----------------------------------------------------------

    def down(self):
        for ns in (self.cli, self.srv, self.stl, self.rtr):
            if ns.exists():
                ns.delete()
        sh(["ip", "link", "del", self.span], check=False)
