#!/usr/bin/env python3
"""End-to-end test of the Prometheus endpoint: `rstmon --pcap ... --serve --metrics 127.0.0.1:0`,
scraped over real HTTP and parsed with prometheus_client.

Usage: test_metrics.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import collections
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil as pu  # noqa: E402
from child import Child  # noqa: E402

RSTMON = None  # set in __main__
ROOT = None

APPLIANCE = "rstmon-test"
CONFIG = f"""appliance: {APPLIANCE}
flow_table: {{size: 65536}}
services:
  - {{name: lab, ports: [9001, 9002]}}
"""
# Served by prometheus-cpp's Exposer itself (always registered, cannot be switched off).
LIBRARY_FAMILIES = {"exposer_transferred_bytes", "exposer_scrapes", "exposer_request_latencies"}
METRICS_LINE = re.compile(r"metrics at http://127\.0\.0\.1:(\d+)/metrics")


def lab_pcap():
    return os.path.join(ROOT, "tests", "data", "rst-lab.pcap")


def lab_truth():
    with open(os.path.join(ROOT, "tests", "data", "rst-lab.truth.tsv"), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


class Served(Child):
    """An rstmon child whose stdout/stderr are collected by threads, so they can be polled."""

    def poll_for(self, what, fn, timeout):
        """Polls fn() until it returns something other than None; fails on exit or deadline."""
        deadline = time.monotonic() + timeout
        while True:
            got = fn()
            if got is not None:
                return got
            if self.proc.poll() is not None:
                self.join_output()
                got = fn()
                if got is not None:
                    return got
                raise AssertionError(f"rstmon exited before {what}\n{self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s\n{self.describe()}")
            time.sleep(0.02)

    def port(self, timeout=30):
        def find():
            m = METRICS_LINE.search(self.stderr)
            return int(m.group(1)) if m else None
        return self.poll_for("'metrics at http://127.0.0.1:PORT/metrics' on stderr", find, timeout)

    def report(self, timeout=60):
        def parse():
            out = self.stdout.strip()
            if not out:
                return None
            try:
                return json.loads(out)
            except ValueError:
                return None
        return self.poll_for("JSON report on stdout", parse, timeout)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            pu.kill_group(self.proc)
        self.close()


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def parse_exposition(testcase, body):
    try:
        return list(text_string_to_metric_families(body))
    except Exception as e:  # noqa: BLE001 - any parser failure is a test failure
        testcase.fail(f"exposition does not parse ({type(e).__name__}: {e}):\n{body[:3000]}")


def samples(families, name):
    return [s for f in families for s in f.samples if s.name == name]


def sum_by(families, name, label):
    out = collections.Counter()
    for s in samples(families, name):
        out[s.labels[label]] += s.value
    return dict(out)


class ServeTestCase(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-metrics-")
        cls.config = os.path.join(cls.tmp, "rstmon.yaml")
        with open(cls.config, "w") as f:
            f.write(CONFIG)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def start(cls, duration=60, extra=()):
        return Served([RSTMON, "--config", cls.config, "--pcap", lab_pcap(), "--serve",
                       "--metrics", "127.0.0.1:0", "--duration", str(duration),
                       "--report", "json", *extra])


class ScrapeAfterReplay(ServeTestCase):
    """One server for all checks: replay, read the report, scrape twice."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = None
        cls.setup_error = None
        cls.events_path = os.path.join(cls.tmp, "events.jsonl")
        cls.started = time.time()
        try:
            cls.server = cls.start(extra=("--events", cls.events_path))
            cls.port = cls.server.port()
            cls.rep = cls.server.report()  # printed when the replay is done
            cls.status, cls.ctype, cls.body = scrape(cls.port)
            cls.body2 = scrape(cls.port)[2]
        except BaseException as e:  # reported by every test, with rstmon's output
            cls.setup_error = f"{type(e).__name__}: {e}"
            if cls.server is not None:
                cls.setup_error += "\n" + cls.server.describe()

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.kill()
        super().tearDownClass()

    def setUp(self):
        if self.setup_error:
            self.fail(self.setup_error)
        self.families = parse_exposition(self, self.body)

    def test_http_response(self):
        self.assertEqual(self.status, 200)
        self.assertTrue(self.ctype.startswith("text/plain"), self.ctype)

    def test_rst_total_by_cause_equals_report(self):
        by_cause = sum_by(self.families, "rstmon_rst_total", "cause")
        for cause, n in self.rep["causes"].items():
            self.assertEqual(by_cause.get(cause, 0), n, f"cause {cause}")
        self.assertEqual(sum(by_cause.values()), self.rep["rst"])
        self.assertEqual(self.rep["rst"], len(lab_truth()))

    def test_rst_total_by_stage_and_sender_equals_report(self):
        for label, key in (("stage", "stages"), ("sender", "senders")):
            got = sum_by(self.families, "rstmon_rst_total", label)
            for value, n in self.rep[key].items():
                self.assertEqual(got.get(value, 0), n, f"{label}={value}")

    def test_rst_total_by_service(self):
        want = collections.Counter("lab" if int(r["sport"]) in (9001, 9002) else "other"
                                   for r in lab_truth())
        self.assertEqual(sum_by(self.families, "rstmon_rst_total", "service"), dict(want))

    def test_rst_total_only_nonzero_label_sets(self):
        zero = [s for s in samples(self.families, "rstmon_rst_total") if s.value == 0]
        self.assertEqual(zero, [])

    def test_rst_label_values_are_known(self):
        known = {"cause": set(self.rep["causes"]), "stage": set(self.rep["stages"]),
                 "sender": set(self.rep["senders"]), "service": {"lab", "other"},
                 "appliance": {APPLIANCE}}
        rst = samples(self.families, "rstmon_rst_total")
        self.assertTrue(rst, "no rstmon_rst_total samples")
        for s in rst:
            self.assertEqual(set(s.labels), set(known), s)
            for label, values in known.items():
                self.assertIn(s.labels[label], values, f"{label} of {s}")
        for s in samples(self.families, "rstmon_rst_validity_total"):
            self.assertIn(s.labels["cause"], known["cause"], s)
            self.assertIn(s.labels["validity"], set(self.rep["validity"]), s)

    def test_validity_equals_report(self):
        got = sum_by(self.families, "rstmon_rst_validity_total", "validity")
        for value, n in self.rep["validity"].items():
            self.assertEqual(got.get(value, 0), n, f"validity={value}")
        by_cause = sum_by(self.families, "rstmon_rst_validity_total", "cause")
        for cause, n in self.rep["causes"].items():
            self.assertEqual(by_cause.get(cause, 0), n, f"validity of cause {cause}")

    def test_packet_counters_equal_report(self):
        cap = pu.read_pcap(lab_pcap())
        packets = sum_by(self.families, "rstmon_packets_total", "port")
        self.assertEqual(packets, {"pcap0": self.rep["packets"]})
        self.assertEqual(self.rep["packets"], len(cap.records))
        self.assertEqual(sum_by(self.families, "rstmon_bytes_total", "port"),
                         {"pcap0": sum(len(r.data) for r in cap.records)})
        tcp = samples(self.families, "rstmon_tcp_packets_total")
        self.assertEqual([s.value for s in tcp], [self.rep["tcp_packets"]])
        created = samples(self.families, "rstmon_flows_created_total")
        self.assertEqual([s.value for s in created], [self.rep["flows_created"]])
        for metric, key in (("rstmon_malformed_packets_total", "malformed"),
                            ("rstmon_ignored_packets_total", "ignored")):
            got = sum_by(self.families, metric, "reason")
            self.assertTrue(set(got) <= set(self.rep[key]), got)
            for reason, n in self.rep[key].items():
                self.assertEqual(got.get(reason, 0), n, f"{metric}{{reason={reason}}}")

    def test_build_info(self):
        info = samples(self.families, "rstmon_build_info")
        self.assertEqual(len(info), 1, info)
        self.assertEqual(info[0].value, 1)
        res = pu.run([RSTMON, "--version"], timeout=30)
        self.assertEqual(res.returncode, 0, res.describe())
        m = re.match(r"rstmon (\S+) \((.*)\)", res.stdout)
        self.assertIsNotNone(m, res.stdout)
        self.assertEqual(info[0].labels.get("version"), m.group(1))
        self.assertEqual(info[0].labels.get("dpdk_version"), m.group(2))

    def test_every_sample_has_the_appliance_label(self):
        for f in self.families:
            if f.name in LIBRARY_FAMILIES:
                continue
            for s in f.samples:
                self.assertEqual(s.labels.get("appliance"), APPLIANCE, s)

    def test_metric_names(self):
        names = {f.name for f in self.families}
        self.assertTrue({"rstmon_rst", "rstmon_packets", "rstmon_build_info",
                         "rstmon_flows_active", "rstmon_rst_idle_seconds",
                         "rstmon_rst_flow_age_seconds", "rstmon_flow_table_fill_ratio",
                         "rstmon_config_reloads", "process_start_time_seconds"} <= names, names)
        for f in self.families:
            if f.name in LIBRARY_FAMILIES:
                continue
            # process_start_time_seconds: the standard name Prometheus' process collectors use.
            self.assertTrue(f.name.startswith("rstmon_") or f.name == "process_start_time_seconds",
                            f.name)
            for s in f.samples:
                if f.type == "counter":
                    self.assertTrue(s.name.endswith("_total"), f"counter sample {s.name}")
                else:
                    self.assertFalse(s.name.endswith("_total"), f"{f.type} sample {s.name}")

    def events(self):
        with open(self.events_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def check_histogram(self, name, field, bounds):
        """Bucket by bucket, the histogram equals what the events file says about each RST."""
        evs = self.events()
        self.assertEqual(len(evs), self.rep["rst"])
        by_cause = collections.defaultdict(list)
        for e in evs:
            self.assertIn(field, e, f"event without {field} (every lab RST has a flow): {e}")
            by_cause[e["cause"]].append(e[field])
        got = collections.defaultdict(dict)
        for s in samples(self.families, name + "_bucket"):
            got[s.labels["cause"]][float(s.labels["le"])] = s.value
        self.assertEqual(set(got), set(by_cause))
        for cause, values in by_cause.items():
            want = {(float("inf") if b is None else float(b)):
                    sum(1 for v in values if b is None or v <= b) for b in (*bounds, None)}
            self.assertEqual(got[cause], want, cause)
            count = [s.value for s in samples(self.families, name + "_count")
                     if s.labels["cause"] == cause]
            self.assertEqual(count, [len(values)], cause)
            total = [s.value for s in samples(self.families, name + "_sum")
                     if s.labels["cause"] == cause]
            self.assertEqual(len(total), 1)
            self.assertAlmostEqual(total[0], sum(values), places=3, msg=cause)

    def test_idle_histogram_matches_events(self):
        self.check_histogram("rstmon_rst_idle_seconds", "idle_s",
                             (1, 5, 10, 30, 60, 120, 240, 300, 350, 600, 900, 1800, 3600, 7200))

    def test_age_histogram_matches_events(self):
        self.check_histogram("rstmon_rst_flow_age_seconds", "flow_age_s",
                             (0.001, 0.01, 0.1, 1, 10, 30, 60, 300, 900, 3600, 14400, 86400))
        # The lab's RSTs end flows that lived for milliseconds to seconds, not zero.
        self.assertTrue(any(e["flow_age_s"] > 0 for e in self.events()))

    def test_flow_table_fill_ratio(self):
        # A replay never has more flows than frames: the table configured for 65536 flows is
        # cut to the capture's 174 frames, and no further than the smallest table (1024).
        frames = len(pu.read_pcap(lab_pcap()).records)
        self.assertLess(frames, 1024)
        cap = samples(self.families, "rstmon_flow_table_capacity")
        self.assertEqual([(s.labels["lcore"], s.value) for s in cap], [("worker0", 1024)])
        active = samples(self.families, "rstmon_flows_active")[0].value
        fill = samples(self.families, "rstmon_flow_table_fill_ratio")
        self.assertEqual([s.labels["lcore"] for s in fill], ["worker0"])
        self.assertAlmostEqual(fill[0].value, active / 1024)

    def test_process_start_time_and_reload_gauges(self):
        start = samples(self.families, "process_start_time_seconds")
        self.assertEqual(len(start), 1)
        self.assertGreaterEqual(start[0].value, self.started - 1)
        self.assertLessEqual(start[0].value, time.time())
        self.assertEqual(sum_by(self.families, "rstmon_config_reloads_total", "result"),
                         {"success": 0, "failure": 0})
        ok = samples(self.families, "rstmon_config_last_reload_successful")
        self.assertEqual([s.value for s in ok], [1])
        when = samples(self.families, "rstmon_config_last_reload_success_timestamp_seconds")
        self.assertEqual([s.value for s in when], [start[0].value])

    def test_counters_stable_after_replay(self):
        def counters(body):
            fams = parse_exposition(self, body)
            return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                          for f in fams if f.type == "counter" and f.name.startswith("rstmon_")
                          for s in f.samples)
        first = counters(self.body)
        self.assertTrue(first)
        self.assertEqual(counters(self.body2), first)


class Shutdown(ServeTestCase):

    def test_sigint_exits_0(self):
        server = self.start(duration=60)
        try:
            port = server.port()
            rep = server.report()
            self.assertEqual(rep["rst"], len(lab_truth()))
            self.assertEqual(scrape(port)[0], 200)
            self.assertIsNone(server.proc.poll(), "rstmon must keep serving after the replay")
            started = time.monotonic()
            server.proc.send_signal(signal.SIGINT)
            rc = server.wait(timeout=10)
            self.assertIsNotNone(rc, f"still running 10 s after SIGINT\n{server.describe()}")
            self.assertEqual(rc, 0, server.describe())
            self.assertLess(time.monotonic() - started, 10)
        finally:
            server.kill()

    def test_duration_ends_serving(self):
        server = self.start(duration=2)
        try:
            server.port()
            self.assertEqual(server.report()["rst"], len(lab_truth()))
            rc = server.wait(timeout=30)
            self.assertIsNotNone(rc, f"--duration 2 did not end the run\n{server.describe()}")
            self.assertEqual(rc, 0, server.describe())
        finally:
            server.kill()


if __name__ == "__main__":
    RSTMON, ROOT, rest = pu.take_script_args(sys.argv)
    unittest.main(argv=rest)
