#!/usr/bin/python3
"""Router-made RSTs in the namespace lab (lab.py): their evidence, their forensic captures, and
the idle timeout rstmon learns from a router whose conntrack forgets idle connections.

The router's conntrack keeps established connections CT_TIMEOUT (3) seconds. Three connections
to service `api` exchange a request, idle SURVIVE_GAP (1 s: they survive, both sides talk again),
exchange again, idle RESET_GAP (5 s: the router has forgotten them) and send: the router rejects
with an RST (`ct state invalid reject with tcp reset`). One connection to service `web` is refused
by the router's `reject with tcp reset` on its SYN. rstmon runs live on the lab's SPAN
(net_af_packet) and then offline on tcpdump's capture of it. Checked:

* idle_timeout and middlebox_reject events: the RST is one hop closer than the server
  (hop_delta 1: TTL 64 from the router, 63 from the server), with the gap before it;
* the forensic pcap each event names holds, at the named frame numbers, the flow's last packets
  and the RST (read with tshark);
* /top (live) and the report's "top" (offline): the learned timeout of `api` brackets 3 s
  (survived <= 1.x s < 3 s <= reset ~5 s), and rstmon_learned_idle_timeout_seconds says so.

    test_lab_evidence.py [--rstmon PATH] [--keep DIR]

Exit status 0 pass, 1 fail, 77 skipped (not root, no `ip netns`, tools missing).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lab as L  # noqa: E402
from proc import Proc  # noqa: E402

SKIP = 77
CT_TIMEOUT = 3
SURVIVE_GAP = 1.0
RESET_GAP = 5.0
IDLE_PORTS = (15000, 15001, 15002)
MB_PORT = 15100
K = 4


def log(msg):
    sys.stderr.write("[lab-evidence %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def http_get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.read().decode()


def tshark_frames(path):
    p = subprocess.run(["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=\t",
                        "-e", "frame.number", "-e", "frame.time_epoch", "-e", "ip.src",
                        "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags", "-e",
                        "tcp.len", "-e", "ip.ttl"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise L.LabError("tshark -r %s: %s" % (path, p.stderr))
    out = {}
    for ln in p.stdout.splitlines():
        f = ln.split("\t")
        out[int(f[0])] = {"time": float(f[1]), "src": f[2], "sport": int(f[3]),
                          "dport": int(f[4]), "flags": int(f[5], 16), "len": int(f[6]),
                          "ttl": int(f[7] or 0)}
    return out


def exchange(c, s, what):
    c.sendall(what + b"?")
    got = b""
    while len(got) < len(what) + 1:
        got += s.recv(4096)
    s.sendall(what + b"!")
    got = b""
    while len(got) < len(what) + 1:
        got += c.recv(4096)


def idle_connection(lab, port, errors, exchanged):
    try:
        ls = lab.srv.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((L.SRV4, port))
        ls.listen(4)
        c = lab.cli.socket()
        c.settimeout(10)
        c.connect((L.SRV4, port))
        s, _ = ls.accept()
        s.settimeout(10)
        exchange(c, s, b"first")
        exchanged.set()
        time.sleep(SURVIVE_GAP)            # shorter than the router's conntrack timeout
        exchange(c, s, b"after-short-idle")
        time.sleep(RESET_GAP)              # longer: the router forgets the connection
        c.sendall(b"after-long-idle?")
        try:
            c.recv(4096)
            errors.append("port %d: no reset after %.1f s idle" % (port, RESET_GAP))
        except ConnectionResetError:
            pass
        lab.keep += [ls, c, s]
    except Exception as e:  # noqa: BLE001 - reported as a failure of this instance
        errors.append("port %d: %r" % (port, e))


def check_events(events, failures, where):
    idle = [e for e in events if e["cause"] == "idle_timeout"]
    mb = [e for e in events if e["cause"] == "middlebox_reject"]
    other = [e for e in events if e["cause"] not in ("idle_timeout", "middlebox_reject")]
    if sorted(e["sport"] for e in idle) != list(IDLE_PORTS):
        failures.append("%s: idle_timeout events on ports %s, want %s" % (
            where, sorted(e["sport"] for e in idle), list(IDLE_PORTS)))
    if [e["sport"] for e in mb] != [MB_PORT]:
        failures.append("%s: middlebox_reject events %s, want one to port %d" % (where, mb, MB_PORT))
    if other:
        failures.append("%s: unexpected events %s" % (where, other))
    for e in idle + mb:
        want = {"src": L.SRV4, "ttl": 64, "hops": 0, "sender_hops": 1, "hop_delta": 1}
        got = {k: e.get(k) for k in want}
        if got != want:
            failures.append("%s: %s RST evidence %s, want %s" % (where, e["cause"], got, want))
    for e in idle:
        if not (RESET_GAP - 0.5 <= e.get("idle_s", 0) < RESET_GAP + 2):
            failures.append("%s: idle_timeout idle_s %s, want about %.1f" % (
                where, e.get("idle_s"), RESET_GAP))
        if e.get("flow_ttl") != 63:
            failures.append("%s: idle_timeout flow_ttl %s, want 63 (the server's)" % (
                where, e.get("flow_ttl")))
        if e.get("dst_bytes", 0) < len(b"first?after-short-idle?after-long-idle?"):
            failures.append("%s: dst_bytes %s below the client's payload" % (where, e.get("dst_bytes")))
    for e in mb:
        if e.get("host_ttl") != 63 or "flow_ttl" in e:
            failures.append("%s: middlebox_reject baseline: flow_ttl %s host_ttl %s, want the "
                            "server's host TTL 63 only" % (where, e.get("flow_ttl"), e.get("host_ttl")))


def check_pcaps(events, failures, where):
    cache = {}
    for e in events:
        pc = e.get("pcap")
        if pc is None:
            failures.append("%s: %s event without a forensic capture" % (where, e["cause"]))
            continue
        if pc["file"] not in cache:
            if not os.path.isfile(pc["file"]):
                failures.append("%s: %s missing" % (where, pc["file"]))
                continue
            cache[pc["file"]] = tshark_frames(pc["file"])
        frames = cache[pc["file"]]
        cap = [frames.get(n) for n in range(pc["first_packet"], pc["first_packet"] + pc["packets"])]
        rst = frames.get(pc.get("rst_packet"))
        if None in cap or rst is None:
            failures.append("%s: %s: frames %s..+%d not all in the file" % (
                where, pc["file"], pc["first_packet"], pc["packets"]))
            continue
        port = e["sport"]
        if any(port not in (f["sport"], f["dport"]) for f in cap):
            failures.append("%s: capture of port %d holds other flows: %s" % (where, port, cap))
        if not (rst["flags"] & 4 and rst["src"] == L.SRV4 and rst["ttl"] == 64 and
                abs(rst["time"] - e["ts"]) < 1e-6):
            failures.append("%s: frame %d is not the event's RST: %s" % (where, pc["rst_packet"], rst))
        before = cap[:pc["rst_packet"] - pc["first_packet"]]
        if e["cause"] == "idle_timeout":
            # the flow's last K packets: the client's segment after the gap comes right before
            if len(before) != K or not (before[-1]["src"] == L.CLI4 and before[-1]["len"] > 0 and
                                        rst["time"] - before[-2]["time"] >= RESET_GAP - 0.5):
                failures.append("%s: idle_timeout capture before the RST: %s" % (where, before))
        else:  # the refused SYN (and its retransmissions, none here)
            if not before or before[0]["flags"] & 0x12 != 0x02:
                failures.append("%s: middlebox_reject capture before the RST: %s" % (where, before))


def check_learned(top, failures, where):
    api = [x for x in top.get("learned_idle_timeouts", []) if x["service"] == "api"]
    if len(api) != 1:
        failures.append("%s: no learned timeout for api: %s" % (where, top.get("learned_idle_timeouts")))
        return None
    a = api[0]
    lo, hi = a["lower_s"], a["upper_s"]
    # (the survived gap starts at the client's delayed ACK: up to ~40 ms short of the sleep)
    if not (lo is not None and hi is not None and SURVIVE_GAP - 0.2 <= lo < CT_TIMEOUT <= hi and
            hi < RESET_GAP + 1 and a["consistent"] and a["survived_gaps"] == len(IDLE_PORTS) and
            a["reset_gaps"] == len(IDLE_PORTS)):
        failures.append("%s: learned timeout of api %s does not bracket %d s" % (where, a, CT_TIMEOUT))
    return a


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rstmon", default=os.path.join(HERE, "..", "..", "build", "app", "rstmon"))
    ap.add_argument("--keep", help="keep this run's files in DIR")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return SKIP
    missing = [t for t in ("tcpdump", "nft", "tc", "ethtool", "ip", "tshark") if not shutil.which(t)]
    if missing:
        print("SKIP: missing tools: %s" % ", ".join(missing))
        return SKIP
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        print("SKIP: `ip netns` unavailable")
        return SKIP

    work = tempfile.mkdtemp(prefix="rs-labev-")
    os.chmod(work, 0o755)
    lab = L.Lab("e%d" % os.getpid(), log)
    lab.keep = []
    children = []
    failures = []
    try:
        lab.up()
        lab.rtr.sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", CT_TIMEOUT)
        lab.rtr.sysctl("net.netfilter.nf_conntrack_tcp_loose", 0)
        for p in IDLE_PORTS:
            lab.set_add(lab.rtr, "idle", p)       # tracked by the router's conntrack
        lab.set_add(lab.rtr, "mb", MB_PORT)       # refused by the router

        pcap = os.path.join(work, "span.pcap")
        td = Proc(["tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n", "-i", lab.span,
                   "-w", pcap], os.path.join(work, "tcpdump.out"))
        children.append(td)
        td.wait_for("tcpdump listening", lambda: "listening on" in td.stderr, 30)

        common = ("flow_table: {size: 65536}\n"
                  "thresholds: {idle_threshold: 2s}\n"
                  "learned_timeouts: {min_gap: 500ms}\n"
                  "services: [{name: api, ports: [%s]}, {name: web, ports: [%d]}]\n"
                  % (", ".join(map(str, IDLE_PORTS)), MB_PORT))
        live_dir = os.path.join(work, "forensics-live")
        live_cfg = os.path.join(work, "rstmon-live.yaml")
        with open(live_cfg, "w") as f:
            f.write(common + 'ports: [{name: span, device: "net_af_packet0,iface=%s"}]\n'
                    'metrics: {listen: "127.0.0.1:0"}\nevents: {max_per_second: 0}\n'
                    "forensics: {enabled: true, dir: %s, causes: [idle_timeout, middlebox_reject],"
                    " packets_before: %d}\n" % (lab.span, live_dir, K))
        live_ev = os.path.join(work, "events-live.jsonl")
        live = Proc([args.rstmon, "--config", live_cfg, "--events", live_ev, "--report", "json"],
                    os.path.join(work, "rstmon-live.stdout"))
        children.append(live)
        live.wait_for("metrics line", lambda: "metrics at http://" in live.stderr, 90)
        port = int(re.search(r"metrics at http://[^:]+:(\d+)", live.stderr).group(1))
        log("live rstmon up, metrics on %d; traffic starts" % port)

        errors = []
        exchanged = [threading.Event() for _ in IDLE_PORTS]
        threads = [threading.Thread(target=idle_connection, args=(lab, p, errors, ev))
                   for p, ev in zip(IDLE_PORTS, exchanged)]
        for t in threads:
            t.start()
        # The server has spoken in the idle flows: rstmon knows its host TTL for the refused SYN.
        L.wait_until(lambda: all(ev.is_set() for ev in exchanged) or errors, 10,
                     "the first exchanges")
        c = lab.cli.socket()
        c.settimeout(5)
        try:
            c.connect((L.SRV4, MB_PORT))
            errors.append("port %d: connected through the router's reject" % MB_PORT)
        except ConnectionRefusedError:
            pass
        lab.keep.append(c)
        for t in threads:
            t.join(SURVIVE_GAP + RESET_GAP + 20)
        failures += errors

        # Live: every RST final (linger 2 s), then /top and the events.
        def settled():
            top = json.loads(http_get(port, "/top"))
            return top if top["all"]["rst"] >= len(IDLE_PORTS) + 1 else None
        top_live = L.wait_until(settled, 15, "live rstmon to count the RSTs", step=0.1)
        with open(os.path.join(work, "top-live.json"), "w") as f:
            json.dump(top_live, f, indent=1)
        metrics = http_get(port, "/metrics")
        learned = check_learned(top_live, failures, "live /top")
        if learned:
            log("live /top: %s" % learned["text"])
            for bound, value in (("lower", learned["lower_s"]), ("upper", learned["upper_s"])):
                m = re.search(r'rstmon_learned_idle_timeout_seconds\{[^}]*service="api",'
                              r'bound="%s"\} (\S+)' % bound, metrics)
                if not m or abs(float(m.group(1)) - value) > 1e-9:
                    failures.append("metrics: learned %s bound of api %s, want %s" % (
                        bound, m and m.group(1), value))
        if live.stop() != 0:
            failures.append("live rstmon exited %s" % live.proc.returncode)
        td.stop()
        with open(live_ev) as f:
            live_events = [json.loads(ln) for ln in f]
        check_events(live_events, failures, "live")
        check_pcaps(live_events, failures, "live")
        for e in live_events:
            log("live event: %s" % json.dumps(e))

        # Offline, on the same SPAN capture.
        off_dir = os.path.join(work, "forensics-offline")
        off_cfg = os.path.join(work, "rstmon-offline.yaml")
        with open(off_cfg, "w") as f:
            f.write(common + "forensics: {enabled: true, dir: %s, causes: [idle_timeout, "
                    "middlebox_reject], packets_before: %d}\n" % (off_dir, K))
        off_ev = os.path.join(work, "events-offline.jsonl")
        res = subprocess.run([args.rstmon, "--config", off_cfg, "--pcap", pcap, "--events",
                              off_ev, "--report", "json"], capture_output=True, text=True,
                             timeout=120)
        with open(os.path.join(work, "rstmon-offline.stdout"), "w") as f:
            f.write(res.stdout)
        if res.returncode != 0:
            failures.append("offline rstmon exited %d: %s" % (res.returncode, res.stderr[-2000:]))
        else:
            with open(off_ev) as f:
                off_events = [json.loads(ln) for ln in f]
            check_events(off_events, failures, "offline")
            check_pcaps(off_events, failures, "offline")
            a = check_learned(json.loads(res.stdout).get("top", {}), failures, "offline report")
            if a:
                log("offline report: %s" % a["text"])
    except L.LabError as e:
        failures.append("lab: %s" % e)
    finally:
        for ch in children:
            if ch.proc.poll() is None:
                ch.stop(signal.SIGKILL)
        for s in lab.keep:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                s.close()
            except OSError:
                pass
        lab.down()
        if args.keep:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(work, args.keep)
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL: %s" % f)
    print("lab-evidence: %s" % ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
