#!/usr/bin/env python3
"""SIGHUP swaps the sni/host and trigger patterns into a live rstmon without losing anything.

rstmon runs live (net_af_packet) on one end of a veth pair in a network namespace of its own;
this test writes frames into the other end with an AF_PACKET socket: traffic from gen_traffic
(first requests naming servers) and the real TLS/HTTP connections of tests/data/tls-http.pcap,
whose servers reset them. Two runs see the same frames:

  A  no reload;
  B  a SIGHUP with changed (valid) patterns before each chunk of traffic, the chunk sent while
     the reload is compiled and handed to the worker; then patterns that rename who is who, a
     pattern that does not compile, and a changed list of service names.

Both runs must count every frame and every RST (equal totals, equal to what was sent); in B
each good reload is counted once the worker has taken it, the connections replayed after the
last good one are labelled by its patterns, and the bad reloads are counted as failures while
the patterns before them stay in force.

Needs root and `ip` (iproute2); exits 77 (skip) otherwise.

Usage: test_match_reload.py RSTMON_EXE SOURCE_ROOT GEN_TRAFFIC [unittest args]
"""

import collections
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil as pu  # noqa: E402
import test_metrics as tm  # noqa: E402

NETNS_ENV = "RSTMON_MATCH_RELOAD_NETNS"
RX_DEV, TX_DEV = "rsm0", "rsm1"  # rstmon reads rsm0; the test writes into rsm1
GEN_TRAFFIC = None
IN_FLIGHT = 4096  # frames sent but not yet counted by rstmon, at most (the PMD ring holds 8192)
L1, L2 = 61000, 62000  # client ports of the two replays of tls-http.pcap (gen_traffic: < 65024)


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)


def config(api=r"api\.example\.com", split=r"split\.example\.com", gen=r"h1\d*\.example\.com",
           word="forbidden-word", names=("api", "split", "web", "gen", "alt")):
    api_name, split_name, web_name, gen_name, alt_name = names
    return f"""appliance: reload-test
flow_table: {{size: 65536}}
thresholds: {{linger: 200ms}}
events: {{max_per_second: 0}}
ports: [{{name: span, device: "net_af_packet0,iface={RX_DEV},framecnt=8192"}}]
services:
  - {{name: {api_name}, sni: ['{api}'], ports: [8443]}}
  - {{name: {split_name}, sni: ['{split}']}}
  - {{name: {web_name}, host: ['(www\\.)?example\\.org']}}
  - {{name: {gen_name}, sni: ['{gen}'], host: ['{gen}']}}
  - {{name: {alt_name}, ports: [80, 443, 8080, 8081, 8082, 8444]}}
triggers:
  - {{name: blocked_word, pattern: '{word}'}}
"""


# The patterns in force at the end of run B: api.example.com now belongs to `split`, and the
# trigger named blocked_word now means curl's User-Agent.
FINAL = dict(api=r"nothing\.invalid", split=r"(api|split)\.example\.com", word="User-Agent: curl/")


def tcp_offset(frame):
    etype = struct.unpack("!H", frame[12:14])[0]
    return 14 + ((frame[14] & 0x0F) * 4 if etype == pu.ETH_IPV4 else 40)


def renumbered(frames, clients, base):
    """The frames with connection i's client port set to base + i (new 4-tuples each time)."""
    out = []
    for f in frames:
        info = pu.decode_tcp(f)
        sender = (info.src, info.sport)
        side = sender if sender in clients else (info.dst, info.dport)
        off = tcp_offset(f) + (0 if side == sender else 2)
        out.append(f[:off] + struct.pack("!H", base + clients[side]) + f[off + 2:])
    return out


def labelled_traffic(root):
    """Frames of tls-http.pcap, and {(address, port) of each connection's client: its number}."""
    frames = [r.data for r in
              pu.read_pcap(os.path.join(root, "tests", "data", "tls-http.pcap")).records]
    clients = {}
    for f in frames:
        i = pu.decode_tcp(f)
        if i.flags & pu.TCP_SYN and not i.flags & pu.TCP_ACK:
            clients.setdefault((i.src, i.sport), len(clients))
    return frames, clients


def labels(events, base):
    """(server port, connection number) -> (service, sni, host, trigger) of each event."""
    return {(e["sport"], e["dport"] - base): (e["service"], e.get("sni"), e.get("host"),
                                               e.get("trigger")) for e in events}


def rsts(frames):
    return sum(1 for f in frames if pu.decode_tcp(f).flags & pu.TCP_RST)


class Live:
    """rstmon on RX_DEV, and the socket that feeds it."""

    def __init__(self, tmp, name, text):
        self.cfg = os.path.join(tmp, name + ".yaml")
        self.events = os.path.join(tmp, name + ".jsonl")
        self.write(text)
        self.s = tm.Served([tm.RSTMON, "--config", self.cfg, "--events", self.events, "--metrics",
                            "127.0.0.1:0", "--duration", "300", "--report", "json"])
        self.port = self.s.port(timeout=60)
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.tx.bind((TX_DEV, 0))
        self.sent = self.sent_rsts = 0

    def write(self, text):
        with open(self.cfg + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.cfg + ".tmp", self.cfg)  # never a half-written file at SIGHUP

    def metrics(self):
        fams = tm.parse_exposition(unittest.TestCase(), tm.scrape(self.port)[2])
        one = lambda n: sum(x.value for x in tm.samples(fams, n))  # noqa: E731
        return {"packets": one("rstmon_packets_total"), "rst": one("rstmon_rst_total"),
                "tcp": one("rstmon_tcp_packets_total"), "flows": one("rstmon_flows_created_total"),
                "missed": one("rstmon_nic_missed_packets_total"),
                "reloads": tm.sum_by(fams, "rstmon_config_reloads_total", "result")}

    def counted(self):
        return self.metrics()["packets"]

    def send(self, frames):
        """Writes frames, never more than IN_FLIGHT ahead of what rstmon has counted."""
        for i, f in enumerate(frames):
            if i % 256 == 0:
                self.s.poll_for("rstmon to keep up", lambda: True
                                if self.sent - self.counted() < IN_FLIGHT else None, 60)
            self.tx.send(f)
            self.sent += 1
        self.sent_rsts += rsts(frames)

    def settle(self):
        """Polls until every frame and every RST sent is counted (RSTs after their linger)."""
        return self.s.poll_for(f"{self.sent} frames and {self.sent_rsts} RSTs counted",
                               lambda: (m := self.metrics())["packets"] == self.sent
                               and m["rst"] == self.sent_rsts and m or None, 60)

    def hup(self, text, want_success, want_failure):
        self.write(text)
        self.s.proc.send_signal(signal.SIGHUP)
        self.want = (want_success, want_failure)

    def reloaded(self):
        want = {"success": self.want[0], "failure": self.want[1]}
        return self.s.poll_for(f"reloads {want}", lambda: self.metrics()["reloads"] == want
                               or None, 60)

    def events_of(self, dports, n):
        """The RST events sent to client ports in dports, once there are n of them."""
        def read():
            try:
                with open(self.events) as f:
                    evs = [json.loads(l) for l in f if l.strip()]
            except (OSError, ValueError):
                return None
            got = [e for e in evs if e["dport"] in dports]
            return got if len(got) >= n else None
        return self.s.poll_for(f"{n} events", read, 60)

    def close(self):
        """Ctrl-C; rstmon's exit status (a sanitizer's leak report would make it non-zero)."""
        self.tx.close()
        if self.s.proc.poll() is None:
            self.s.proc.send_signal(signal.SIGINT)
            self.s.wait(60)
        self.s.kill()
        return self.s.proc.returncode


class ReloadUnderTraffic(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-reload-")
        pcap = os.path.join(cls.tmp, "gen.pcap")
        subprocess.run([GEN_TRAFFIC, "--out", pcap, "--flows", "400", "--packets", "16000",
                        "--finish", "--names", "40"], check=True, stdout=subprocess.DEVNULL,
                       timeout=120)
        volume = [r.data for r in pu.read_pcap(pcap).records]
        cls.chunks = [volume[i * len(volume) // 4:(i + 1) * len(volume) // 4] for i in range(4)]
        frames, clients = labelled_traffic(tm.ROOT)
        cls.l1 = renumbered(frames, clients, L1)
        cls.l2 = renumbered(frames, clients, L2)
        cls.l1_ports = {L1 + i for i in clients.values()}
        cls.l2_ports = {L2 + i for i in clients.values()}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_a(self):
        live = Live(self.tmp, "a", config())
        try:
            for chunk in self.chunks:
                live.send(chunk)
            live.send(self.l1)
            live.send(self.l2)
            totals = live.settle()
            l1 = labels(live.events_of(self.l1_ports, 6), L1)
        finally:
            rc = live.close()
        self.assertEqual(rc, 0, live.s.describe())
        return totals, l1

    def test_reloads_lose_nothing_and_take_effect(self):
        totals_a, labels_a = self.run_a()
        live = Live(self.tmp, "b", config())
        try:
            # Valid reloads, each racing a chunk of traffic: the generated names change hands.
            for k, chunk in enumerate(self.chunks, start=1):
                live.hup(config(gen=r"h2\d*\.example\.com" if k % 2 else r"h1\d*\.example\.com"),
                         k, 0)
                live.send(chunk)
                live.reloaded()
            # Patterns that rename who is who; the connections after it are labelled by them.
            live.hup(config(**FINAL), 5, 0)
            live.reloaded()
            live.send(self.l1)
            l1 = labels(live.events_of(self.l1_ports, 6), L1)
            # A pattern that does not compile: counted, and the last good patterns stay.
            live.hup(config(**dict(FINAL, split="(")), 5, 1)
            live.reloaded()
            live.send(self.l2)
            l2 = labels(live.events_of(self.l2_ports, 6), L2)
            # A changed list of service names: refused (label sets are fixed at start).
            live.hup(config(**FINAL, names=("api", "split", "www", "gen", "alt")), 5, 2)
            live.reloaded()
            totals_b = live.settle()
        finally:
            rc = live.close()
        log = live.s.stderr
        self.assertEqual(rc, 0, live.s.describe())

        # Nothing lost: both runs counted every frame and every RST they were sent.
        for t in (totals_a, totals_b):
            self.assertEqual(t["missed"], 0)
        keys = ("packets", "rst", "tcp", "flows")
        self.assertEqual({k: totals_b[k] for k in keys}, {k: totals_a[k] for k in keys})
        self.assertEqual(totals_b["packets"], live.sent)
        self.assertEqual(totals_b["rst"], live.sent_rsts)

        # Each good reload was counted once its patterns were in use by the worker.
        for n in range(1, 6):
            self.assertIn(f"match patterns of reload {n} in use by 1 worker(s)", log)
        self.assertIn("config reload failed", log)
        self.assertIn("services[1].sni[0]: pattern '('", log)
        self.assertIn("differ from", log)

        # In B the failed reloads changed nothing: L2 is labelled as L1 was.
        self.assertEqual(l2, l1)
        # Run A (start-up patterns) and run B (the last good reload) label the same connections
        # differently: api.example.com moved to `split`; blocked_word is the word in A and curl's
        # User-Agent in B (every HTTP client in the capture is curl).
        self.assertEqual(set(l1), set(labels_a))
        api = [k for k, v in labels_a.items() if v[1] == "api.example.com"]
        self.assertEqual(len(api), 1)
        self.assertEqual((labels_a[api[0]][0], l1[api[0]][0]), ("api", "split"))
        trig_a = collections.Counter(v[3] for v in labels_a.values())
        trig_b = collections.Counter(v[3] for v in l1.values())
        self.assertEqual(trig_a["blocked_word"], 2)
        self.assertEqual(trig_b["blocked_word"], 4)


def in_namespace(argv):
    """Runs this file again inside a network namespace made for it; returns its exit status."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("test_match_reload: needs root and ip(8): skipped", file=sys.stderr)
        return 77
    ns = f"rsm-{os.getpid()}"
    try:
        sh("ip", "netns", "add", ns)
    except subprocess.CalledProcessError as e:
        print(f"test_match_reload: cannot create a network namespace ({e.stderr.strip()}): "
              "skipped", file=sys.stderr)
        return 77
    try:
        env = dict(os.environ, **{NETNS_ENV: ns})
        return subprocess.call(["ip", "netns", "exec", ns, sys.executable, *argv], env=env)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def set_up_links():
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", RX_DEV, "type", "veth", "peer", "name", TX_DEV)
    for dev in (RX_DEV, TX_DEV):
        # Nothing of the kernel's own on the wire (no IPv6 neighbour discovery), frames as sent.
        sh("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
        if shutil.which("ethtool"):
            subprocess.run(["ethtool", "-K", dev, "gro", "off", "gso", "off", "tso", "off"],
                           capture_output=True)
        sh("ip", "link", "set", dev, "up")


if __name__ == "__main__":
    if os.environ.get(NETNS_ENV) is None:
        sys.exit(in_namespace([os.path.abspath(__file__)] + sys.argv[1:]))
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    GEN_TRAFFIC = os.path.abspath(sys.argv.pop(3))
    tm.RSTMON, tm.ROOT, argv = pu.take_script_args(sys.argv)
    set_up_links()
    unittest.main(argv=argv, verbosity=2)
