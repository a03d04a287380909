#!/usr/bin/python3
"""SPAN duplicates end to end: the real rstmon binary replays captures in which every frame is
seen twice, as a SPAN of both ingress and egress (or of two interfaces of the path) delivers it,
and must give exactly the answers of the plain capture, counting each copy in
rstmon_duplicates_total. Copies are made with scapy at test time: 10-500 us after their
original (fixed seed), half of them as seen on the far side of a router (TTL / hop limit one
less, other MAC addresses, the IPv4 header checksum redone, the TCP checksum untouched).

Also: a true retransmission (a new IP ID, or the same datagram after the window) is still a
retransmission; `dedup: {window: 0}` turns the filter off; the scenario suite's capture
(build/meson-logs/scenarios, when a scenario run left one) gives its plain answers doubled too.

Usage: test_span_duplicates.py RSTMON_EXE SOURCE_ROOT [unittest args]

Exits 77 (meson's skip) when python3-scapy or python3-prometheus-client is missing.
"""

import json
import os
import random
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil as pu  # noqa: E402

RSTMON = None  # set in __main__
ROOT = None
SKIP = 77

# Report keys that must equal the plain run's. Frame counts double (packets, and the non-TCP
# frames counted as ignored), and every TCP copy is a duplicate.
SAME_KEYS = ("tcp_packets", "rst", "causes", "stages", "senders", "validity", "connections",
             "flows_created", "untracked_packets", "one_sided_flows")


def load_scapy():
    try:
        from scapy.all import IP, IPv6, TCP, Ether, PcapReader, PcapWriter  # noqa: F401
        import scapy.all as sc
        return sc
    except ImportError:
        return None


def duplicate(src, dst, seed=7):
    """Writes `src` with every frame followed, 10-500 us later, by a copy of it; odd copies are
    'routed' (TTL - 1, new MACs). Returns the number of frames of `src`."""
    sc = load_scapy()
    rnd = random.Random(seed)
    pkts = list(sc.PcapReader(src))
    out = []
    for n, p in enumerate(pkts):
        out.append((p.time, 0, n, p))
        c = p.copy()
        c.time = p.time + rnd.randint(10, 500) / 1e6
        if n % 2 and c.haslayer(sc.Ether):
            c[sc.Ether].src, c[sc.Ether].dst = "02:00:5e:00:00:01", "02:00:5e:00:00:02"
            if c.haslayer(sc.IP):
                c[sc.IP].ttl -= 1
                del c[sc.IP].chksum   # redone on build; the TCP checksum stays as captured
            elif c.haslayer(sc.IPv6):
                c[sc.IPv6].hlim -= 1  # IPv6 has no header checksum; TCP's ignores the hop limit
        out.append((c.time, 1, n, c))
    out.sort(key=lambda t: (t[0], t[1], t[2]))
    w = sc.PcapWriter(dst, linktype=1, sync=True)
    for _, _, _, p in out:
        w.write(p)
    w.close()
    return len(pkts)


def events_of(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class SpanDuplicates(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-dups-")
        cls.config = pu.small_config(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def replay(self, pcap, name, config=None):
        events = os.path.join(self.tmp, name + ".jsonl")
        res = pu.run([RSTMON, "--config", config or self.config, "--pcap", pcap, "--report",
                      "json", "--events", events], timeout=180)
        self.assertEqual(res.returncode, 0, res.describe())
        return json.loads(res.stdout), events_of(events)

    def assert_doubled_equals_plain(self, pcap, name, config=None):
        doubled = os.path.join(self.tmp, name + "-x2.pcap")
        frames = duplicate(pcap, doubled)
        plain_rep, plain_ev = self.replay(pcap, name, config)
        rep, ev = self.replay(doubled, name + "-x2", config)
        self.assertEqual(rep["packets"], 2 * plain_rep["packets"], name)
        # Every TCP frame's copy; a frame the plain capture already repeats byte for byte
        # within the window (an endpoint's repeat without IP ID) is counted there and here twice.
        self.assertEqual(rep["duplicates"], plain_rep["tcp_packets"] + 2 * plain_rep["duplicates"],
                         f"{name}: every TCP copy counted once")
        for key in ("malformed", "ignored"):
            self.assertEqual(rep[key], {k: 2 * v for k, v in plain_rep[key].items()}, key)
        for key in SAME_KEYS:
            self.assertEqual(rep[key], plain_rep[key], f"{name}: report {key}")
        # Every event identical, field for field (times are the originals').
        self.assertEqual(ev, plain_ev, f"{name}: events")
        causes = {c: n for c, n in rep["causes"].items() if n}
        sys.stderr.write(f"\n  {name}: {frames} frames doubled, duplicates {rep['duplicates']}, "
                         f"rst {rep['rst']} as plain, causes {causes}\n")
        return rep, frames

    def test_bundled_capture_doubled(self):
        rep, frames = self.assert_doubled_equals_plain(
            os.path.join(ROOT, "tests", "data", "rst-lab.pcap"), "rst-lab")
        self.assertEqual(frames, 174)
        self.assertEqual(rep["rst"], 18)
        self.assertEqual(rep["duplicates"], 174)  # the plain capture has none

    def test_scenario_capture_doubled(self):
        # Left by the scenario suite (meson test --suite scenarios) in this build directory.
        kept = os.path.join(os.path.dirname(os.path.dirname(RSTMON)), "meson-logs", "scenarios")
        pcap, config = os.path.join(kept, "span.pcap"), os.path.join(kept, "rstmon.yaml")
        if not (os.path.isfile(pcap) and os.path.isfile(config)):
            self.skipTest(f"no scenario capture in {kept} (run the scenarios suite first)")
        self.assert_doubled_equals_plain(pcap, "scenarios", config)

    def test_window_zero_turns_it_off(self):
        # Without the filter the copies are tracked: every RST counts twice (the plain 18
        # cannot come out), and nothing is counted as a duplicate.
        doubled = os.path.join(self.tmp, "off-x2.pcap")
        duplicate(os.path.join(ROOT, "tests", "data", "rst-lab.pcap"), doubled)
        config = pu.small_config(self.tmp + "/", "dedup: {window: 0}\n")
        rep, _ = self.replay(doubled, "off", config)
        self.assertEqual(rep["duplicates"], 0)
        self.assertEqual(rep["rst"], 36)

    # ---- a true retransmission stays one -------------------------------------------------

    def flow(self, copies, name):
        """SYN, SYN-ACK, ACK, one data segment and three more of it (`copies`: 'new-id' = the
        sender's retransmissions 100 us apart with new IP IDs, 'same' = the same datagram 100 us
        apart, 'late' = the same datagram 3 ms apart, beyond the 2 ms window), then the client's
        abortive RST+ACK at its snd_nxt. Returns (report, the RST's event)."""
        sc = load_scapy()
        cli, srv, cp, sp = "192.0.2.10", "192.0.2.20", 41000, 80
        t = 1_700_000_000.0
        pkts = []

        def add(dt, src, dst, sport, dport, flags, seq, ack, ip_id, payload=b""):
            nonlocal t
            t += dt
            p = (sc.Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
                 sc.IP(src=src, dst=dst, id=ip_id, ttl=64) /
                 sc.TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=65535) /
                 payload)
            p = sc.Ether(bytes(p))  # checksums computed once, as on the wire
            p.time = t
            pkts.append(p)

        add(0, cli, srv, cp, sp, "S", 1000, 0, 1)
        add(0.001, srv, cli, sp, cp, "SA", 5000, 1001, 100)
        add(0.001, cli, srv, cp, sp, "A", 1001, 5001, 2)
        add(0.001, cli, srv, cp, sp, "PA", 1001, 5001, 3, b"x" * 100)
        for k in range(3):
            if copies == "new-id":
                add(0.0001, cli, srv, cp, sp, "PA", 1001, 5001, 4 + k, b"x" * 100)
            elif copies == "same":
                add(0.0001, cli, srv, cp, sp, "PA", 1001, 5001, 3, b"x" * 100)
            else:
                add(0.003, cli, srv, cp, sp, "PA", 1001, 5001, 3, b"x" * 100)
        add(0.001, cli, srv, cp, sp, "RA", 1101, 5001, 9)
        path = os.path.join(self.tmp, name + ".pcap")
        sc.wrpcap(path, pkts, linktype=1)
        rep, ev = self.replay(path, name)
        self.assertEqual(len(ev), 1, ev)
        return rep, ev[0]

    def test_retransmission_with_new_ip_id_is_no_copy(self):
        rep, ev = self.flow("new-id", "rexmit-new-id")
        self.assertEqual(rep["duplicates"], 0)
        self.assertEqual(ev["rexmit_run"], 3)
        self.assertEqual(ev["cause"], "retransmission_timeout")

    def test_same_datagram_after_the_window_is_a_retransmission(self):
        rep, ev = self.flow("late", "rexmit-late")
        self.assertEqual(rep["duplicates"], 0)
        self.assertEqual(ev["rexmit_run"], 3)
        self.assertEqual(ev["cause"], "retransmission_timeout")

    def test_same_datagram_inside_the_window_is_a_copy(self):
        rep, ev = self.flow("same", "rexmit-same")
        self.assertEqual(rep["duplicates"], 3)
        self.assertEqual(ev["rexmit_run"], 0)
        self.assertEqual(ev["cause"], "linger_abort")

    def test_metric_counts_every_copy(self):
        try:
            import test_metrics as tm
        except ImportError as e:
            self.skipTest(f"test_metrics helpers: {e}")
        doubled = os.path.join(self.tmp, "metric-x2.pcap")
        frames = duplicate(os.path.join(ROOT, "tests", "data", "rst-lab.pcap"), doubled)
        server = tm.Served([RSTMON, "--config", self.config, "--pcap", doubled, "--serve",
                            "--metrics", "127.0.0.1:0", "--duration", "60", "--report", "json"])
        try:
            port = server.port()
            rep = server.report()
            fams = tm.parse_exposition(self, tm.scrape(port)[2])
        finally:
            server.kill()
        self.assertEqual(rep["duplicates"], frames)
        dups = tm.samples(fams, "rstmon_duplicates_total")
        self.assertEqual([s.value for s in dups], [frames], dups)
        tcp = tm.samples(fams, "rstmon_tcp_packets_total")
        self.assertEqual([s.value for s in tcp], [frames], "copies are not tracked segments")
        rst = sum(s.value for s in tm.samples(fams, "rstmon_rst_total"))
        self.assertEqual(rst, 18)


if __name__ == "__main__":
    RSTMON, ROOT, argv = pu.take_script_args(sys.argv)
    if load_scapy() is None:
        print("SKIP: python3-scapy is missing")
        sys.exit(SKIP)
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        print("SKIP: python3-prometheus-client is missing")
        sys.exit(SKIP)
    unittest.main(argv=argv, verbosity=2)
