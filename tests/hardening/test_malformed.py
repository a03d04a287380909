#!/usr/bin/env python3
"""Hostile and malformed frames (tests/data/make-malformed.py): every frame lands in exactly one
class, tracked / ignored{reason} / malformed{reason}, frame by frame in the parser and in exact
totals through the whole DPDK pipeline, with mbufs small enough that every frame above 128 bytes
(the 9000-byte jumbo frames: about 70 segments) arrives as a chain, with one worker and with two
behind the software dispatcher.

Usage: test_malformed.py RSTMON_EXE SOURCE_ROOT CLASSIFY_FRAMES [unittest args]
"""

import collections
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness as h

RSTMON = ROOT = CLASSIFY = None


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


class MalformedCapture(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-malformed-")
        cls.pcap = os.path.join(cls.tmp, "malformed.pcap")
        cls.tsv = os.path.join(cls.tmp, "malformed.tsv")
        gen = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "data",
                                                               "make-malformed.py"),
                              cls.pcap, cls.tsv], capture_output=True, text=True, timeout=120)
        if gen.returncode != 0:
            raise AssertionError(f"make-malformed.py failed:\n{gen.stderr}")
        cls.expected = read_tsv(cls.tsv)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def want(self):
        """The report's totals as the expectation file predicts them."""
        rows = self.expected
        return {
            "packets": len(rows),
            "tcp_packets": sum(r["class"] == "tracked" for r in rows),
            "rst": sum(int(r["rst"]) for r in rows),
            "rst_packets": sum(int(r["rst"]) for r in rows),
            "sliced_packets": sum(int(r["sliced"]) for r in rows),
            "malformed": collections.Counter(r["reason"] for r in rows
                                             if r["class"] == "malformed"),
            "ignored": collections.Counter(r["reason"] for r in rows if r["class"] == "ignored"),
        }

    def test_the_capture_covers_the_hostile_shapes(self):
        what = " | ".join(r["what"] for r in self.expected)
        for shape in ("zero-length", "IHL 4", "TCP data offset 4", "option length 40",
                      "SYN+FIN+RST", "RST with", "5-deep VLAN", "9 extension headers",
                      "IPv4 fragment", "9000-byte", "total length 10", "cut"):
            self.assertIn(shape, what)
        classes = collections.Counter(r["class"] for r in self.expected)
        self.assertGreaterEqual(classes["malformed"], 40)
        self.assertGreaterEqual(classes["ignored"], 15)
        self.assertGreaterEqual(classes["tracked"], 30)
        reasons = {r["reason"] for r in self.expected if r["class"] == "malformed"}
        for reason in ("truncated_l2", "truncated_ip", "truncated_tcp", "bad_ipv4_ihl",
                       "bad_ip_length", "bad_ipv6_ext_header", "bad_tcp_offset", "bad_tcp_option",
                       "vlan_stack_too_deep", "bad_ip_version"):
            self.assertIn(reason, reasons)

    def test_every_frame_gets_its_class_from_the_parser(self):
        res = subprocess.run([CLASSIFY, self.pcap], capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        got = list(csv.DictReader(res.stdout.splitlines(), delimiter="\t"))
        self.assertEqual(len(got), len(self.expected), "frames read back")
        wrong = []
        for w, g in zip(self.expected, got):
            keys = ("class", "reason", "rst", "sliced")
            if any(w[k] != (g[k] or "") for k in keys):
                wrong.append(f"frame {w['frame']} ({w['what']}): expected "
                             f"{[w[k] for k in keys]}, parser says {[g[k] or '' for k in keys]}")
        self.assertEqual(wrong, [])

    def replay(self, config_text, *args):
        cfg = h.write(os.path.join(self.tmp, "cfg.yaml"), config_text)
        res = h.pu.run([RSTMON, "--config", cfg, "--pcap", self.pcap, "--report", "json", *args],
                       timeout=120)
        self.assertEqual(res.returncode, 0, res.describe())
        return h.report_of(res.stdout)

    def assert_exact(self, rep):
        want = self.want()
        self.assertEqual(rep["packets"], want["packets"])
        self.assertEqual(rep["tcp_packets"], want["tcp_packets"])
        self.assertEqual({k: v for k, v in rep["malformed"].items() if v}, dict(want["malformed"]))
        self.assertEqual({k: v for k, v in rep["ignored"].items() if v}, dict(want["ignored"]))
        # Every frame in exactly one class.
        self.assertEqual(rep["packets"], rep["tcp_packets"] + sum(rep["malformed"].values()) +
                         sum(rep["ignored"].values()))
        self.assertEqual(rep["rst_packets"], want["rst_packets"])
        self.assertEqual(rep["rst"], want["rst"])  # each RST counted once, whatever its flags
        self.assertEqual(sum(rep["causes"].values()), rep["rst"])
        # A chained jumbo frame is not "sliced" because only its headers were copied out.
        self.assertEqual(rep["sliced_packets"], want["sliced_packets"])
        self.assertEqual(rep["untracked_packets"], 0)

    def test_replay_with_chained_mbufs_one_worker(self):
        # mbuf_size 256: 128 bytes of data per segment, so a 9000-byte frame is ~70 segments.
        self.assert_exact(self.replay("rx: {mbuf_size: 256}\nflow_table: {size: 1024}\n"))

    def test_replay_with_chained_mbufs_two_workers_behind_the_dispatcher(self):
        self.assert_exact(self.replay("rx: {mbuf_size: 256}\nflow_table: {size: 1024}\n",
                                      "--workers", "2"))

    def test_replay_with_default_mbufs(self):
        self.assert_exact(self.replay("flow_table: {size: 1024}\n"))


if __name__ == "__main__":
    RSTMON, ROOT, argv = h.pu.take_script_args(sys.argv[:3])
    argv += sys.argv[4:]
    CLASSIFY = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
    if CLASSIFY is None:
        raise SystemExit(__doc__)
    try:
        import scapy  # noqa: F401  (make-malformed.py builds its layers with it)
    except ImportError:
        h.skip("python3-scapy not installed")
    unittest.main(argv=argv, verbosity=2)
