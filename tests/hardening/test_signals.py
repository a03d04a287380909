#!/usr/bin/env python3
"""Signals: SIGTERM and SIGINT stop rstmon within 2 s, with every counter and event flushed (RST
episodes still lingering are made final, their events written, the report complete); under a
full-rate replay too. A second signal forces an immediate exit when the orderly stop hangs (here:
the event file is a FIFO nobody reads, so the writer blocks).

Usage: test_signals.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import fcntl
import json
import os
import shutil
import signal
import struct
import sys
import tempfile
import termios
import time
import unittest

import harness as h

pu = h.pu
RSTMON = ROOT = None
STOP_WITHIN_S = 2.0


def lone_rsts(path, n, seed=3):
    """`n` RSTs of distinct 4-tuples nobody saw start: each is one event."""
    recs = []
    for i in range(n):
        src = f"10.{70 + (i >> 16) % 100}.{(i >> 8) & 255}.{i & 255 or 1}"
        data = pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(1024 + (i * 7 + seed) % 60000, 443, 1000 + i,
                                                  0, pu.TCP_RST), src=src, dst="10.69.0.1"))
        recs.append(pu.Record(1_700_000_000 + i // 1000, (i % 1000) * 1000, data))
    pu.write_pcap(path, pu.LINKTYPE_ETHERNET, recs)


class Signals(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rstmon-signals-")
        self.live = None

    def tearDown(self):
        if self.live is not None:
            self.live.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def start(self, config, *args):
        cfg = h.write(self.path("cfg.yaml"), config)
        self.live = h.Live(RSTMON, ["--config", cfg, *args], self.tmp)
        return self.live

    def stop_in_time(self, live, sig):
        t0 = time.monotonic()
        live.signal(sig)
        rc = live.wait(timeout=30)
        took = time.monotonic() - t0
        self.assertLess(took, STOP_WITHIN_S, f"stopping took {took:.2f} s")
        return rc

    def lab_run_then(self, sig):
        lab = os.path.join(ROOT, "tests", "data", "rst-lab.pcap")
        events = self.path("events.jsonl")
        live = self.start(f'ports: [{{name: p0, device: "net_pcap_sig0,rx_pcap={lab}"}}]\n'
                          f'metrics: {{listen: "127.0.0.1:0"}}\n'
                          f"events: {{path: {events}}}\n", "--report", "json")
        # Every frame has been through the pipeline; RST episodes are still open (linger 2 s),
        # so the stop itself must make them final and write their events.
        h.poll(lambda: h.metric(live.samples(), "rstmon_packets_total") == 174, 60,
               "all 174 frames of the lab capture processed")
        rc = self.stop_in_time(live, sig)
        self.assertEqual(rc, 0, live.describe())
        rep = h.report_of(live.stdout())
        self.assertEqual(rep["packets"], 174)
        self.assertEqual(rep["rst"], 18)
        self.assertEqual(rep["connections"]["rst"], 18)
        self.assertEqual(rep["connections"]["fin"], 6)
        with open(events) as f:
            evs = [json.loads(line) for line in f]
        self.assertEqual(len(evs), 18)
        self.assertEqual(sorted(e["cause"] for e in evs),
                         sorted(["port_closed"] * 6 + ["linger_abort"] * 6 +
                                ["unread_data_close"] * 6))

    def test_sigterm_flushes_counters_and_events(self):
        self.lab_run_then(signal.SIGTERM)

    def test_sigint_flushes_counters_and_events(self):
        self.lab_run_then(signal.SIGINT)

    def test_sigterm_under_a_full_rate_replay(self):
        pcap = self.path("storm.pcap")
        lone_rsts(pcap, 20000)  # a loop longer than any SPAN-duplicate window
        live = self.start(f'ports: [{{name: p0, device: "net_pcap_sig1,rx_pcap={pcap},'
                          f'infinite_rx=1"}}]\n'
                          f'metrics: {{listen: "127.0.0.1:0"}}\n'
                          "rx: {mbufs: 32767}\n", "--report", "json")
        h.poll(lambda: h.metric(live.samples(), "rstmon_packets_total") > 200_000, 60,
               "the replay running at full rate")
        rc = self.stop_in_time(live, signal.SIGTERM)
        self.assertEqual(rc, 0, live.describe())
        rep = h.report_of(live.stdout())
        self.assertGreater(rep["packets"], 200_000)
        self.assertEqual(rep["rst"], rep["rst_packets"])  # every RST counted, none lost in stop
        self.assertEqual(rep["causes"]["no_state"], rep["rst"])

    def test_second_signal_forces_exit(self):
        pcap = self.path("rsts.pcap")
        lone_rsts(pcap, 5000)  # ~2 MB of events: far beyond a pipe's 64 KiB
        fifo = self.path("events.fifo")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, never read
        try:
            live = self.start("flow_table: {size: 1024}\n", "--pcap", pcap, "--events", fifo,
                              "--report", "json")

            def queued():
                buf = fcntl.ioctl(reader, termios.FIONREAD, struct.pack("i", 0))
                return struct.unpack("i", buf)[0]
            # The pipe is full: rstmon's writer is blocked in write(2).
            h.poll(lambda: queued() >= 60000 or not live.alive(), 60, "a full pipe")
            self.assertTrue(live.alive(), live.describe())
            live.signal(signal.SIGTERM)
            # The orderly stop cannot finish while the writer is blocked (nothing is dropped
            # silently offline): rstmon is still there a second later.
            time.sleep(1.0)
            self.assertTrue(live.alive(), "one signal must not abandon unwritten events")
            rc = self.stop_in_time(live, signal.SIGTERM)
            self.assertEqual(rc, 128 + signal.SIGTERM, live.describe())
            self.assertIn("rstmon: second signal: exiting now without flushing", live.stderr())
        finally:
            os.close(reader)


if __name__ == "__main__":
    RSTMON, ROOT, argv = pu.take_script_args(sys.argv)
    unittest.main(argv=argv, verbosity=2)
