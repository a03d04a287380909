#!/usr/bin/env python3
"""rstmon's benchmark, in one go (timing, not a pass/fail test):

  1. gen_traffic writes a deterministic capture of mirrored TCP traffic (--flows concurrent
     connections, --packets, --size 64|imix, every RST cause in a realistic share) with --finish:
     the connections still open after --packets are run to their end, so every scripted RST cause
     is in the file (the file holds more frames than --packets; its real count is used). It also
     writes an RST storm (gen_traffic --rst-storm: every frame a bare RST or RST+ACK of a random
     4-tuple, 64 bytes, as many frames as the main file, so both fill the same mbuf pool) and, for
     the offline comparison, a second, smaller capture (--offline-flows 200000 flows, 4 packets
     each, --finish);
  2. the I/O ceiling: dpdk-testpmd --forward-mode=rxonly on net_pcap with infinite_rx=1;
  3. rstmon with N workers for each N of --workers (default 1,2) on the same vdev and input, rate
     from two scrapes of its own metrics endpoint after a warm-up; per lcore: the busy share over
     the measured window (from rstmon_lcore_busy_ratio, which is since start), the flows in its
     table, and its Mpps (rstmon_lcore_packets_total; for an older rstmon without it, estimated
     as the total times the worker's share of the flows, printed with a ~). Lcore i runs on CPU
     i modulo the CPU count: with fewer CPUs than lcores (main, dispatcher, workers) they share
     CPUs, and the N-worker and dispatcher figures say little;
  4. rstmon 1 worker on the RST storm, the same way: its Mpps and storm/normal (target >= 0.8x);
  5. the software dispatcher's ceiling: rstmon with --bench-dispatch-only and 1 worker, which
     the dispatcher then feeds as an RX lcore (the worker counts and frees every frame
     unprocessed, so rstmon_packets_total counts what the dispatcher parsed, hashed and enqueued; frames it found a full worker ring for are printed beside it):
     its Mpps, and how many 1-worker rates that is ("software dispatch can feed ~X workers"). An
     rstmon without the flag is reported as an error entry, the rest goes on;
  6. what users would otherwise run on the same file: tcpdump with an RST filter (stateless),
     argus (stateful flow records) and tshark dissecting RSTs (on a prefix of the file: it is slow);
  7. offline: `rstmon --pcap FILE --report json` (1 worker, the flow table sized for every
     connection of the file) against `tcpdump -nr FILE -w /dev/null 'tcp[tcpflags] & tcp-rst != 0'`
     on the main capture and the smaller one: seconds of each and rstmon/tcpdump. The figure is
     flagged invalid unless rstmon's report counts every frame of the file and some RSTs;
  8. memory per flow from the allocator: `bench_micro --memory-per-flow N` (N = --memory-flows,
     default 1M) creates one FlowTable of N flows and divides what DPDK's heap gave it (index
     buckets, key lines, free-position stack and records) by N, next to
     FlowTable::bytes_per_flow() (the formula `rstmon --version` prints); target <= 128 bytes.

Printed: the side-by-side table (Mpps, rstmon 1 worker / tool, peak RSS), the per-lcore rates of
each N-worker run, RSTs by cause (scripted by gen_traffic; counted by the offline replay, once
through the file; counted by the live 1-worker run, rstmon_rst_total{cause} since start: the file
loops), the offline timings, memory per flow, and a summary of the ratios. JSON with everything
on stdout's last line and in --json. Ratios are taken against figures measured in the same run,
so they mean more than the absolute numbers on a shared machine.

  /usr/bin/python3 tests/bench/run_bench.py --build build [--flows 1000000] [--packets N]
      [--size 64] [--seconds 10] [--workers 1,2] [--offline-flows 200000]
      [--memory-flows 1000000] [--json out.json] [--smoke]

--smoke (CI, meson suite 'bench', seconds): the same steps on tiny inputs for a second each. It
fails when a tool gave no figure, or any rstmon run processed nothing or saw no RST (the normal,
storm and offline runs; the dispatcher-only run must count frames when this rstmon has the
flag), or the memory measurement did not run. Timing is never asserted.

With --match, only the cost of services by SNI/Host instead: the 1-worker rstmon on traffic whose
first requests name servers (gen_traffic --names 1000; every connection runs to its end, so every
pass decides the service of each), with 0, 10 and 1000 sni/host patterns in its config, the
points in turn, each --repeat times. Printed: the best Mpps, the least CPU time per packet (perf
stat task-clock of the process: unlike Mpps it does not drop when a shared machine's other jobs
take the CPU), and the services decided per second:

  /usr/bin/python3 tests/bench/run_bench.py --build build --match [--flows 20000]
      [--packets 1000000] [--seconds 5] [--repeat 3]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

DPDK_LOG = "--log-level=4"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cpu_mhz():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except OSError:
        pass
    return 0.0


def free_huge_mb():
    try:
        mounted = any(" hugetlbfs " in l for l in open("/proc/mounts"))
        info = dict(l.split(":", 1) for l in open("/proc/meminfo"))
        free = int(info["HugePages_Free"].split()[0]) * int(info["Hugepagesize"].split()[0]) // 1024
        return free if mounted else 0
    except (OSError, KeyError, ValueError):
        return 0


def mem_args(need_mb, prefix):
    if free_huge_mb() >= need_mb + 64:
        return ["--in-memory", "--file-prefix", prefix]
    return ["--no-huge", "-m", str(need_mb), "--no-shconf"]


def interrupt(p, timeout):
    """Ctrl-C for a child's whole process group, SIGKILL if it does not end in time (a child
    that has already exited, e.g. on a usage error, is only reaped)."""
    try:
        os.killpg(p.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.communicate()


def timed(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd under /usr/bin/time -v: (seconds, peak RSS in KiB)."""
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=stdout, stderr=subprocess.PIPE,
                       text=True, timeout=3600)
    dt = time.monotonic() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-500:]}")
    return dt, int(m.group(1)) if m else 0


def mbuf_plan(packets, size, room=None):
    if room is None:
        room = 256 if size == "64" else 2176  # data room incl. 128 bytes headroom
    mbufs = packets + 65536
    elt = room + 128 + 64 + 64  # room + struct rte_mbuf + mempool header + slack
    need_mb = 256 + mbufs * elt // (1 << 20)
    return room, mbufs, need_mb


def run_testpmd(pcap, packets, size, seconds):
    exe = shutil.which("dpdk-testpmd")
    if not exe:
        return {"error": "dpdk-testpmd not installed (Debian package dpdk-dev)"}
    room, mbufs, need_mb = mbuf_plan(packets, size)
    cmd = [exe, "-l", "0-1", "--no-pci", DPDK_LOG, "--no-telemetry",
           "--vdev", f"net_pcap_tp0,rx_pcap={pcap},infinite_rx=1"] + mem_args(need_mb, "tpbench") + [
        "--", "--forward-mode=rxonly", f"--total-num-mbufs={mbufs}", f"--mbuf-size={room}",
        "--stats-period=1", "--nb-cores=1", "--rxq=1", "--txq=1"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    rates = []
    deadline = time.monotonic() + seconds + 120
    try:
        for line in p.stdout:
            m = re.search(r"Rx-pps:\s+(\d+)", line)
            if m:
                rates.append(int(m.group(1)))
                if len(rates) >= seconds + 2:
                    break
            if time.monotonic() > deadline:
                break
    finally:
        interrupt(p, 20)
    steady = [r for r in rates[2:] if r > 0] or [r for r in rates if r > 0]
    if not steady:
        return {"error": "testpmd reported no rate"}
    return {"mpps": sum(steady) / len(steady) / 1e6}


def timed_output(cmd):
    """Runs cmd under /usr/bin/time -v: (seconds, peak RSS in KiB, stdout)."""
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=3600)
    dt = time.monotonic() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    if r.returncode != 0:
        err = "\n".join(l for l in r.stderr.splitlines() if not l.startswith(("\t", "Command ")))
        raise RuntimeError(f"{os.path.basename(cmd[0])} failed ({r.returncode}): "
                           f"{err[-500:].strip()}")
    return dt, int(m.group(1)) if m else 0, r.stdout


def scrape_series(port):
    """Every sample of the metrics endpoint: {name: [(labels dict, value)]} (NaN/Inf skipped)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    series = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"(\w+)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        if v != v or v in (float("inf"), float("-inf")):
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        series.setdefault(m.group(1), []).append((labels, v))
    return series


def total(series, name):
    return sum(v for _, v in series.get(name, ()))


def by_label(series, name, label):
    """{label value: sum of the samples} of one family."""
    out = {}
    for labels, v in series.get(name, ()):
        if label in labels:
            out[labels[label]] = out.get(labels[label], 0.0) + v
    return out


# Per-lcore packet counts (rstmon_lcore_packets_total{lcore}; an older rstmon without it gets
# the flow-share estimate).
PER_LCORE_PACKETS = ("rstmon_lcore_packets_total",)


def per_lcore(a, b, ta, tb, t_start, mpps):
    """Per-lcore figures of the window between scrapes a and b. The busy ratio rstmon exports is
    since the lcore started (poll cycles grow with wall time: it busy-polls), so the window's is
    (rb * (tb - t0) - ra * (ta - t0)) / (tb - ta), t0 = when it came up."""
    ra = by_label(a, "rstmon_lcore_busy_ratio", "lcore")
    rb = by_label(b, "rstmon_lcore_busy_ratio", "lcore")
    flows = {}
    for labels, fill in b.get("rstmon_flow_table_fill_ratio", ()):
        cap = by_label(b, "rstmon_flow_table_capacity", "lcore").get(labels.get("lcore"), 0)
        flows[labels.get("lcore")] = fill * cap
    counted = None
    for fam in PER_LCORE_PACKETS:
        pa, pb = by_label(a, fam, "lcore"), by_label(b, fam, "lcore")
        if pb:
            counted = {k: (pb[k] - pa.get(k, 0.0)) / (tb - ta) / 1e6 for k in pb}
            break
    all_flows = sum(flows.values())
    out = {}
    for lc in sorted(set(rb) | set(flows) | set(counted or {}),
                     key=lambda s: (s == "dispatch", len(s), s)):
        d = {}
        if lc in rb:
            w = ((rb[lc] * (tb - t_start) - ra.get(lc, 0.0) * (ta - t_start)) / (tb - ta)
                 if tb > ta else rb[lc])
            d["busy_window"] = min(max(w, 0.0), 1.0)
            d["busy_since_start"] = rb[lc]
        if lc in flows:
            d["flows"] = int(flows[lc])
        if counted is not None and lc in counted:
            d["mpps"] = counted[lc]
        elif lc in flows and all_flows > 0:
            d["mpps_est_by_flow_share"] = mpps * flows[lc] / all_flows
        out[lc] = d
    return out


def lcore_map(workers, rx_lcore=False):
    """--lcores for rstmon: the main lcore, then (2+ workers, or an RX lcore) the software
    dispatcher, then the workers, lcore i on CPU i modulo the CPU count (one CPU each where there
    are enough). With 2 CPUs and an RX lcore: main and worker on CPU 0, the dispatcher alone."""
    n = 1 + workers + (1 if workers > 1 or rx_lcore else 0)
    return ",".join(f"{i}@{i % os.cpu_count()}" for i in range(n))


def run_rstmon(rstmon, pcap, packets, flows, size, workers, seconds, tmp, extra="", room=None,
               cpu_time=False, cli=(), tag=""):
    room, mbufs, need_mb = mbuf_plan(packets, size, room)
    table = max(1024, int(flows * 1.3 / workers) + 1024)
    cfg = os.path.join(tmp, f"bench-{workers}{tag}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""ports: [{{name: bench, device: "net_pcap_rb{workers},rx_pcap={pcap},infinite_rx=1"}}]
workers: {workers}
rx: {{mbufs: {mbufs}, mbuf_size: {room}, burst: 32}}
flow_table: {{size: {table}}}
metrics: {{listen: "127.0.0.1:0"}}
log_level: info
""" + extra)
    need_mb += workers * table * 400 // (1 << 20)
    rx_lcore = "--bench-dispatch-only" in cli and workers == 1
    eal = [f"--lcores={lcore_map(workers, rx_lcore)}", "--no-pci", DPDK_LOG, "--no-telemetry"] + mem_args(
        need_mb, f"rsbench{workers}")
    p = subprocess.Popen([rstmon, "--config", cfg, "--duration", str(seconds + 60), "--report", "json"]
                         + list(cli) + ["--"] + eal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    port = None
    seen = []  # its stderr until the metrics line: the reason when it exits early
    try:
        deadline = time.monotonic() + 300
        while port is None and time.monotonic() < deadline:
            line = p.stderr.readline()
            if not line:
                if p.poll() is not None:
                    said = "".join(seen[-20:]) + p.stderr.read()
                    raise RuntimeError(f"rstmon exited early ({p.returncode}): "
                                       + said[-300:].strip().replace("\n", " / "))
                continue
            seen.append(line)
            m = re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", line)
            if m:
                port = int(m.group(1))
        if port is None:
            raise RuntimeError("rstmon did not come up")
        t_start = time.monotonic()  # the lcores start polling right after this line
        # Warm up (the flow table fills), then measure between two scrapes.
        time.sleep(2)
        a, ta = scrape_series(port), time.monotonic()
        cpu_ms = None
        if cpu_time and shutil.which("perf"):
            # CPU time the process spent (its threads, while they ran): unlike the wall-clock
            # rate, it does not grow when other work on a shared machine takes the CPU away.
            st = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "-p", str(p.pid),
                                 "--", "sleep", str(seconds)], capture_output=True, text=True)
            m = re.search(r"^([0-9.]+),msec,task-clock", st.stderr, re.M)
            cpu_ms = float(m.group(1)) if m else None
        else:
            time.sleep(seconds)
        b, tb = scrape_series(port), time.monotonic()
        try:
            with open(f"/proc/{p.pid}/status") as st:
                hwm = int(re.search(r"VmHWM:\s+(\d+)", st.read()).group(1))
        except OSError:
            hwm = 0
        pps = (total(b, "rstmon_packets_total") - total(a, "rstmon_packets_total")) / (tb - ta)
        # Flows whose service was decided from their first payload (--match runs), per second.
        ident = (total(b, "rstmon_service_identified_total") -
                 total(a, "rstmon_service_identified_total")) / (tb - ta)
        dropped_pps = (total(b, "rstmon_dispatch_dropped_total") -
                       total(a, "rstmon_dispatch_dropped_total")) / (tb - ta)
        causes = {c: int(v) for c, v in sorted(by_label(b, "rstmon_rst_total", "cause").items())}
        return {"mpps": pps / 1e6, "packets": int(total(b, "rstmon_packets_total")),
                "flows_tracked": int(total(b, "rstmon_flows_active")),
                "rst_seen": int(total(b, "rstmon_rst_total")), "rst_by_cause": causes,
                "peak_rss_mb": hwm / 1024,
                "busy_ratio_sum": total(b, "rstmon_lcore_busy_ratio"),
                "lcores": per_lcore(a, b, ta, tb, t_start, pps / 1e6),
                "dispatch_dropped": int(total(b, "rstmon_dispatch_dropped_total")),
                # Frames the dispatcher handed to a full worker ring in the window (live: lost).
                "dispatch_dropped_mpps": dropped_pps / 1e6,
                "nic_rx_nombuf": int(total(b, "rstmon_nic_rx_nombuf_total")),
                "identified_per_s": ident,
                # All threads: the busy-polling worker, and the main thread (mostly asleep).
                "cpu_ns_per_packet": cpu_ms * 1e6 / (pps * (tb - ta)) if cpu_ms and pps else None}
    finally:
        interrupt(p, 60)


def run_offline(rstmon, pcap, info, tmp, tag):
    """rstmon --pcap FILE --report json, timed; checked against the file's frame count."""
    table = max(1024, int(info.get("connections", info["packets"]) * 1.1) + 1024)
    cfg = os.path.join(tmp, f"offline-{tag}.yaml")
    with open(cfg, "w") as f:
        f.write(f"workers: 1\nflow_table: {{size: {table}}}\nmetrics: {{enabled: false}}\n"
                "log_level: warning\n")
    # As a user runs it: rstmon's own EAL arguments (memory, and an RX lcore beside the worker
    # when there is a CPU to spare).
    dt, rss, out = timed_output([rstmon, "--pcap", pcap, "--config", cfg, "--report", "json"])
    rep = json.loads(out)
    res = {"seconds": dt, "mpps": rep.get("packets", 0) / dt / 1e6, "peak_rss_mb": rss / 1024,
           "packets": rep.get("packets", 0), "rst": rep.get("rst", 0),
           "rst_by_cause": {c: n for c, n in rep.get("causes", {}).items() if n}}
    why = []
    if rep.get("packets") != info["packets"]:
        why.append(f"report counts {rep.get('packets')} packets, the file holds {info['packets']}")
    if not rep.get("rst"):
        why.append("no RST in the report")
    if why:
        res["invalid"] = "; ".join(why)
    return res


def gen_input(gen, path, gen_args):
    """A cached capture from gen_traffic and its summary (gen_traffic's JSON, beside it)."""
    meta = path + ".json"
    if (not os.path.exists(path) or not os.path.exists(meta)
            or os.path.getmtime(gen) > os.path.getmtime(path)):
        log(f"generating {path}")
        out = subprocess.run([gen, "--out", path + ".tmp"] + gen_args, check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        info = json.loads(out)
        with open(meta, "w") as f:
            json.dump(info, f)
        os.rename(path + ".tmp", path)
    with open(meta) as f:
        return json.load(f)


def memory_per_flow(build, flows):
    exe = os.path.join(build, "tests", "bench", "bench_micro")
    if not os.path.exists(exe):
        return {"error": f"{exe} not built"}
    r = subprocess.run([exe, "--memory-per-flow", str(flows)], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        return {"error": f"bench_micro --memory-per-flow failed ({r.returncode}): "
                         f"{r.stderr[-300:].strip()}"}
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"bench_micro --memory-per-flow printed no JSON: {r.stdout[-200:]}"}


def unsupported_flag(err):
    """True when rstmon refused a command-line flag it does not know (CLI11's message)."""
    return "not expected" in err or "unknown option" in err.lower()


def match_config(patterns, names):
    """`patterns` whole-name patterns h<K>.example.com (K spread over the `names` servers),
    alternately sni and host, over up to 30 services; port services for 80 and 443 catch the
    rest."""
    services = {}
    for k in range(patterns):
        svc = services.setdefault(f"s{k % 30}", {"sni": [], "host": []})
        spread = k * max(1, names // patterns) % names  # the patterns name spread-out servers
        svc["sni" if k % 2 == 0 else "host"].append(f"h{spread}\\.example\\.com")
    lines = ["services:"]
    for name, lists in services.items():
        parts = [f"name: {name}"] + [f"{kind}: [" + ", ".join(f"'{p}'" for p in pats) + "]"
                                     for kind, pats in lists.items() if pats]
        lines.append("  - {" + ", ".join(parts) + "}")
    lines += ["  - {name: web, ports: [80]}", "  - {name: tls, ports: [443]}"]
    return "\n".join(lines) + "\n"


def match_bench(args, rstmon, gen):
    """Mpps of the 1-worker rstmon with 0, 10 and 1000 sni/host patterns on one input."""
    names = 1000
    # 50 packets per concurrent flow: every connection of the file runs to its end, so each pass
    # starts new connections on its 4-tuples and every pass identifies their first payloads.
    packets = args.packets or 50 * args.flows
    pcap = os.path.join(args.workdir, f"traffic-{args.flows}-{packets}-names{names}.pcap")
    if not os.path.exists(pcap) or os.path.getmtime(gen) > os.path.getmtime(pcap):
        log(f"generating {pcap}")
        subprocess.run([gen, "--out", pcap + ".tmp", "--flows", str(args.flows), "--packets",
                        str(packets), "--names", str(names)], check=True, stdout=subprocess.DEVNULL)
        os.rename(pcap + ".tmp", pcap)
    res = {"input": {"flows": args.flows, "packets": packets, "names": names,
                     "bytes": os.path.getsize(pcap)},
           "machine": {"cpus": os.cpu_count(), "cpu_mhz": cpu_mhz()}, "points": {}}
    points = (0, 10, 1000)
    runs = {p: [] for p in points}
    with tempfile.TemporaryDirectory() as tmp:
        # Round robin over the points, so a load change on a shared machine hits them alike.
        for i in range(args.repeat):
            for patterns in points:
                log(f"rstmon 1 worker, {patterns} sni/host patterns, run {i + 1}/{args.repeat}")
                try:
                    # The table holds every 4-tuple of the file (closed ones stay for
                    # flow_table.closing_timeout): about one connection per 10 packets.
                    runs[patterns].append(run_rstmon(rstmon, pcap, packets,
                                                     max(args.flows, packets // 6), "64", 1,
                                                     args.seconds, tmp,
                                                     match_config(patterns, names), room=512,
                                                     cpu_time=True))
                except Exception as e:  # report, keep going
                    runs[patterns].append({"error": str(e)})
    for patterns in points:
        ok = [r["mpps"] for r in runs[patterns] if "mpps" in r]
        cpu = [r["cpu_ns_per_packet"] for r in runs[patterns] if r.get("cpu_ns_per_packet")]
        res["points"][patterns] = {"best_mpps": max(ok) if ok else None,
                                   "least_cpu_ns_per_packet": min(cpu) if cpu else None,
                                   "runs": runs[patterns]}
    base = res["points"][0]["best_mpps"]
    base_cpu = res["points"][0]["least_cpu_ns_per_packet"]
    print(f"\ninput: {packets} packets, {args.flows} concurrent flows, first requests naming "
          f"{names} servers; best of {args.repeat} runs, {args.seconds} s each")
    print(f"{'sni/host patterns':<18}{'Mpps':>7}{'vs 0':>8}{'CPU ns/pkt':>12}{'vs 0':>8}"
          f"{'decided/s':>11}  runs (Mpps)")
    for patterns, point in res["points"].items():
        best, cpu = point["best_mpps"], point["least_cpu_ns_per_packet"]
        all_runs = ", ".join(f"{r['mpps']:.3f}" if "mpps" in r else "error" for r in point["runs"])
        rel = f"{best / base:.1%}" if best and base else "-"
        rel_cpu = f"{cpu / base_cpu:.1%}" if cpu and base_cpu else "-"
        ident = max((r.get("identified_per_s", 0) for r in point["runs"]), default=0)
        print(f"{patterns:<18}{(f'{best:.3f}' if best else '-'):>7}{rel:>8}"
              f"{(f'{cpu:.0f}' if cpu else '-'):>12}{rel_cpu:>8}{ident:>11.0f}  {all_runs}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    print(json.dumps(res))
    return 0 if all(p["best_mpps"] for p in res["points"].values()) else 1


def head_pcap(src, dst, n):
    subprocess.run(["tcpdump", "-r", src, "-c", str(n), "-w", dst], stderr=subprocess.DEVNULL,
                   check=True, timeout=600)


def fmt(v, spec=".3f", none="-"):
    return format(v, spec) if isinstance(v, (int, float)) else none


def print_tables(res, args, worker_counts):
    inp, mhz = res["input"], res["machine"]["cpu_mhz"]
    print(f"\ninput: {inp['packets']} packets (gen_traffic --finish: --packets {inp['packets_asked']}"
          f" and every open connection run to its end), {args.flows} concurrent flows, "
          f"{args.size}-byte frames, {inp['bytes'] / 1e6:.0f} MB; RST storm: {inp['storm_packets']} "
          f"RSTs of random 4-tuples; {res['machine']['cpus']} CPUs at {mhz:.0f} MHz")
    print(f"{'tool':<26}{'Mpps':>9}{'rstmon 1w / tool':>18}{'peak RSS MB':>13}  notes")
    rows = (["testpmd_rxonly"] + [f"rstmon_{n}w" for n in worker_counts]
            + ["rstmon_1w_rst_storm", "rstmon_dispatch_only", "tcpdump_rst_filter", "argus",
               "tshark_rst"])
    for k in rows:
        r = res.get(k, {})
        if "error" in r:
            print(f"{k:<26}{'-':>9}{'':>18}{'':>13}  error: {r['error'][:150]}")
            continue
        ratio = res.get("rstmon_1w_ratio_to", {}).get(k)
        note = ""
        if k == "rstmon_dispatch_only":
            note = "dispatcher ceiling (workers free frames unprocessed)"
        elif k.startswith("rstmon"):
            note = f"flows {r['flows_tracked']}, RSTs {r['rst_seen']}"
            if k == "rstmon_1w" and r.get("cycles_per_packet"):
                note += f", {r['cycles_per_packet']:.0f} cycles/packet"
        if k.startswith("rstmon") and r.get("dispatch_dropped_mpps"):
            note += f", full worker rings dropped {r['dispatch_dropped_mpps']:.3f} Mpps"
        elif k == "tshark_rst":
            note = f"first {r['packets']} packets"
        print(f"{k:<26}{r['mpps']:>9.3f}{(f'{ratio:.2f}x' if ratio else ''):>18}"
              f"{r.get('peak_rss_mb', 0):>13.0f}  {note}")

    print("\nper lcore (busy: share of polling cycles on packets in the measured window; Mpps from "
          "rstmon_lcore_packets_total; ~ = estimated from the worker's share of the flows)")
    for k in [f"rstmon_{n}w" for n in worker_counts] + ["rstmon_dispatch_only"]:
        r = res.get(k, {})
        if "lcores" not in r:
            continue
        parts = []
        for lc, d in r["lcores"].items():
            s = f"{lc} busy {fmt(d.get('busy_window'), '.0%')}"
            if "mpps" in d:
                s += f" {d['mpps']:.3f} Mpps"
            elif "mpps_est_by_flow_share" in d:
                s += f" ~{d['mpps_est_by_flow_share']:.3f} Mpps"
            if "flows" in d:
                s += f" ({d['flows']} flows)"
            parts.append(s)
        print(f"  {k:<24}{r['mpps']:.3f} Mpps total: " + "; ".join(parts))

    causes = res.get("rst_causes", {})
    if causes:
        print("\nRSTs by cause: scripted (gen_traffic), offline replay (once through the file), "
              "live 1 worker (since start; the file loops)")
        print(f"  {'cause':<26}{'scripted':>10}{'offline':>10}{'live 1w':>12}")
        for c, row in causes.items():
            print(f"  {c:<26}{fmt(row.get('scripted'), 'd'):>10}{fmt(row.get('offline'), 'd'):>10}"
                  f"{fmt(row.get('live_1w'), 'd'):>12}")

    print("\noffline (rstmon --pcap F --report json, 1 worker) vs tcpdump RST filter, seconds")
    print(f"  {'file':<34}{'packets':>10}{'rstmon s':>10}{'tcpdump s':>11}{'rstmon/tcpdump':>16}  notes")
    for k, off in res.get("offline", {}).items():
        rs, ts = off.get("rstmon", {}), off.get("tcpdump", {})
        note = ("INVALID: " + rs["invalid"]) if "invalid" in rs else (
            f"RSTs {rs['rst']}" if "rst" in rs else "")
        for what, r in (("rstmon", rs), ("tcpdump", ts)):
            if "error" in r:
                note += f" {what} error: {r['error'][:120]}"
        ratio = off.get("rstmon_over_tcpdump")
        print(f"  {k:<34}{off['packets']:>10}{fmt(rs.get('seconds'), '.2f'):>10}"
              f"{fmt(ts.get('seconds'), '.2f'):>11}{(f'{ratio:.2f}x' if ratio else '-'):>16}  {note}")

    mem = res.get("memory_per_flow", {})
    if "error" in mem:
        print(f"\nmemory per flow: error: {mem['error']}")
    else:
        print(f"\nmemory per flow (DPDK heap, FlowTable of {mem['flows']} flows): "
              f"{mem['bytes_per_flow']:.1f} bytes (record {mem['record_bytes_per_flow']}, key and "
              f"index {mem['key_index_bytes_per_flow']:.1f}); formula FlowTable::bytes_per_flow() "
              f"{mem['formula_bytes_per_flow']}; target <= 128: "
              f"{'met' if mem['bytes_per_flow'] <= 128 else 'NOT met'}")

    s = res.get("summary", {})
    print("\nsummary")
    print(f"  RST storm / normal, 1 worker: {fmt(s.get('storm_over_normal'), '.2f')}x "
          f"(target >= 0.8x)")
    ceil = res.get("rstmon_dispatch_only", {})
    if "error" in ceil:
        print(f"  dispatcher ceiling: not measured ({ceil['error'][:120]})")
    else:
        lost = ceil.get("dispatch_dropped_mpps")
        print(f"  dispatcher ceiling: {fmt(ceil.get('mpps'))} Mpps = "
              f"{fmt(s.get('dispatch_over_1w'), '.1f')} x the 1-worker rate: software dispatch "
              f"can feed ~{fmt(s.get('dispatch_over_1w'), '.1f')} workers"
              + (f" (and {lost:.3f} Mpps more met a full worker ring)" if lost else ""))
    for n in worker_counts:
        sc = s.get(f"scaling_{n}w")
        if sc:
            print(f"  {n} workers / 1 worker: {sc:.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--flows", type=int, default=1000000)
    ap.add_argument("--packets", type=int, default=0,
                    help="default 4 x flows (the main file holds more: --finish)")
    ap.add_argument("--size", choices=["64", "imix"], default="64")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", default="1,2",
                    help="worker counts to run, comma-separated (1 is always run: the reference)")
    ap.add_argument("--offline-flows", type=int, default=200000,
                    help="the second offline file: flows (4 packets each, --finish)")
    ap.add_argument("--memory-flows", type=int, default=1000000,
                    help="flows of the FlowTable whose allocator footprint is measured")
    ap.add_argument("--tshark-packets", type=int, default=200000)
    ap.add_argument("--json")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run on a small input (CI)")
    ap.add_argument("--rstmon", help="rstmon binary (default BUILD/app/rstmon)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "rstmon-bench"))
    ap.add_argument("--match", action="store_true",
                    help="only the SNI/Host pattern cost: 1 worker with 0, 10, 1000 patterns")
    ap.add_argument("--repeat", type=int, default=3, help="--match: runs per point (best kept)")
    args = ap.parse_args()
    if args.match:
        os.makedirs(args.workdir, exist_ok=True)
        args.flows = args.flows if args.flows != 1000000 else 20000
        return match_bench(args, args.rstmon or os.path.join(args.build, "app", "rstmon"),
                           os.path.join(args.build, "tests", "bench", "gen_traffic"))
    try:
        worker_counts = sorted({int(w) for w in args.workers.split(",") if w.strip()} | {1})
    except ValueError:
        ap.error("--workers: comma-separated numbers, e.g. 1,2,4,8")
    if args.smoke:
        args.flows, args.packets, args.seconds, args.tshark_packets = 2000, 20000, 1, 5000
        args.offline_flows, args.memory_flows = 1000, 100000
    packets = args.packets or 4 * args.flows
    os.makedirs(args.workdir, exist_ok=True)
    gen = os.path.join(args.build, "tests", "bench", "gen_traffic")
    rstmon = args.rstmon or os.path.join(args.build, "app", "rstmon")

    pcap = os.path.join(args.workdir, f"traffic-{args.flows}-{packets}-{args.size}-finish.pcap")
    info = gen_input(gen, pcap, ["--flows", str(args.flows), "--packets", str(packets), "--size",
                                 args.size, "--finish"])
    # The storm holds as many frames as the main file: the same mbuf pool, so the rates compare.
    storm = os.path.join(args.workdir, f"rst-storm-{info['packets']}.pcap")
    storm_info = gen_input(gen, storm, ["--rst-storm", "--packets", str(info["packets"])])
    small = os.path.join(args.workdir, f"traffic-{args.offline_flows}-{4 * args.offline_flows}-"
                                        f"{args.size}-finish.pcap")
    small_info = gen_input(gen, small, ["--flows", str(args.offline_flows), "--packets",
                                        str(4 * args.offline_flows), "--size", args.size, "--finish"])
    n_frames = info["packets"]  # what the file holds (more than asked: --finish)
    res = {"input": {"flows": args.flows, "packets_asked": packets, "packets": n_frames,
                     "connections": info.get("connections"), "size": args.size,
                     "bytes": os.path.getsize(pcap), "scripted_rsts": info.get("rsts", {}),
                     "storm_packets": storm_info["packets"]},
           "machine": {"cpus": os.cpu_count(), "cpu_mhz": cpu_mhz()}}
    with tempfile.TemporaryDirectory() as tmp:
        log("testpmd rxonly (I/O ceiling)")
        res["testpmd_rxonly"] = run_testpmd(pcap, n_frames, args.size, args.seconds)
        for w in worker_counts:
            log(f"rstmon, {w} worker(s)")
            try:
                res[f"rstmon_{w}w"] = run_rstmon(rstmon, pcap, n_frames, args.flows, args.size, w,
                                                 args.seconds, tmp)
            except Exception as e:  # report, keep going
                res[f"rstmon_{w}w"] = {"error": str(e)}
        log("rstmon, 1 worker, RST storm")
        try:
            res["rstmon_1w_rst_storm"] = run_rstmon(rstmon, storm, storm_info["packets"],
                                                    args.flows, "64", 1, args.seconds, tmp,
                                                    tag="-storm")
        except Exception as e:
            res["rstmon_1w_rst_storm"] = {"error": str(e)}
        log("rstmon, --bench-dispatch-only (dispatcher ceiling: 1 worker that drops)")
        try:
            res["rstmon_dispatch_only"] = run_rstmon(rstmon, pcap, n_frames, args.flows,
                                                        args.size, 1, args.seconds, tmp,
                                                        cli=["--bench-dispatch-only"],
                                                        tag="-dispatch")
        except Exception as e:
            res["rstmon_dispatch_only"] = {"error": str(e),
                                              "unsupported": unsupported_flag(str(e))}
        for name, cmd, src in [
            ("tcpdump_rst_filter", ["tcpdump", "-nr", pcap, "-w", "/dev/null",
                                    "tcp[tcpflags] & tcp-rst != 0"], pcap),
            ("argus", ["argus", "-r", pcap, "-w", os.path.join(tmp, "out.argus")], pcap),
        ]:
            if not shutil.which(cmd[0]):
                res[name] = {"error": f"{cmd[0]} not installed"}
                continue
            log(name)
            try:
                dt, rss = timed(cmd)
                res[name] = {"mpps": n_frames / dt / 1e6, "seconds": dt, "peak_rss_mb": rss / 1024}
            except Exception as e:
                res[name] = {"error": str(e)}
        if shutil.which("tshark"):
            log("tshark")
            head = os.path.join(tmp, "head.pcap")
            n = min(args.tshark_packets, n_frames)
            head_pcap(pcap, head, n)
            try:
                dt, rss = timed(["tshark", "-n", "-r", head, "-Y", "tcp.flags.reset == 1", "-T",
                                 "fields", "-e", "frame.number"])
                res["tshark_rst"] = {"mpps": n / dt / 1e6, "seconds": dt, "peak_rss_mb": rss / 1024,
                                     "packets": n}
            except Exception as e:
                res["tshark_rst"] = {"error": str(e)}
        else:
            res["tshark_rst"] = {"error": "tshark not installed"}

        # Offline: the whole file once through rstmon's pipeline, against tcpdump's RST filter.
        res["offline"] = {}
        for key, path, fi in ((f"main: {args.flows} flows", pcap, info),
                              (f"small: {args.offline_flows} flows", small, small_info)):
            log(f"offline rstmon and tcpdump on {os.path.basename(path)}")
            off = {"file": path, "packets": fi["packets"]}
            try:
                off["rstmon"] = run_offline(rstmon, path, fi, tmp, key.split(":")[0])
            except Exception as e:
                off["rstmon"] = {"error": str(e)}
            if path == pcap and "seconds" in res.get("tcpdump_rst_filter", {}):
                off["tcpdump"] = {"seconds": res["tcpdump_rst_filter"]["seconds"]}  # same command
            elif not shutil.which("tcpdump"):
                off["tcpdump"] = {"error": "tcpdump not installed"}
            else:
                try:
                    dt, _ = timed(["tcpdump", "-nr", path, "-w", "/dev/null",
                                   "tcp[tcpflags] & tcp-rst != 0"])
                    off["tcpdump"] = {"seconds": dt}
                except Exception as e:
                    off["tcpdump"] = {"error": str(e)}
            if off["rstmon"].get("seconds") and off["tcpdump"].get("seconds"):
                off["rstmon_over_tcpdump"] = off["rstmon"]["seconds"] / off["tcpdump"]["seconds"]
            res["offline"][key] = off

    log(f"memory per flow (bench_micro --memory-per-flow {args.memory_flows})")
    res["memory_per_flow"] = memory_per_flow(args.build, args.memory_flows)

    one = res.get("rstmon_1w", {}).get("mpps")
    mhz = res["machine"]["cpu_mhz"]
    ver = subprocess.run([rstmon, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+) bytes per flow", ver)
    res["bytes_per_flow"] = int(m.group(1)) if m else None  # the formula, as rstmon prints it
    summary = {}
    if one:
        res["rstmon_1w"]["cycles_per_packet"] = mhz * 1e6 / (one * 1e6) if mhz else None
        ratios = {}
        for k in ("testpmd_rxonly", "tcpdump_rst_filter", "argus", "tshark_rst"):
            v = res.get(k, {}).get("mpps")
            if v:
                ratios[k] = one / v
        res["rstmon_1w_ratio_to"] = ratios
        storm_mpps = res.get("rstmon_1w_rst_storm", {}).get("mpps")
        summary["storm_over_normal"] = storm_mpps / one if storm_mpps else None
        ceiling = res.get("rstmon_dispatch_only", {}).get("mpps")
        summary["dispatch_over_1w"] = ceiling / one if ceiling else None
        for n in worker_counts:
            v = res.get(f"rstmon_{n}w", {}).get("mpps")
            if v and n > 1:
                summary[f"scaling_{n}w"] = v / one
    res["summary"] = summary

    # RSTs by cause: the generator's script, the offline replay, the live 1-worker run.
    off_main = next(iter(res["offline"].values()), {}).get("rstmon", {})
    causes = {}
    for src, counts in (("scripted", info.get("rsts", {})),
                        ("offline", off_main.get("rst_by_cause", {})),
                        ("live_1w", res.get("rstmon_1w", {}).get("rst_by_cause", {}))):
        for c, n in counts.items():
            if n:
                causes.setdefault(c, {})[src] = n
    res["rst_causes"] = dict(sorted(causes.items(), key=lambda kv: -kv[1].get("scripted", 0)))

    print_tables(res, args, worker_counts)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    print(json.dumps(res))
    # The smoke run (CI) checks that the whole comparison ran and that rstmon really worked (each
    # run processed packets and saw RSTs; the normal runs tracked flows), not how fast it was.
    if args.smoke:
        runs = [f"rstmon_{n}w" for n in worker_counts] + ["rstmon_1w_rst_storm"]
        missing = [k for k in ["testpmd_rxonly"] + runs + ["tcpdump_rst_filter", "argus",
                                                           "tshark_rst"]
                   if not res.get(k, {}).get("mpps")]
        dead = [f"{k}: {what} is 0" for k in runs for what in ("packets", "rst_seen")
                if k not in missing and not res[k].get(what)]
        dead += [f"{k}: flows_tracked is 0" for k in runs
                 if k not in missing and k != "rstmon_1w_rst_storm" and not res[k].get("flows_tracked")]
        disp = res.get("rstmon_dispatch_only", {})
        if "error" in disp and not disp.get("unsupported"):
            dead.append(f"rstmon_dispatch_only: {disp['error'][:200]}")
        elif "error" not in disp and not disp.get("packets"):
            dead.append("rstmon_dispatch_only: packets is 0")
        for key, off in res["offline"].items():
            r = off.get("rstmon", {})
            if "error" in r or "invalid" in r:
                dead.append(f"offline {key}: {r.get('error') or r.get('invalid')}")
            if "error" in off.get("tcpdump", {}):
                dead.append(f"offline {key}: tcpdump: {off['tcpdump']['error']}")
        if "error" in res["memory_per_flow"]:
            dead.append(f"memory per flow: {res['memory_per_flow']['error']}")
        if missing or dead:
            print(f"bench smoke: no figure (or 0 Mpps) for {missing}; {dead}", file=sys.stderr)
            print("bench smoke: 0 passed, 1 failed")
            return 1
        print("bench smoke: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
