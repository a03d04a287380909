#!/usr/bin/python3
"""Tunnelled mirror feeds end to end: the real rstmon binary replays the bundled capture wrapped
in every encapsulation tests/data/make-tunnels.py makes (VXLAN, Geneve, GRE, ERSPAN I/II/III,
MPLS, GRE+VXLAN) and must give the plain capture's answers exactly; broken tunnel frames are
counted by reason.

Usage: test_tunnels.py RSTMON_EXE SOURCE_ROOT [unittest args]

Exits 77 (meson's skip) when scapy, which make-tunnels.py builds the tunnels with, is missing.
tshark is optional: when present, make-tunnels.py also checks its outputs with it.
"""

import collections
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil as pu  # noqa: E402

RSTMON = None  # set in __main__
ROOT = None
SKIP = 77

# What the report says about the tracked traffic; every one must equal the plain run's.
REPORT_KEYS = ("packets", "tcp_packets", "rst", "causes", "stages", "senders", "validity",
               "connections", "flows_created", "untracked_packets")


def make_tunnels(outdir, check):
    script = os.path.join(ROOT, "tests", "data", "make-tunnels.py")
    cmd = [sys.executable, script, os.path.join(ROOT, "tests", "data", "rst-lab.pcap"), outdir]
    return subprocess.run(cmd + ([] if check else ["--no-check"]), capture_output=True, text=True,
                          timeout=600)


def event_key(ev):
    return (ev["ts"], ev["src"], ev["sport"], ev["dst"], ev["dport"])


class Tunnels(unittest.TestCase):
    """One replay per encapsulation, compared with the replay of the plain capture."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-tunnels-")
        cls.config = pu.small_config(cls.tmp)
        cls.gen = make_tunnels(os.path.join(cls.tmp, "tunnels"), shutil.which("tshark") is not None)
        cls.names = sorted(f[:-5] for f in os.listdir(os.path.join(cls.tmp, "tunnels"))
                           if f.endswith(".pcap")) if cls.gen.returncode == 0 else []
        cls.plain = cls.replay(os.path.join(ROOT, "tests", "data", "rst-lab.pcap"), "plain")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def replay(cls, pcap, name, *extra):
        events = os.path.join(cls.tmp, name + ".jsonl")
        res = pu.run([RSTMON, "--config", cls.config, "--pcap", pcap, "--report", "json",
                      "--events", events] + list(extra), timeout=120)
        if res.returncode != 0:
            return res, None, None
        with open(events) as f:
            evs = [json.loads(line) for line in f if line.strip()]
        return res, json.loads(res.stdout), evs

    def assert_same_as_plain(self, name, got):
        res, rep, events = got
        self.assertIsNotNone(rep, res.describe())
        _, plain_rep, plain_events = self.plain
        for key in REPORT_KEYS:
            self.assertEqual(rep[key], plain_rep[key], f"{name}: report {key}")
        self.assertEqual({k: v for k, v in rep["malformed"].items() if v}, {}, name)
        self.assertEqual({k: v for k, v in rep["ignored"].items() if v}, {}, name)
        # Every event: same 5-tuple, time, cause, stage, sender, validity, numbers, TTL, length.
        self.assertEqual(len(events), len(plain_events), name)
        by_key = {event_key(ev): ev for ev in events}
        self.assertEqual(len(by_key), len(events), f"{name}: two events with one key")
        for want in plain_events:
            ev = by_key.get(event_key(want))
            self.assertIsNotNone(ev, f"{name}: no event for {want}")
            self.assertEqual({k: ev.get(k) for k in want}, want, f"{name}: event differs")

    def test_generator(self):
        if self.gen.returncode == 3:
            self.skipTest("make-tunnels.py: " + self.gen.stderr.strip())
        self.assertEqual(self.gen.returncode, 0, self.gen.stdout + self.gen.stderr)
        self.assertGreaterEqual(len(self.names), 11, self.names)
        sys.stderr.write("\n" + self.gen.stdout)

    def test_plain_capture(self):
        res, rep, events = self.plain
        self.assertIsNotNone(rep, res.describe())
        self.assertEqual(rep["rst"], 18)
        self.assertEqual(len(events), 18)

    def test_every_encapsulation_equals_plain(self):
        if not self.names:
            self.skipTest("no tunnelled captures (see test_generator)")
        rows = []
        for name in self.names:
            with self.subTest(encapsulation=name):
                got = self.replay(os.path.join(self.tmp, "tunnels", name + ".pcap"), name)
                if got[1] is not None:
                    causes = {c: n for c, n in got[1]["causes"].items() if n}
                    rows.append(f"  {name:16} rst {got[1]['rst']:3}  {causes}")
                self.assert_same_as_plain(name, got)
        causes = {c: n for c, n in self.plain[1]["causes"].items() if n}
        sys.stderr.write("\n  " + f"{'plain':16} rst {self.plain[1]['rst']:3}  {causes}\n" +
                         "\n".join(rows) + "\n")

    def test_two_workers_with_software_dispatch(self):
        # With two workers and net_pcap (no RSS), the dispatch lcore parses each frame for its
        # flow key: both directions of every inner connection must meet on one worker, or the
        # RSTs lose their connections and their causes. The outer UDP source port differs per
        # direction (make-tunnels.py hashes the inner flow into it, as VTEPs do), so a key taken
        # from the outer headers would split them.
        if "vxlan" not in self.names:
            self.skipTest("no VXLAN capture (see test_generator)")
        pcap = os.path.join(self.tmp, "tunnels", "vxlan.pcap")
        got = self.replay(pcap, "vxlan-w2", "--workers", "2")
        self.assert_same_as_plain("vxlan, 2 workers", got)


    def serve_and_scrape(self, pcap, config_text):
        """Replays with --serve, scrapes once after the report: the exposition's samples."""
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import test_metrics as tm
        config = os.path.join(self.tmp, "decap.yaml")
        with open(config, "w") as f:
            f.write(config_text)
        server = tm.Served([RSTMON, "--config", config, "--pcap", pcap, "--serve", "--metrics",
                            "127.0.0.1:0", "--duration", "60", "--report", "json"])
        try:
            port = server.port()
            rep = server.report()
            fams = tm.parse_exposition(self, tm.scrape(port)[2])
        finally:
            server.kill()
        return rep, {(s.labels["encap"], s.labels["session"]): s.value
                     for s in tm.samples(fams, "rstmon_decap_packets_total")}

    def test_decap_counter_by_encap_and_named_session(self):
        if "vxlan" not in self.names or "erspan3" not in self.names:
            self.skipTest("no tunnelled captures (see test_generator)")
        cfg = ("flow_table: {size: 65536}\n"
               "decap: {sessions: [{name: cloud-mirror, id: 4242}, {name: core-span, id: 999}]}\n")
        rep, decap = self.serve_and_scrape(os.path.join(self.tmp, "tunnels", "vxlan.pcap"), cfg)
        self.assertEqual(rep["rst"], 18)
        frames = rep["packets"]
        # VNI 4242 is named; every other encapsulation is listed with session="other" at 0.
        self.assertEqual(decap.pop(("vxlan", "cloud-mirror")), frames)
        self.assertEqual(set(decap.values()), {0}, decap)
        self.assertIn(("erspan3", "other"), decap)
        self.assertNotIn(("none", "other"), decap)
        rep, decap = self.serve_and_scrape(os.path.join(self.tmp, "tunnels", "erspan3.pcap"), cfg)
        self.assertEqual(decap[("erspan3", "other")], rep["packets"])  # session 456: not named

    def test_vxlan_port_is_configurable(self):
        if "vxlan" not in self.names:
            self.skipTest("no VXLAN capture (see test_generator)")
        config = os.path.join(self.tmp, "vxlan-port.yaml")
        pcap = os.path.join(self.tmp, "tunnels", "vxlan.pcap")
        with open(config, "w") as f:
            f.write("flow_table: {size: 65536}\ndecap: {vxlan_ports: [4790]}\n")
        res = pu.run([RSTMON, "--config", config, "--pcap", pcap, "--report", "json"], timeout=120)
        self.assertEqual(res.returncode, 0, res.describe())
        rep = json.loads(res.stdout)
        self.assertEqual(rep["rst"], 0)  # UDP 4789 is no longer VXLAN: plain UDP, not TCP
        self.assertEqual(rep["ignored"]["not_tcp"], rep["packets"])
        with open(config, "w") as f:
            f.write("decap: {vxlan_ports: [4789], geneve_ports: [4789]}\n")
        res = pu.run([RSTMON, "--config", config, "--pcap", pcap], timeout=60)
        self.assertEqual(res.returncode, 2, res.describe())
        self.assertIn("decap.geneve_ports: port 4789 is also in decap.vxlan_ports", res.stderr)


# ---------------------------------------------------------------------------------------------
# broken and non-mirror tunnel frames, built by hand


def outer_ipv4(proto, payload):
    return pu.eth(pu.ETH_IPV4, pu.ipv4(payload, proto=proto, src="198.51.100.1",
                                       dst="198.51.100.2", ttl=250))


def udp_to(dport, payload, length=None):
    return struct.pack("!HHHH", 49152, dport, 8 + len(payload) if length is None else length,
                       0) + payload


def vxlan_hdr(vni, flags=0x08):
    return struct.pack("!BxxxI", flags, vni << 8)


def geneve_hdr(vni, proto=0x6558, version=0, opt_words=0, oam=False):
    return struct.pack("!BBHI", version << 6 | opt_words, 0x80 if oam else 0, proto, vni << 8)


def gre_hdr(proto, flags=0):
    return struct.pack("!HH", flags, proto)


def _frames():
    """(description, frame, kind, reason); kind is 'tcp', 'malformed' or 'ignored'."""
    inner = pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(flags=pu.TCP_SYN)))
    F = []

    def add(desc, frame, kind, reason=None):
        F.append((desc, frame, kind, reason))

    add("Geneve SYN", outer_ipv4(17, udp_to(6081, geneve_hdr(2) + inner)), "tcp")
    add("ERSPAN II SYN", outer_ipv4(47, gre_hdr(0x88BE, 0x1000) + struct.pack("!I", 1) +
                                    struct.pack("!HHI", 0x1000, 5, 0) + inner), "tcp")
    add("VXLAN without the I flag", outer_ipv4(17, udp_to(4789, vxlan_hdr(1, 0) + inner)),
        "malformed", "bad_vxlan")
    vxlan_syn = outer_ipv4(17, udp_to(4789, vxlan_hdr(1) + inner))
    add("frame cut inside the VXLAN header", vxlan_syn[:14 + 20 + 8 + 4], "malformed",
        "truncated_tunnel")
    add("VXLAN SYN", vxlan_syn, "tcp")
    add("VXLAN inner frame cut in the IP header",
        outer_ipv4(17, udp_to(4789, vxlan_hdr(1) + inner[:24])), "malformed", "truncated_ip")
    add("UDP length beyond the IP payload",
        outer_ipv4(17, udp_to(4789, vxlan_hdr(1) + inner, length=200)), "malformed",
        "bad_tunnel_length")
    add("Geneve version 2", outer_ipv4(17, udp_to(6081, geneve_hdr(2, version=2) + inner)),
        "malformed", "bad_geneve")
    add("Geneve options past the datagram",
        outer_ipv4(17, udp_to(6081, geneve_hdr(2, opt_words=40) + inner)), "malformed",
        "bad_geneve")
    add("GRE version 3", outer_ipv4(47, gre_hdr(0x6558, 3) + inner), "malformed", "bad_gre")
    add("GRE routing flag", outer_ipv4(47, gre_hdr(0x6558, 0x4000) + b"\0" * 4 + inner),
        "malformed", "bad_gre")
    add("ERSPAN II header of version 2",
        outer_ipv4(47, gre_hdr(0x88BE, 0x1000) + struct.pack("!I", 1) +
                   struct.pack("!HHI", 0x2000, 5, 0) + inner), "malformed", "bad_erspan")
    add("ERSPAN III header cut short", outer_ipv4(47, gre_hdr(0x22EB) + b"\x20\x00\x00\x05"),
        "malformed", "truncated_tunnel")
    add("9 MPLS labels without bottom of stack",
        pu.eth(0x8847, struct.pack("!I", 16 << 12 | 64) * 9 + pu.ipv4(pu.tcp())), "malformed",
        "bad_mpls")
    add("GRE keepalive", outer_ipv4(47, gre_hdr(0x0000)), "ignored", "not_tcp")
    add("PPTP enhanced GRE", outer_ipv4(47, gre_hdr(0x880B, 0x2001) + b"\0" * 4), "ignored",
        "not_tcp")
    add("UDP to 4790 (VXLAN-GPE, not configured)",
        outer_ipv4(17, udp_to(4790, vxlan_hdr(1) + inner)), "ignored", "not_tcp")
    add("Geneve control (OAM) packet",
        outer_ipv4(17, udp_to(6081, geneve_hdr(2, oam=True) + inner)), "ignored",
        "tunnel_not_followed")
    three = outer_ipv4(47, gre_hdr(0x0800) + pu.ipv4(
        udp_to(4789, vxlan_hdr(1) + outer_ipv4(17, udp_to(6081, geneve_hdr(2) + inner))),
        proto=17))
    add("three nested tunnels", three, "ignored", "tunnel_not_followed")
    add("VXLAN carrying ARP", outer_ipv4(17, udp_to(4789, vxlan_hdr(1) +
                                                    pu.eth(pu.ETH_ARP, pu.ARP_REQUEST))),
        "ignored", "not_ip")
    return F


class BrokenTunnels(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rstmon-tunnels-broken-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_counted_by_reason(self):
        frames = _frames()
        path = os.path.join(self.tmp, "broken.pcap")
        pu.write_pcap(path, pu.LINKTYPE_ETHERNET, [f for _, f, _, _ in frames])
        res = pu.run([RSTMON, "--config", pu.small_config(self.tmp), "--pcap", path, "--report",
                      "json"], timeout=120)
        self.assertEqual(res.returncode, 0, res.describe())
        rep = json.loads(res.stdout)
        want_mal = collections.Counter(r for _, _, k, r in frames if k == "malformed")
        want_ign = collections.Counter(r for _, _, k, r in frames if k == "ignored")
        self.assertEqual(rep["packets"], len(frames))
        self.assertEqual(rep["tcp_packets"], sum(1 for f in frames if f[2] == "tcp"))
        self.assertTrue(set(want_mal) <= set(rep["malformed"]),
                        f"reasons missing from the report: {set(want_mal) - set(rep['malformed'])}")
        self.assertTrue(set(want_ign) <= set(rep["ignored"]),
                        f"reasons missing from the report: {set(want_ign) - set(rep['ignored'])}")
        self.assertEqual({k: v for k, v in rep["malformed"].items() if v}, dict(want_mal))
        self.assertEqual({k: v for k, v in rep["ignored"].items() if v}, dict(want_ign))


if __name__ == "__main__":
    RSTMON, ROOT, rest = pu.take_script_args(sys.argv)
    try:
        import scapy  # noqa: F401  (make-tunnels.py builds the tunnels with it)
    except ImportError:
        print("SKIP: python3-scapy is not installed (make-tunnels.py needs it)")
        sys.exit(SKIP)
    unittest.main(argv=rest)
