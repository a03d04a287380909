#!/usr/bin/env python3
"""RST storm at full replay rate: every frame an RST of its own random 4-tuple (100 000 of them,
replayed in a loop by net_pcap's infinite_rx, live, as fast as one worker takes them).

- memory stays bounded: resident memory flat after warm-up (lone RSTs create no flow; every
  per-RST structure, events, the top summary, host TTLs, is bounded);
- every RST is counted as no_state, and every one is accounted for: events written + events
  dropped by the rate limit = RSTs counted = RST segments seen;
- a scrape during the storm answers within 1 s (a functional SLA of the metrics endpoint, with
  the worker lcore spinning at full rate beside it).

Usage: test_rst_storm.py RSTMON_EXE SOURCE_ROOT [--seconds N] [unittest args]
"""

import os
import random
import shutil
import signal
import sys
import tempfile
import time
import unittest

import harness as h

pu = h.pu
RSTMON = ROOT = None
SECONDS = 12           # storm length (after warm-up)
WARMUP_S = 4
RSTS = 100_000
RSS_SLACK_KIB = 8 * 1024  # growth allowed after warm-up: allocator noise, not a leak
SCRAPE_SLA_S = 1.0


def storm_pcap(path, n, seed=5):
    rng = random.Random(seed)
    recs = []
    seen = set()
    while len(recs) < n:
        src = (rng.randrange(1, 224), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
        sport, dport = rng.randrange(1024, 65536), rng.choice((80, 443, 8080, 25, 53, 3306))
        if (src, sport, dport) in seen:
            continue
        seen.add((src, sport, dport))
        flags = pu.TCP_RST | (pu.TCP_ACK if rng.random() < 0.5 else 0)
        data = pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(sport, dport, rng.randrange(1 << 32),
                                                  rng.randrange(1 << 32), flags),
                                           src=".".join(map(str, src)), dst="203.0.113.9",
                                           ttl=rng.choice((52, 60, 64, 117, 128, 250))))
        i = len(recs)
        recs.append(pu.Record(1_700_000_000 + i // 1_000_000, i % 1_000_000, data))
    pu.write_pcap(path, pu.LINKTYPE_ETHERNET, recs)


class RstStorm(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-storm-")
        cls.pcap = os.path.join(cls.tmp, "storm.pcap")
        storm_pcap(cls.pcap, RSTS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_storm(self):
        events = os.path.join(self.tmp, "events.jsonl")
        # 54-byte frames fit 128-byte mbufs: infinite_rx keeps the whole capture in the pool.
        cfg = h.write(os.path.join(self.tmp, "cfg.yaml"),
                      f'ports: [{{name: p0, device: "net_pcap_storm0,rx_pcap={self.pcap},'
                      f'infinite_rx=1"}}]\n'
                      f'metrics: {{listen: "127.0.0.1:0"}}\n'
                      f"rx: {{mbufs: {2 * RSTS - 1}, mbuf_size: 256}}\n"
                      "flow_table: {size: 65536}\n"
                      f"events: {{path: {events}, max_per_second: 2000, burst: 2000}}\n")
        live = h.Live(RSTMON, ["--config", cfg, "--report", "json"], self.tmp)
        try:
            self.storm(live, events)
        finally:
            live.kill()

    def storm(self, live, events):
        scrape_times, rss = [], []

        def timed_scrape():
            t0 = time.monotonic()
            samples = live.samples()
            scrape_times.append(time.monotonic() - t0)
            return samples

        h.poll(lambda: h.metric(timed_scrape(), "rstmon_rst_total") > 0, 60, "the storm")
        t_start = time.monotonic()
        first_rst = None
        while time.monotonic() - t_start < WARMUP_S + SECONDS:
            samples = timed_scrape()
            if time.monotonic() - t_start >= WARMUP_S:
                rss.append(h.vmrss_kib(live.pid))
                if first_rst is None:
                    first_rst = h.metric(samples, "rstmon_rst_total")
            time.sleep(0.25)  # sampling period of the memory curve, not a wait for a condition
        samples = timed_scrape()
        rst_now = h.metric(samples, "rstmon_rst_total")
        no_state = h.metric(samples, "rstmon_rst_total", cause="no_state")
        self.assertEqual(no_state, rst_now, "every lone RST is no_state")
        self.assertGreater(rst_now - first_rst, 10 * RSTS, "the storm kept going")
        self.assertEqual(h.metric(samples, "rstmon_flows_active"), 0)

        live.signal(signal.SIGTERM)
        self.assertEqual(live.wait(30), 0, live.describe())
        rep = h.report_of(live.stdout())
        with open(events) as f:
            written = sum(1 for _ in f)
        self.assertEqual(rep["rst"], rep["rst_packets"])
        self.assertEqual(rep["causes"]["no_state"], rep["rst"])
        self.assertEqual(written + rep["events_dropped"], rep["rst"], "an RST event lost unseen")
        self.assertEqual(rep["event_write_errors"], 0)

        growth = max(rss) - min(rss)
        print(f"storm: {rep['rst']} RSTs in {WARMUP_S + SECONDS} s, {written} events written, "
              f"{rep['events_dropped']} dropped by the rate limit; VmRSS {min(rss) // 1024}-"
              f"{max(rss) // 1024} MiB after warm-up ({len(rss)} samples); scrapes: "
              f"{len(scrape_times)}, slowest {max(scrape_times) * 1000:.0f} ms")
        self.assertLess(growth, RSS_SLACK_KIB, f"VmRSS grew {growth} KiB during the storm: {rss}")
        self.assertLess(max(scrape_times), SCRAPE_SLA_S, f"scrape times: {scrape_times}")


if __name__ == "__main__":
    RSTMON, ROOT, argv = pu.take_script_args(sys.argv)
    if "--seconds" in argv:
        i = argv.index("--seconds")
        SECONDS = int(argv[i + 1])
        del argv[i:i + 2]
    unittest.main(argv=argv, verbosity=2)
