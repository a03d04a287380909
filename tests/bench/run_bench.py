#!/usr/bin/env python3
"""rstmon's benchmark, in one go on one input (timing, not a pass/fail test):

  1. gen_traffic writes a deterministic capture of mirrored TCP traffic (--flows concurrent
     connections, --size 64|imix, every RST cause in a realistic share);
  2. the I/O ceiling: dpdk-testpmd --forward-mode=rxonly on net_pcap with infinite_rx=1;
  3. rstmon with 1 and 2 workers on the same vdev and input, rate measured from two scrapes of
     its own metrics endpoint after a warm-up;
  4. what users would otherwise run on the same file: tcpdump with an RST filter (stateless),
     argus (stateful flow records) and tshark dissecting RSTs (on a prefix of the file: it is slow).

Prints a table and writes JSON (--json). Ratios are taken against figures measured in the same
run, so they mean more than the absolute numbers on a shared machine.

  /usr/bin/python3 tests/bench/run_bench.py --build build [--flows 1000000] [--size 64]
      [--seconds 10] [--json out.json] [--smoke]
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
    """Ctrl-C for a child's whole process group, SIGKILL if it does not end in time."""
    os.killpg(p.pid, signal.SIGINT)
    try:
        p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
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


def mbuf_plan(packets, size):
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


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    vals = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"(\w+)(\{[^}]*\})?\s+([0-9.eE+-]+|Nan)$", line)
        if m and m.group(3) != "Nan":
            vals.setdefault(m.group(1), 0.0)
            vals[m.group(1)] += float(m.group(3))
    return vals


def run_rstmon(rstmon, pcap, packets, flows, size, workers, seconds, tmp):
    room, mbufs, need_mb = mbuf_plan(packets, size)
    table = max(1024, int(flows * 1.3 / workers) + 1024)
    cfg = os.path.join(tmp, f"bench-{workers}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""ports: [{{name: bench, device: "net_pcap_rb{workers},rx_pcap={pcap},infinite_rx=1"}}]
workers: {workers}
rx: {{mbufs: {mbufs}, mbuf_size: {room}, burst: 32}}
flow_table: {{size: {table}}}
metrics: {{listen: "127.0.0.1:0"}}
log_level: info
""")
    need_mb += workers * table * 400 // (1 << 20)
    lcores = ",".join(f"{i}@{i % os.cpu_count()}" for i in range(workers + (2 if workers > 1 else 1)))
    eal = [f"--lcores={lcores}", "--no-pci", DPDK_LOG, "--no-telemetry"] + mem_args(need_mb, f"rsbench{workers}")
    p = subprocess.Popen([rstmon, "--config", cfg, "--duration", str(seconds + 60), "--report", "json",
                          "--"] + eal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    port = None
    try:
        deadline = time.monotonic() + 300
        while port is None and time.monotonic() < deadline:
            line = p.stderr.readline()
            if not line:
                if p.poll() is not None:
                    raise RuntimeError("rstmon exited early: " + p.stderr.read()[-300:].strip())
                continue
            m = re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", line)
            if m:
                port = int(m.group(1))
        if port is None:
            raise RuntimeError("rstmon did not come up")
        # Warm up (the flow table fills), then measure between two scrapes.
        time.sleep(2)
        a, ta = scrape(port), time.monotonic()
        time.sleep(seconds)
        b, tb = scrape(port), time.monotonic()
        try:
            with open(f"/proc/{p.pid}/status") as st:
                hwm = int(re.search(r"VmHWM:\s+(\d+)", st.read()).group(1))
        except OSError:
            hwm = 0
        pps = (b["rstmon_packets_total"] - a["rstmon_packets_total"]) / (tb - ta)
        busy = b.get("rstmon_lcore_busy_ratio", 0.0)
        return {"mpps": pps / 1e6, "flows_tracked": int(b.get("rstmon_flows_active", 0)),
                "rst_seen": int(b.get("rstmon_rst_total", 0)), "peak_rss_mb": hwm / 1024,
                "busy_ratio_sum": busy, "dispatch_dropped": int(b.get("rstmon_dispatch_dropped_total", 0)),
                "nic_rx_nombuf": int(b.get("rstmon_nic_rx_nombuf_total", 0))}
    finally:
        interrupt(p, 60)


def head_pcap(src, dst, n):
    subprocess.run(["tcpdump", "-r", src, "-c", str(n), "-w", dst], stderr=subprocess.DEVNULL,
                   check=True, timeout=600)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--flows", type=int, default=1000000)
    ap.add_argument("--packets", type=int, default=0, help="default 4 x flows")
    ap.add_argument("--size", choices=["64", "imix"], default="64")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--tshark-packets", type=int, default=200000)
    ap.add_argument("--json")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run on a small input (CI)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "rstmon-bench"))
    args = ap.parse_args()
    if args.smoke:
        args.flows, args.packets, args.seconds, args.tshark_packets = 2000, 20000, 1, 5000
    packets = args.packets or 4 * args.flows
    os.makedirs(args.workdir, exist_ok=True)
    gen = os.path.join(args.build, "tests", "bench", "gen_traffic")
    rstmon = os.path.join(args.build, "app", "rstmon")
    pcap = os.path.join(args.workdir, f"traffic-{args.flows}-{packets}-{args.size}.pcap")
    # Regenerate when the generator is newer than the cached capture.
    if not os.path.exists(pcap) or os.path.getmtime(gen) > os.path.getmtime(pcap):
        log(f"generating {pcap}")
        subprocess.run([gen, "--out", pcap + ".tmp", "--flows", str(args.flows), "--packets",
                        str(packets), "--size", args.size], check=True, stdout=subprocess.DEVNULL)
        os.rename(pcap + ".tmp", pcap)
    res = {"input": {"flows": args.flows, "packets": packets, "size": args.size,
                     "bytes": os.path.getsize(pcap)},
           "machine": {"cpus": os.cpu_count(), "cpu_mhz": cpu_mhz()}}
    with tempfile.TemporaryDirectory() as tmp:
        log("testpmd rxonly (I/O ceiling)")
        res["testpmd_rxonly"] = run_testpmd(pcap, packets, args.size, args.seconds)
        for w in (1, 2):
            log(f"rstmon, {w} worker(s)")
            try:
                res[f"rstmon_{w}w"] = run_rstmon(rstmon, pcap, packets, args.flows, args.size, w,
                                                 args.seconds, tmp)
            except Exception as e:  # report, keep going
                res[f"rstmon_{w}w"] = {"error": str(e)}
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
                res[name] = {"mpps": packets / dt / 1e6, "seconds": dt, "peak_rss_mb": rss / 1024}
            except Exception as e:
                res[name] = {"error": str(e)}
        if shutil.which("tshark"):
            log("tshark")
            small = os.path.join(tmp, "head.pcap")
            n = min(args.tshark_packets, packets)
            head_pcap(pcap, small, n)
            try:
                dt, rss = timed(["tshark", "-n", "-r", small, "-Y", "tcp.flags.reset == 1", "-T",
                                 "fields", "-e", "frame.number"])
                res["tshark_rst"] = {"mpps": n / dt / 1e6, "seconds": dt, "peak_rss_mb": rss / 1024,
                                     "packets": n}
            except Exception as e:
                res["tshark_rst"] = {"error": str(e)}
        else:
            res["tshark_rst"] = {"error": "tshark not installed"}

    one = res.get("rstmon_1w", {}).get("mpps")
    mhz = res["machine"]["cpu_mhz"]
    if one:
        res["rstmon_1w"]["cycles_per_packet"] = mhz * 1e6 / (one * 1e6) if mhz else None
        res["bytes_per_flow"] = None
        ver = subprocess.run([rstmon, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"(\d+) bytes per flow", ver)
        if m:
            res["bytes_per_flow"] = int(m.group(1))
        ratios = {}
        for k in ("testpmd_rxonly", "tcpdump_rst_filter", "argus", "tshark_rst"):
            v = res.get(k, {}).get("mpps")
            if v:
                ratios[k] = one / v
        res["rstmon_1w_ratio_to"] = ratios

    print(f"\ninput: {packets} packets, {args.flows} concurrent flows, {args.size}-byte frames, "
          f"{res['input']['bytes'] / 1e6:.0f} MB; {res['machine']['cpus']} CPUs at {mhz:.0f} MHz")
    print(f"{'tool':<24}{'Mpps':>9}{'rstmon 1w / tool':>18}{'peak RSS MB':>13}  notes")
    for k in ("testpmd_rxonly", "rstmon_1w", "rstmon_2w", "tcpdump_rst_filter", "argus", "tshark_rst"):
        r = res.get(k, {})
        if "error" in r:
            print(f"{k:<24}{'-':>9}{'':>18}{'':>13}  {r['error']}")
            continue
        ratio = res.get("rstmon_1w_ratio_to", {}).get(k)
        note = ""
        if k.startswith("rstmon"):
            note = f"flows {r['flows_tracked']}, RSTs {r['rst_seen']}"
            if k == "rstmon_1w" and r.get("cycles_per_packet"):
                note += f", {r['cycles_per_packet']:.0f} cycles/packet"
        print(f"{k:<24}{r['mpps']:>9.3f}{(f'{ratio:.2f}x' if ratio else ''):>18}"
              f"{r.get('peak_rss_mb', 0):>13.0f}  {note}")
    print(f"bytes per tracked flow (record + hash): {res.get('bytes_per_flow')}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    print(json.dumps(res))
    # The smoke run (CI) checks that the whole comparison ran, not how fast it was.
    if args.smoke:
        missing = [k for k in ("testpmd_rxonly", "rstmon_1w", "rstmon_2w", "tcpdump_rst_filter",
                               "argus", "tshark_rst") if "mpps" not in res.get(k, {})]
        if missing:
            print(f"bench smoke: no figure for {missing}", file=sys.stderr)
            return 1
        print("bench smoke: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
