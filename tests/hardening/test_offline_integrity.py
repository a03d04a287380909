#!/usr/bin/env python3
"""An offline report covers the whole capture, or rstmon says it does not and exits non-zero:

- frames net_pcap drops (here: 9000-byte frames that need more chained mbufs than the pool has)
  are named and counted, the report still printed, exit 1;
- a capture cut short inside a frame or a record header: the whole frames before the cut are
  replayed and reported, then one line says where the file ends, exit 2;
- a complete replay says nothing and exits 0.

And the capture's clock: event times, idle gaps and flow ages come out right to the microsecond
from nanosecond and microsecond files, because the unit of net_pcap's timestamps is measured on
the first frame with a non-zero time (the debug log names it), not assumed.

Usage: test_offline_integrity.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

import harness as h

pu = h.pu
RSTMON = ROOT = None
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} \S+ ")


def rstmon_lines(stderr):
    """stderr lines that are not rstmon's timestamped log lines: the error lines."""
    return [ln for ln in stderr.splitlines() if ln and not LOG_LINE.match(ln)]


def frame(src, sport, dst, dport, flags, seq, ack=0, payload=b""):
    return pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(sport, dport, seq, ack, flags, payload=payload),
                                       src=src, dst=dst))


def aborted_connection(t0_ns, gap_ns):
    """(ns timestamp, frame) of a connection whose server aborts it `gap_ns` after the last
    request (unread_data_close: its data was never answered): idle_s of its event is the gap."""
    c, cp, s, sp = "10.60.0.1", 41000, "10.60.0.2", 6000
    S, A, P, R = pu.TCP_SYN, pu.TCP_ACK, pu.TCP_PSH, pu.TCP_RST
    frames = [frame(c, cp, s, sp, S, 1000),
              frame(s, sp, c, cp, S | A, 5000, 1001),
              frame(c, cp, s, sp, A, 1001, 5001),
              frame(c, cp, s, sp, P | A, 1001, 5001, b"ping\n"),
              frame(s, sp, c, cp, A, 5001, 1006)]
    out = [(t0_ns + i * 1_000_001, f) for i, f in enumerate(frames)]  # 1.000001 ms apart
    out.append((out[-1][0] + gap_ns, frame(s, sp, c, cp, R | A, 5001, 1006)))
    return out


class Case(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-integrity-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def replay(self, pcap, *args, config=""):
        cfg = h.write(self.path("cfg.yaml"), "flow_table: {size: 1024}\n" + config)
        return pu.run([RSTMON, "--config", cfg, "--pcap", pcap, "--report", "json", *args],
                      timeout=120)


class LostFrames(Case):

    def test_frames_net_pcap_drops_are_named_and_fail_the_run(self):
        recs = [pu.Record(1_700_000_000, i,
                          frame("10.61.0.1", 20000 + i, "10.61.0.2", 80, pu.TCP_ACK | pu.TCP_PSH,
                                1000, 1, b"j" * (9000 - 54)))
                for i in range(300)]
        pcap = self.path("jumbo.pcap")
        pu.write_pcap(pcap, pu.LINKTYPE_ETHERNET, recs)
        # 1023 mbufs of 128 data bytes: a burst of 9000-byte frames (71 segments each) runs the
        # pool dry inside net_pcap, which drops the frame it could not chain.
        res = self.replay(pcap, config="rx: {mbufs: 1023, mbuf_size: 256}\n")
        self.assertEqual(res.returncode, 1, res.describe())
        rep = h.report_of(res.stdout)
        errors = rstmon_lines(res.stderr)
        self.assertEqual(len(errors), 1, res.describe())
        m = re.fullmatch(r"rstmon: replay incomplete: (\d+) of 300 frames analysed \((\d+) dropped "
                         r"by net_pcap as rx errors\)", errors[0])
        self.assertIsNotNone(m, errors[0])
        analysed, dropped = int(m.group(1)), int(m.group(2))
        self.assertGreater(dropped, 0)
        self.assertEqual(analysed + dropped, 300)
        self.assertEqual(rep["packets"], analysed)
        self.assertEqual(rep["tcp_packets"], analysed)

    def test_the_same_frames_with_room_are_complete(self):
        recs = [pu.Record(1_700_000_000, i,
                          frame("10.61.0.1", 20000 + i, "10.61.0.2", 80, pu.TCP_ACK | pu.TCP_PSH,
                                1000, 1, b"j" * (9000 - 54)))
                for i in range(300)]
        pcap = self.path("jumbo-ok.pcap")
        pu.write_pcap(pcap, pu.LINKTYPE_ETHERNET, recs)
        res = self.replay(pcap, config="rx: {mbufs: 65535, mbuf_size: 256}\n")
        self.assertEqual(res.returncode, 0, res.describe())
        self.assertEqual(rstmon_lines(res.stderr), [])
        self.assertEqual(h.report_of(res.stdout)["packets"], 300)


class CutShort(Case):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.lab = os.path.join(ROOT, "tests", "data", "rst-lab.pcap")
        with open(cls.lab, "rb") as f:
            cls.blob = f.read()
        cls.records = pu.read_pcap(cls.lab).records
        # Byte offset of each record header.
        cls.offsets, off = [], 24
        for r in cls.records:
            cls.offsets.append(off)
            off += 16 + len(r.data)

    def cut(self, name, length):
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(self.blob[:length])
        return path

    def check(self, pcap, whole):
        res = self.replay(pcap)
        self.assertEqual(res.returncode, 2, res.describe())
        errors = rstmon_lines(res.stderr)
        self.assertEqual(len(errors), 1, res.describe())
        self.assertRegex(errors[0], rf"^rstmon: capture '.*' is cut short after {whole} whole "
                                    r"frames \(.*truncated.*\); the report covers those$")
        rep = h.report_of(res.stdout)
        self.assertEqual(rep["packets"], whole)

    def test_cut_inside_a_frame(self):
        k = 100
        self.check(self.cut("in-frame.pcap", self.offsets[k] + 16 + 10), k)

    def test_cut_inside_a_record_header(self):
        k = 57
        self.check(self.cut("in-header.pcap", self.offsets[k] + 7), k)

    def test_whole_file_is_clean(self):
        res = self.replay(self.cut("whole.pcap", len(self.blob)))
        self.assertEqual(res.returncode, 0, res.describe())
        self.assertEqual(rstmon_lines(res.stderr), [])
        self.assertEqual(h.report_of(res.stdout)["packets"], len(self.records))


class SlowConsumer(Case):
    """Offline, events are never dropped: a slow reader of the event stream (a FIFO) holds the
    replay back. A 4 s pause of the reader must not be taken for a stalled replay."""

    def test_a_paused_event_reader_is_no_stall(self):
        self.paused_reader(stop_rstmon=False)

    def test_a_stopped_and_continued_replay_is_no_stall(self):
        # SIGSTOP for 4 s (Ctrl-Z, a paused VM), then SIGCONT: nothing ran, nothing stalled.
        self.paused_reader(stop_rstmon=True)

    def paused_reader(self, stop_rstmon):
        recs = [pu.Record(1_700_000_000, i % 1_000_000,
                          frame(f"10.62.{i >> 8 & 255}.{i & 255}", 1024 + i % 60000, "10.62.255.1",
                                443, pu.TCP_RST, 1000 + i))
                for i in range(20000)]
        pcap = self.path("rsts.pcap")
        pu.write_pcap(pcap, pu.LINKTYPE_ETHERNET, recs)
        fifo = self.path(f"events-{stop_rstmon}.fifo")
        os.mkfifo(fifo)
        got = []

        cfg = h.write(self.path("slow.yaml"), "flow_table: {size: 1024}\n"
                      "events: {ring_size: 64}\n")  # the worker waits for the writer at once
        live = h.Live(RSTMON, ["--config", cfg, "--pcap", pcap, "--report", "json",
                               "--events", fifo], self.tmp, "slow")

        def reader():
            with open(fifo, "rb") as f:
                got.append(f.read(16384))
                if stop_rstmon:
                    os.kill(live.pid, signal.SIGSTOP)
                time.sleep(4.0)  # the consumer pauses: rstmon's writer and workers wait
                if stop_rstmon:
                    os.kill(live.pid, signal.SIGCONT)
                got.append(f.read())

        t = threading.Thread(target=reader)
        t.start()
        try:
            rc = live.wait(timeout=120)
        finally:
            t.join(timeout=120)
            live.kill()
        res = pu.Result(rc, live.stdout(), live.stderr(), live.args)
        self.assertEqual(res.returncode, 0, res.describe())
        self.assertNotIn("stalled", res.stderr)
        self.assertEqual(rstmon_lines(res.stderr), [])
        rep = h.report_of(res.stdout)
        self.assertEqual((rep["packets"], rep["rst"]), (20000, 20000))
        lines = b"".join(got).decode().splitlines()
        self.assertEqual(len(lines), 20000)
        json.loads(lines[-1])


class CaptureClock(Case):
    """Times from the file, in ns, against what rstmon's events say (µs resolution)."""

    def run_clock(self, name, nanosecond, t0_ns, gap_ns, lead=()):
        frames = list(lead) + aborted_connection(t0_ns, gap_ns)
        div = 1 if nanosecond else 1000
        recs = [pu.Record(t // 1_000_000_000, (t % 1_000_000_000) // div, f) for t, f in frames]
        pcap = self.path(name)
        pu.write_pcap(pcap, pu.LINKTYPE_ETHERNET, recs, nanosecond=nanosecond)
        events = self.path(name + ".jsonl")
        res = self.replay(pcap, "--events", events, "--log-level", "debug")
        self.assertEqual(res.returncode, 0, res.describe())
        with open(events) as f:
            evs = [json.loads(line) for line in f]
        self.assertEqual(len(evs), 1, evs)
        ev = evs[0]
        self.assertEqual(ev["cause"], "unread_data_close", ev)
        rst_ns = frames[-1][0]
        first_ns = frames[len(lead)][0]
        # The event's times are the capture's, to the microsecond (net_pcap keeps µs).
        self.assertEqual(round(ev["ts"] * 1e6), rst_ns // 1000)
        self.assertEqual(round(ev["idle_s"] * 1e6), rst_ns // 1000 - frames[-2][0] // 1000)
        self.assertEqual(round(ev["flow_age_s"] * 1e6), rst_ns // 1000 - first_ns // 1000)
        m = re.search(r"net_pcap timestamps: (\d+) ns per unit, measured on frame (\d+)",
                      res.stderr)
        self.assertIsNotNone(m, res.describe())
        return int(m.group(1)), int(m.group(2)), ev

    def test_nanosecond_file(self):
        unit, at, ev = self.run_clock("ns.pcap", True, 1_700_000_000_123_456_789,
                                      123_456_789_123)
        self.assertEqual((unit, at), (1000, 1))
        self.assertAlmostEqual(ev["idle_s"], 123.456789, places=6)

    def test_microsecond_file(self):
        unit, at, ev = self.run_clock("us.pcap", False, 1_700_000_000_000_001_000, 300_000_000_000)
        self.assertEqual((unit, at), (1000, 1))
        self.assertEqual(ev["idle_s"], 300.0)

    def test_capture_starting_at_time_zero(self):
        # Synthetic captures start at 0: the unit is measured on the first frame after it.
        lead = [(0, pu.eth(pu.ETH_ARP, pu.ARP_REQUEST)), (0, pu.eth(pu.ETH_ARP, pu.ARP_REQUEST))]
        unit, at, ev = self.run_clock("zero.pcap", False, 2_500_000_000, 7_000_000_000, lead)
        self.assertEqual((unit, at), (1000, 3))
        self.assertEqual(ev["idle_s"], 7.0)
        self.assertAlmostEqual(ev["ts"], 2.5 + 4 * 0.001000001 + 7.0, places=6)


if __name__ == "__main__":
    RSTMON, ROOT, argv = pu.take_script_args(sys.argv)
    unittest.main(argv=argv, verbosity=2)
