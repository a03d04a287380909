#!/usr/bin/env python3
"""Soak: the benchmark generator's traffic (tests/bench/gen_traffic: thousands of concurrent
connections, each ending with a FIN close or one of 13 RST causes) replayed in a loop by
net_pcap's infinite_rx into a live rstmon for N seconds. Every loop reuses the 4-tuples of the last
one, so connections end, restart on the same tuples and expire all the time (flow churn).

Checked:
- resident memory is flat after warm-up: the median of the last quarter of the run exceeds the
  median of the first quarter after warm-up by less than --rss-slack-mib, and no sample after
  warm-up is more than twice that above the first one;
- counters only grow, at every scrape;
- at the end (report after SIGTERM, every RST final), exact identities:
    rst = sum over causes = over stages = over senders = over validity = RST segments seen
    frames = TCP segments + ignored + malformed (+ SPAN duplicates, when counted)
    RST events written + dropped by the rate limit (+ refused by the disk) = RSTs
    untracked segments <= TCP segments that are not RSTs (tracked = tcp - untracked)
- with an ASan build (--asan): no LeakSanitizer or sanitizer report at exit.

    soak.py --rstmon build/app/rstmon --gen build/tests/bench/gen_traffic [--seconds 600]
            [--workers 1] [--json figures.json] [--keep DIR]

Default 600 s (run by hand, not in CI); meson runs a 60 s version (suite hardening) and, in a
sanitized build dir, a 10 s one under LeakSanitizer (suite dpdk, which tests/sanitize.sh runs).
Exit status 0 pass, 1 fail, 77 skip.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

COUNTERS = ("rstmon_packets_total", "rstmon_tcp_packets_total", "rstmon_rst_total",
            "rstmon_flows_created_total", "rstmon_connections_total",
            "rstmon_malformed_packets_total", "rstmon_ignored_packets_total")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rstmon", required=True)
    ap.add_argument("--gen", required=True, help="tests/bench/gen_traffic")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before memory must be flat (default: a quarter, 10-60 s)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--flows", type=int, default=10000)
    ap.add_argument("--packets", type=int, default=200000)
    ap.add_argument("--table", type=int, default=16384, help="flow_table.size")
    ap.add_argument("--rss-slack-mib", type=float, default=8)
    ap.add_argument("--asan", action="store_true",
                    help="rstmon is an ASan/LSan build: fail on any sanitizer report at exit")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", help="keep the work files in this directory")
    return ap.parse_args()


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def soak(a, work):
    pcap = os.path.join(work, "soak.pcap")
    gen = subprocess.run([a.gen, "--out", pcap, "--flows", str(a.flows), "--packets",
                          str(a.packets), "--seed", "23", "--finish"],
                         capture_output=True, text=True, timeout=300)
    check(gen.returncode == 0, f"gen_traffic failed: {gen.stderr}")
    frames = len(h.pu.read_pcap(pcap).records)
    events = os.path.join(work, "events.jsonl")
    # A table smaller than the 4-tuples of one loop (about 23 000) but above the connections open
    # at once (--flows): every loop evicts the closed flows of the last one for new SYNs, and
    # short timeouts expire what goes quiet. 64-byte frames fit 128-byte mbufs, and infinite_rx
    # keeps the whole capture in the pool.
    cfg = h.write(os.path.join(work, "soak.yaml"),
                  f'ports: [{{name: p0, device: "net_pcap_soak0,rx_pcap={pcap},infinite_rx=1"}}]\n'
                  f'metrics: {{listen: "127.0.0.1:0"}}\n'
                  f"workers: {a.workers}\n"
                  f"rx: {{mbufs: {2 * frames + 8191}, mbuf_size: 256}}\n"
                  f"flow_table: {{size: {a.table}, handshake_timeout: 2s, established_timeout: 5s,"
                  " closing_timeout: 3s}\n"
                  # 100 events/s: 600 s fit the kept files (none deleted), so the event
                  # count is exact; the rest is dropped by the rate limit, and counted.
                  f"events: {{path: {events}, max_per_second: 100, burst: 100,"
                  " max_file_size: 8MiB, max_files: 20}\n")
    live = h.Live(a.rstmon, ["--config", cfg, "--report", "json"], work)
    launched = time.monotonic()
    warmup = a.warmup if a.warmup is not None else min(60.0, max(10.0, a.seconds / 4))
    rss, last, slowest = [], {}, 0.0
    try:
        h.poll(lambda: h.metric(live.samples(), "rstmon_packets_total") > 0, 120,
               "rstmon replaying")
        t0 = time.monotonic()
        while time.monotonic() - t0 < a.seconds:
            check(live.alive(), "rstmon exited during the soak\n" + live.describe())
            ts = time.monotonic()
            samples = live.samples()
            slowest = max(slowest, time.monotonic() - ts)
            for name in COUNTERS:
                v = h.metric(samples, name)
                check(v >= last.get(name, 0), f"{name} went down: {last.get(name)} -> {v}")
                last[name] = v
            if time.monotonic() - t0 >= warmup:
                rss.append(h.vmrss_kib(live.pid))
            time.sleep(1.0)  # the memory curve's sampling period
        live.signal(signal.SIGTERM)
        rc = live.wait(timeout=60)
        ran_s = time.monotonic() - launched
    finally:
        live.kill()
    err = live.stderr()
    check(rc == 0, f"rstmon exit status {rc}\n{live.describe()}")
    if a.asan:
        for word in ("LeakSanitizer", "AddressSanitizer", "runtime error:"):
            check(word not in err, f"sanitizer report at exit:\n{err[-6000:]}")
    rep = h.report_of(live.stdout())

    # Exact identities over the final counters.
    rst = rep["rst"]
    for key in ("causes", "stages", "senders", "validity"):
        check(sum(rep[key].values()) == rst, f"sum over {key} {sum(rep[key].values())} != {rst}")
    check(rep["rst_packets"] == rst, f"RST segments {rep['rst_packets']} != RSTs counted {rst}")
    classified = (rep["tcp_packets"] + sum(rep["malformed"].values()) +
                  sum(rep["ignored"].values()) + rep.get("duplicates", 0))
    check(rep["packets"] == classified, f"frames {rep['packets']} != tcp + ignored + malformed"
                                        f" (+ duplicates) {classified}")
    check(rep["untracked_packets"] <= rep["tcp_packets"] - rep["rst_packets"],
          "untracked segments beyond the non-RST segments")
    written, files = 0, 0
    for name in os.listdir(work):  # events.jsonl and its rotated events.N.jsonl
        if name.startswith("events") and name.endswith(".jsonl"):
            files += 1
            with open(os.path.join(work, name)) as f:
                for line in f:
                    json.loads(line)  # whole lines only
                    written += 1
    check(files <= 21, f"{files} event files: rotation kept more than max_files")
    check(written + rep["events_dropped"] + rep["event_write_errors"] == rst,
          f"events written {written} + dropped {rep['events_dropped']} + refused "
          f"{rep['event_write_errors']} != RSTs {rst}")
    check(rep["event_write_errors"] == 0, f"event write errors: {rep['event_write_errors']}")

    # Memory flat after warm-up. (Not under ASan: its quarantine holds freed memory on purpose;
    # LeakSanitizer's verdict at exit is the check there.)
    check(len(rss) >= 4, f"too few memory samples after warm-up: {rss}")
    q = max(1, len(rss) // 4)
    early, late = statistics.median(rss[:q]), statistics.median(rss[-q:])
    slack = a.rss_slack_mib * 1024
    if not a.asan:
        check(late - early < slack, f"VmRSS grew {(late - early) / 1024:.1f} MiB after warm-up "
                                    f"(first quarter median {early / 1024:.1f} MiB, last "
                                    f"{late / 1024:.1f} MiB)")
        check(max(rss) - rss[0] < 2 * slack, f"VmRSS peaked {(max(rss) - rss[0]) / 1024:.1f} "
                                             "MiB above its first sample after warm-up")
    return {
        "seconds": a.seconds, "warmup_s": warmup, "workers": a.workers,
        "capture_frames": frames, "frames": rep["packets"], "rst": rst,
        "flows_created": rep["flows_created"], "connections": rep["connections"],
        "flows_evicted": rep["flows_evicted"], "untracked_packets": rep["untracked_packets"],
        "events_written": written, "event_files": files, "events_dropped": rep["events_dropped"],
        "vmrss_mib": {"first": rss[0] / 1024, "min": min(rss) / 1024, "max": max(rss) / 1024,
                      "early_median": early / 1024, "late_median": late / 1024,
                      "samples": len(rss)},
        "slowest_scrape_ms": round(slowest * 1000),
        "ran_s": round(ran_s, 1), "frames_per_s": round(rep["packets"] / ran_s),
    }


def main():
    a = parse_args()
    for exe in (a.rstmon, a.gen):
        if not os.access(exe, os.X_OK):
            print(f"soak: {exe} is not an executable", file=sys.stderr)
            return 1
    work = a.keep or tempfile.mkdtemp(prefix="rstmon-soak-")
    os.makedirs(work, exist_ok=True)
    try:
        figures = soak(a, work)
    except (Failed, AssertionError) as e:
        print(f"soak: FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=2)
    print("soak: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
