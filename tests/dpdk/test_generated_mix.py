#!/usr/bin/env python3
"""A large mixed workload with a known answer: gen_traffic scripts thousands of connections, each
ending with a FIN close or one of 13 RST causes, and reports how many RSTs it wrote per cause.
rstmon must find exactly those causes, with one worker and with two and three workers behind the
software dispatcher: both directions of every flow meet on one worker, and no verdict depends on
the worker count (a host's TTL learned on one worker serves an RST on another: a firewall's reset
for a server stays middlebox_reject). Every RST event is the same, cause for cause."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

RSTMON, GEN = sys.argv[1], sys.argv[2]
del sys.argv[1:3]


class GeneratedMix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pcap = os.path.join(cls.tmp.name, "mix.pcap")
        out = subprocess.run([GEN, "--out", cls.pcap, "--flows", "20000", "--packets", "200000",
                              "--seed", "7", "--finish"], capture_output=True, text=True, check=True,
                             timeout=120).stdout
        cls.truth = json.loads(out)["rsts"]
        cls.cfg = os.path.join(cls.tmp.name, "mix.yaml")
        with open(cls.cfg, "w") as f:
            f.write("flow_table: {size: 65536}\n")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def report(self, workers):
        events = os.path.join(self.tmp.name, f"events-{workers}.jsonl")
        r = subprocess.run([RSTMON, "--pcap", self.pcap, "--config", self.cfg, "--workers",
                            str(workers), "--report", "json", "--events", events],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(events) as f:
            verdicts = sorted((e["ts"], e["src"], e["sport"], e["dst"], e["dport"], e["seq"],
                               e["cause"]) for e in map(json.loads, f))
        return json.loads(r.stdout), verdicts

    def one_worker(self):
        if not hasattr(type(self), "_one"):
            type(self)._one = self.report(1)
        return type(self)._one

    def test_every_cause_with_one_worker(self):
        rep, verdicts = self.one_worker()
        self.assertEqual(len(verdicts), rep["rst"])
        self.assertGreater(sum(self.truth.values()), 1000)
        self.assertEqual(rep["rst"], sum(self.truth.values()))
        for cause, n in self.truth.items():
            self.assertEqual(rep["causes"][cause], n, cause)
        self.assertEqual(rep["causes"]["unclassified"], 0)
        self.assertEqual(rep["causes"]["no_state"], 0)

    def check_workers(self, n):
        rep, verdicts = self.report(n)
        self.assertEqual(rep["rst"], sum(self.truth.values()))
        self.assertEqual(rep["causes"]["no_state"], 0)  # no direction strayed to another worker
        for cause, want in self.truth.items():
            self.assertEqual(rep["causes"][cause], want, f"{cause} with {n} workers")
        _, one = self.one_worker()
        self.assertEqual(len(verdicts), len(one))
        differ = [(a, b) for a, b in zip(one, verdicts) if a != b]
        self.assertEqual(differ[:5], [], f"RST events that differ between 1 and {n} workers")

    def test_two_workers_behind_the_dispatcher(self):
        self.check_workers(2)

    def test_three_workers_behind_the_dispatcher(self):
        self.check_workers(3)

    def test_host_ttl_learned_on_another_worker(self):
        # 200 servers, each seen first in one whole connection (its SYN-ACK arrives with TTL
        # 60), then a client's SYN to a filtered port of it, refused by a firewall next to the
        # monitor (RST+ACK with TTL 254). The refused flow is another
        # 4-tuple: with 2 or 3 workers most land on another worker than the learning one.
        from scapy.all import Ether, IP, TCP, wrpcap  # scapy: Debian's python3-scapy
        frames, t = [], 1700000000.0
        def add(p):
            nonlocal t
            p.time = t
            t += 0.001
            frames.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p)
        for i in range(200):
            srv, cli = f"10.9.{i // 250}.{i % 250 + 1}", f"10.8.0.{i % 250 + 1}"
            add(IP(src=cli, dst=srv, ttl=64) / TCP(sport=40000 + i, dport=443, flags="S", seq=1000))
            add(IP(src=srv, dst=cli, ttl=60) / TCP(sport=443, dport=40000 + i, flags="SA",
                                                   seq=5000, ack=1001))
            add(IP(src=cli, dst=srv, ttl=64) / TCP(sport=40000 + i, dport=443, flags="A",
                                                   seq=1001, ack=5001))
        for i in range(200):
            srv, cli = f"10.9.{i // 250}.{i % 250 + 1}", f"10.8.0.{i % 250 + 1}"
            add(IP(src=cli, dst=srv, ttl=64) / TCP(sport=50000 + i, dport=8443, flags="S", seq=7000))
            add(IP(src=srv, dst=cli, ttl=254) / TCP(sport=8443, dport=50000 + i, flags="RA",
                                                    seq=0, ack=7001))
        pcap = os.path.join(self.tmp.name, "host-ttl.pcap")
        wrpcap(pcap, frames)
        for n in (1, 2, 3):
            r = subprocess.run([RSTMON, "--pcap", pcap, "--workers", str(n), "--report", "json"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            causes = {k: v for k, v in json.loads(r.stdout)["causes"].items() if v}
            self.assertEqual(causes, {"middlebox_reject": 200}, f"{n} workers")


if __name__ == "__main__":
    unittest.main(verbosity=2)
