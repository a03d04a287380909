#!/usr/bin/env python3
"""A large mixed workload with a known answer: gen_traffic scripts thousands of connections, each
ending with a FIN close or one of 13 RST causes, and reports how many RSTs it wrote per cause.
rstmon must find exactly those causes, with one worker and with two workers behind the software
dispatcher (both directions of every flow must meet on one worker)."""
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
        r = subprocess.run([RSTMON, "--pcap", self.pcap, "--config", self.cfg, "--workers",
                            str(workers), "--report", "json"], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_every_cause_with_one_worker(self):
        rep = self.report(1)
        self.assertGreater(sum(self.truth.values()), 1000)
        self.assertEqual(rep["rst"], sum(self.truth.values()))
        for cause, n in self.truth.items():
            self.assertEqual(rep["causes"][cause], n, cause)
        self.assertEqual(rep["causes"]["unclassified"], 0)
        self.assertEqual(rep["causes"]["no_state"], 0)

    def test_two_workers_behind_the_dispatcher(self):
        rep = self.report(2)
        self.assertEqual(rep["rst"], sum(self.truth.values()))
        self.assertEqual(rep["causes"]["no_state"], 0)  # no direction strayed to another worker
        # Each worker learns server TTLs from its own flows, so a firewall's reset to a server
        # that worker has not seen yet reads as port_closed: compare those two together.
        both = ("port_closed", "middlebox_reject")
        self.assertEqual(sum(rep["causes"][c] for c in both), sum(self.truth[c] for c in both))
        for cause, n in self.truth.items():
            if cause not in both:
                self.assertEqual(rep["causes"][cause], n, cause)


if __name__ == "__main__":
    unittest.main(verbosity=2)
