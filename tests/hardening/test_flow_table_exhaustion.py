#!/usr/bin/env python3
"""Flow-table exhaustion: a SYN flood of 10x the table (random sources) while real connections
run. The bundled capture's 24 connections are interleaved with the flood, and one more
connection, established before the flood, stays silent through all of it and is then aborted by
its server (a linger_abort). With the table full from the first lab frame on:

- every real connection keeps being tracked and every RST gets its true cause (the truth file;
  the silent connection's abort is linger_abort, not no_state: a flood SYN pushes out another
  half-open flow, never a live connection);
- evictions are counted exactly (flows created - table size), every refused mid-stream packet
  of an unknown flow is counted as untracked, and each time the table was full is counted;
- evicted flows end as outcome `evicted`, never as `idle_expired` or `handshake_timeout`.

With one worker and with two behind the software dispatcher (each worker's table full).

Usage: test_flow_table_exhaustion.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import collections
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import unittest

import harness as h

pu = h.pu
RSTMON = ROOT = None
TABLE = 1024          # flow_table.size (per worker): the smallest the config allows
FLOOD = 10 * TABLE    # SYNs from random sources
STRAY_ACKS = 500      # mid-stream segments of flows nobody saw start, sent once tables are full
SILENT = ("10.50.0.1", 40000, "10.50.0.2", 5000)  # client ip, port, server ip, port


def frame(src, sport, dst, dport, flags, seq, ack=0, payload=b"", ttl=64):
    return pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(sport, dport, seq, ack, flags, payload=payload),
                                       src=src, dst=dst, ttl=ttl))


def silent_connection():
    """Handshake and one exchange (before the flood), then the server's abort (after it)."""
    c, cp, s, sp = SILENT
    S, A, P, R = pu.TCP_SYN, pu.TCP_ACK, pu.TCP_PSH, pu.TCP_RST
    before = [frame(c, cp, s, sp, S, 1000),
              frame(s, sp, c, cp, S | A, 5000, 1001),
              frame(c, cp, s, sp, A, 1001, 5001),
              frame(c, cp, s, sp, P | A, 1001, 5001, b"GET /long\r\n"),
              frame(s, sp, c, cp, A, 5001, 1012),
              frame(s, sp, c, cp, P | A, 5001, 1012, b"HTTP/1.0 200 OK\r\n\r\n"),
              frame(c, cp, s, sp, A, 1012, 5020)]
    # The server aborts at its own next sequence number, nothing of the client's unanswered.
    after = [frame(s, sp, c, cp, R | A, 5020, 1012)]
    return before, after


def build_capture(path, seed=11):
    """Lab frames interleaved with the flood; returns the number of stray ACKs written."""
    rng = random.Random(seed)
    lab = pu.read_pcap(os.path.join(ROOT, "tests", "data", "rst-lab.pcap"))
    t0 = lab.records[0].ts_sec * 1_000_000 + lab.records[0].ts_frac
    out = []
    now = [t0 - 200_000]  # µs; the flood's first part comes 0.2 s before the lab's first frame

    def put(data, at=None):
        if at is not None:
            now[0] = max(now[0], at)
        out.append(pu.Record(now[0] // 1_000_000, now[0] % 1_000_000, data))
        now[0] += 1  # 1 µs apart: order is capture order, nothing reaches a timeout

    def flood_syn():
        src = f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        put(frame(src, rng.randrange(1024, 65536), "192.0.2.80", 80, pu.TCP_SYN,
                  rng.randrange(1 << 32)))

    def stray_ack():
        src = f"198.18.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        put(frame(src, rng.randrange(1024, 65536), "192.0.2.81", 443, pu.TCP_ACK,
                  rng.randrange(1 << 32), rng.randrange(1 << 32)))

    before, after = silent_connection()
    for f in before:
        put(f)
    # Fill every table (two workers: the flood hashes over both) before the lab starts.
    first = 4 * TABLE
    for _ in range(first):
        flood_syn()
    acks = 0
    rest = FLOOD - first
    per_gap = rest // len(lab.records)
    for i, rec in enumerate(lab.records):
        put(rec.data, rec.ts_sec * 1_000_000 + rec.ts_frac)
        n = per_gap if i + 1 < len(lab.records) else rest - per_gap * (len(lab.records) - 1)
        for k in range(n):
            flood_syn()
            if acks < STRAY_ACKS and k % 20 == 0:
                stray_ack()
                acks += 1
    while acks < STRAY_ACKS:
        stray_ack()
        acks += 1
    for f in after:
        put(f)
    pu.write_pcap(path, pu.LINKTYPE_ETHERNET, out)
    return acks


def lab_truth():
    with open(os.path.join(ROOT, "tests", "data", "rst-lab.truth.tsv"), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


class FlowTableExhaustion(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-exhaust-")
        cls.pcap = os.path.join(cls.tmp, "flood.pcap")
        cls.acks = build_capture(cls.pcap)
        cls.frames = len(pu.read_pcap(cls.pcap).records)
        cls.cfg = h.write(os.path.join(cls.tmp, "cfg.yaml"), f"flow_table: {{size: {TABLE}}}\n")
        cls.runs = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_replay(self, workers):
        if workers not in self.runs:
            events = os.path.join(self.tmp, f"events-{workers}.jsonl")
            res = pu.run([RSTMON, "--config", self.cfg, "--pcap", self.pcap, "--workers",
                          str(workers), "--report", "json", "--events", events], timeout=180)
            self.assertEqual(res.returncode, 0, res.describe())
            with open(events) as f:
                evs = [json.loads(line) for line in f]
            self.runs[workers] = (h.report_of(res.stdout), evs, res.stderr)
        return self.runs[workers]

    def check(self, workers):
        rep, events, stderr = self.run_replay(workers)
        truth = lab_truth()
        # Every frame analysed; the flood really overflowed the table(s).
        self.assertEqual(rep["packets"], self.frames)
        lab_flows, silent_flows = 24, 1
        created = rep["flows_created"]
        self.assertEqual(created, lab_flows + silent_flows + FLOOD)
        capacity = TABLE * workers
        # Nothing expires within the capture's second: every flow beyond the capacity was one
        # eviction, every refused segment one untracked packet, each a "table full" moment.
        self.assertEqual(rep["flows_evicted"], created - capacity)
        self.assertEqual(rep["untracked_packets"], self.acks)
        self.assertEqual(rep["flow_table_full"], rep["flows_evicted"] + rep["untracked_packets"])
        # A replay can be run again with a bigger table: it says so (exit status still 0).
        self.assertIn(f"rstmon: warning: the flow table was full during the replay "
                      f"({rep['flows_evicted']} flows evicted, {self.acks} packets untracked; "
                      f"their RSTs may read no_state): flow_table.size {TABLE} per worker is too "
                      f"small for this capture\n", stderr)

        # Every RST of a real connection classified as without the flood.
        by_tuple = {(r["src"], int(r["sport"]), r["dst"], int(r["dport"])): r["cause"]
                    for r in truth}
        c, cp, s, sp = SILENT
        by_tuple[(s, sp, c, cp)] = "linger_abort"
        got = {(e["src"], e["sport"], e["dst"], e["dport"]): e["cause"] for e in events}
        self.assertEqual(len(events), len(by_tuple), "one event per RST")
        self.assertEqual(got, by_tuple)
        silent = next(e for e in events if (e["src"], e["sport"]) == (s, sp))
        self.assertEqual((silent["stage"], silent["sender"], silent["validity"]),
                         ("later_in_flow", "server", "exact"), silent)
        want = collections.Counter(by_tuple.values())
        self.assertEqual({k: v for k, v in rep["causes"].items() if v}, dict(want))
        self.assertEqual(rep["causes"]["no_state"], 0)

        # Outcomes: the real connections end as they did (fin/rst, evicted or not); the flood's
        # half-open flows that were pushed out are `evicted`; nothing timed out.
        conns = rep["connections"]
        self.assertEqual(conns["fin"], 6)
        self.assertEqual(conns["rst"], 19)
        self.assertEqual(conns["idle_expired"], 0)
        self.assertEqual(conns["handshake_timeout"], 0)
        # Evicted flows that had closed keep their fin/rst outcome (at most the 25 real ones).
        self.assertLessEqual(conns["evicted"], rep["flows_evicted"])
        self.assertGreaterEqual(conns["evicted"], rep["flows_evicted"] - lab_flows - silent_flows)
        return rep

    def test_one_worker(self):
        self.check(1)

    def test_two_workers_behind_the_dispatcher(self):
        self.check(2)


if __name__ == "__main__":
    RSTMON, ROOT, argv = pu.take_script_args(sys.argv)
    unittest.main(argv=argv, verbosity=2)
