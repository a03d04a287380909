#!/usr/bin/env python3
"""The RST event file on a full disk or in an unwritable directory (a small tmpfs the test mounts,
read-only when it must be): lost events are counted (rstmon_event_write_errors_total, the report's
event_write_errors), the file never holds half a line, the data path does not notice (counts equal
a run without events), and writing resumes by itself when space or permission returns.

Offline, a replay must not lose events silently: a full disk ends the run with one line and exit
1, an event file that cannot even be opened stops it before it starts (exit 2). Live, rstmon
monitors on.

Needs root (mount); exits 77 otherwise.

Usage: test_event_write_errors.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import harness as h

pu = h.pu
RSTMON = ROOT = None
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} \S+ ")


def lone_rsts(path, n):
    """`n` RSTs of distinct 4-tuples nobody saw start: one event each (~400 bytes)."""
    recs = []
    for i in range(n):
        data = pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(1024 + i % 60000, 443, 7 + i, 0, pu.TCP_RST),
                                           src=f"10.80.{(i >> 8) & 255}.{i & 255}",
                                           dst="10.81.0.1"))
        recs.append(pu.Record(1_700_000_000 + i // 1000, (i % 1000) * 1000, data))
    pu.write_pcap(path, pu.LINKTYPE_ETHERNET, recs)


def mount_tmpfs(where, size, readonly=False):
    os.makedirs(where, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "rstmon-test", where],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"mount tmpfs on {where}: {res.stderr}")


def umount(where):
    subprocess.run(["umount", "-l", where], capture_output=True)


def error_lines(stderr):
    return [ln for ln in stderr.splitlines() if ln and not LOG_LINE.match(ln)]


def json_lines(path):
    """Every line of the file, parsed: a half-written line fails the test."""
    with open(path) as f:
        text = f.read()
    if text and not text.endswith("\n"):
        raise AssertionError(f"{path} ends inside a line: {text[-200:]!r}")
    return [json.loads(line) for line in text.splitlines()]


def file_numbers(fdir):
    """The file numbers of the forensic pcaps in fdir (rstmon-<start>-w<worker>-<n>.pcap)."""
    return [int(m.group(1)) for name in os.listdir(fdir)
            if (m := re.match(r"rstmon-\d+-w\d+-(\d+)\.pcap$", name))] or [0]


class EventFileFaults(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-evfault-")
        cls.mounts = []
        cls.pcap = os.path.join(cls.tmp, "rsts.pcap")
        lone_rsts(cls.pcap, 3000)  # ~1.2 MB of events
        # Live, replayed in a loop (net_pcap infinite_rx): long enough that a frame's next copy
        # comes later than any SPAN-duplicate window, so every copy counts as an RST again.
        cls.loop_pcap = os.path.join(cls.tmp, "rsts-loop.pcap")
        lone_rsts(cls.loop_pcap, 20000)
        cls.cfg = h.write(os.path.join(cls.tmp, "cfg.yaml"), "flow_table: {size: 1024}\n")

    @classmethod
    def tearDownClass(cls):
        for m in reversed(cls.mounts):
            umount(m)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.live = None

    def tearDown(self):
        if self.live is not None:
            self.live.kill()

    def mount(self, name, size, readonly=False):
        where = os.path.join(self.tmp, name)
        mount_tmpfs(where, size, readonly)
        self.mounts.append(where)
        return where

    def replay(self, *args):
        return pu.run([RSTMON, "--config", self.cfg, "--pcap", self.pcap, "--report", "json",
                       *args], timeout=120)

    # -- offline ----------------------------------------------------------------------------

    def test_offline_full_disk_counts_every_lost_event_and_fails(self):
        base = self.replay()
        self.assertEqual(base.returncode, 0, base.describe())
        full = self.mount("full", "128k")
        events = os.path.join(full, "events.jsonl")
        res = self.replay("--events", events)
        self.assertEqual(res.returncode, 1, res.describe())
        rep, want = h.report_of(res.stdout), h.report_of(base.stdout)
        lost = rep["event_write_errors"]
        errors = error_lines(res.stderr)
        self.assertEqual(errors, [f"rstmon: {lost} of 3000 RST events could not be written "
                                  f"(write '{events}': No space left on device)"])
        written = json_lines(events)
        self.assertGreater(len(written), 0)
        self.assertGreater(lost, 0)
        self.assertEqual(len(written) + lost, 3000)
        self.assertEqual(len({(e["src"], e["sport"]) for e in written}), len(written))
        # The data path did not notice: the same report as without events.
        rep.pop("event_write_errors")
        want.pop("event_write_errors")
        self.assertEqual(rep, want)

    def test_offline_read_only_directory_stops_before_starting(self):
        ro = self.mount("ro", "64k", readonly=True)
        res = self.replay("--events", os.path.join(ro, "events.jsonl"))
        self.assertEqual(res.returncode, 2, res.describe())
        self.assertEqual(error_lines(res.stderr),
                         [f"rstmon: events: open '{ro}/events.jsonl': Read-only file system"])
        self.assertEqual(res.stdout, "")

    def test_offline_missing_directory_stops_before_starting(self):
        path = os.path.join(self.tmp, "no-such-dir", "events.jsonl")
        res = self.replay("--events", path)
        self.assertEqual(res.returncode, 2, res.describe())
        self.assertEqual(error_lines(res.stderr),
                         [f"rstmon: events: open '{path}': No such file or directory"])

    # -- live -------------------------------------------------------------------------------

    def start_live(self, events, name):
        cfg = h.write(os.path.join(self.tmp, name + ".yaml"),
                      f'ports: [{{name: p0, device: "net_pcap_ev{name},rx_pcap={self.loop_pcap},'
                      f'infinite_rx=1"}}]\n'
                      f'metrics: {{listen: "127.0.0.1:0"}}\n'
                      f"events: {{path: {events}, max_per_second: 400, burst: 400}}\n"
                      "rx: {mbufs: 32767}\n")
        self.live = h.Live(RSTMON, ["--config", cfg, "--report", "json"], self.tmp, name)
        return self.live

    def lost_events(self):
        return h.metric(self.live.samples(), "rstmon_event_write_errors_total")

    def stop_live(self):
        self.live.signal(signal.SIGTERM)
        rc = self.live.wait(timeout=30)
        self.assertEqual(rc, 0, self.live.describe())
        rep = h.report_of(self.live.stdout())
        self.assertEqual(rep["rst"], rep["rst_packets"])  # every RST counted, events or not
        return rep

    def test_live_full_disk_then_space_returns(self):
        disk = self.mount("live-full", "256k")
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:  # leave about 24 KiB: ~60 events
            f.write(b"\0" * (256 - 24) * 1024)
        events = os.path.join(disk, "events.jsonl")
        live = self.start_live(events, "full")
        h.poll(lambda: self.lost_events() > 0, 60, "the disk to fill up")
        # The data path keeps counting while events are lost.
        rst0 = h.metric(live.samples(), "rstmon_rst_total")
        h.poll(lambda: h.metric(live.samples(), "rstmon_rst_total") > rst0, 30,
               "RSTs still counted on a full disk")
        lines_full = len(json_lines(events))
        os.unlink(filler)  # space returns
        h.poll(lambda: len(json_lines(events)) >= lines_full + 100, 60,
               "events written again after space returned")
        h.poll(lambda: "events: writing to " + events + " again" in live.stderr(), 10,
               "the log line saying so")
        lost = self.lost_events()
        rep = self.stop_live()
        self.assertGreater(lost, 0)
        self.assertGreaterEqual(rep["event_write_errors"], lost)
        self.assertRegex(live.stderr(), r"No space left on device")
        json_lines(events)  # still whole lines only

    def test_live_unwritable_directory_then_writable(self):
        where = self.mount("live-ro", "1m", readonly=True)
        events = os.path.join(where, "events.jsonl")
        live = self.start_live(events, "ro")
        h.poll(lambda: self.lost_events() > 0, 60, "events counted as lost")
        self.assertRegex(live.stderr(), r"warning events: open '.*': Read-only file system")
        self.assertFalse(os.path.exists(events))
        subprocess.run(["mount", "-o", "remount,rw", where], check=True)
        h.poll(lambda: os.path.exists(events) and len(json_lines(events)) >= 50, 60,
               "events written once the directory is writable")
        rep = self.stop_live()
        self.assertGreater(rep["event_write_errors"], 0)

    # -- forensic captures --------------------------------------------------------------------

    def forensic(self, result):
        return h.metric(self.live.samples(), "rstmon_forensic_captures_total", result=result)

    def test_live_forensic_pcaps_on_a_full_disk_then_space_returns(self):
        disk = self.mount("forensics-full", "512k")
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:  # leave about 32 KiB: a few hundred one-RST captures
            f.write(b"\0" * (512 - 32) * 1024)
        fdir = os.path.join(disk, "pcaps")
        cfg = h.write(os.path.join(self.tmp, "forensics-full.yaml"),
                      f'ports: [{{name: p0, device: "net_pcap_fo,rx_pcap={self.loop_pcap},'
                      f'infinite_rx=1"}}]\n'
                      f'metrics: {{listen: "127.0.0.1:0"}}\n'
                      f"forensics: {{enabled: true, dir: {fdir}, snaplen: 64, packets_after: 1,"
                      f" max_file_size: 64KiB, max_total_size: 256KiB}}\n"
                      "rx: {mbufs: 32767}\n")
        self.live = live = h.Live(RSTMON, ["--config", cfg, "--report", "json"], self.tmp, "fo")
        h.poll(lambda: self.forensic("write_error") > 0, 60, "the disk to fill up")
        rst0 = h.metric(live.samples(), "rstmon_rst_total")  # the data path does not notice
        h.poll(lambda: h.metric(live.samples(), "rstmon_rst_total") > rst0, 30,
               "RSTs still counted on a full disk")
        # The worker moves on to its next file while the disk is still full: the file it left
        # was closed in its failed state and must be cut back to its last whole capture too,
        # not only a file that is appended to again.
        full_at = max(file_numbers(fdir))
        h.poll(lambda: max(file_numbers(fdir)) > full_at, 60,
               "a new forensic file started while the disk is full")
        written0 = self.forensic("written")
        os.unlink(filler)  # space returns
        h.poll(lambda: self.forensic("written") >= written0 + 50, 60,
               "captures written again after space returned")
        self.stop_live()
        # Every file holds whole records only: a failed write was cut back to its last whole
        # capture before the file was appended to.
        files = sorted(os.listdir(fdir))
        self.assertTrue(files)
        frames = 0
        for name in files:
            cap = pu.read_pcap(os.path.join(fdir, name))  # raises on a half record
            frames += len(cap.records)
        self.assertGreater(frames, 0)


if __name__ == "__main__":
    RSTMON, ROOT, argv = pu.take_script_args(sys.argv)
    if os.geteuid() != 0:
        h.skip("mounting a tmpfs needs root")
    unittest.main(argv=argv, verbosity=2)
