#!/usr/bin/python3
"""SPAN duplicates in the namespace lab (lab.py): the router's two interfaces, r0 (client side)
and r1 (server side), are both mirrored into the SPAN, so every routed frame is seen twice: once
before the router, once after it, with the TTL one lower and other MAC addresses. That is the
same segment seen twice (the TCP checksum does not cover the TTL) and must count once.

Provoked (real sockets, as the scenario suite does): port_closed (IPv4 and IPv6), linger_abort,
unread_data_close, data_after_close, injected (the router-namespace injector, three modes) and
middlebox_reject (the router's nft reject of a request in mid-flow).
rstmon runs live on the SPAN (net_af_packet) and then offline on tcpdump's capture of it, and
offline on the same capture cut down to the r0 frames (one mirror: what the scenario suite sees).

Checked:
* every RST visible on r0 gets, with two mirrors, exactly the cause it gets with one, and that is
  the provoked cause of its port; live and offline agree. Except, flow by flow: where the router
  itself made an RST (seen on one side only) and one mirror judged it by its TTL (64 against the
  server's 63 after the router), two mirrors see the server's segments first before the router,
  at 64 too: that evidence is void, and rstmon must withdraw the label (unclassified), never
  give another (the injector's bare mode, the nft reject);
* the only RSTs two mirrors add are those the router sends toward the server (the injector's
  forged RSTs), never seen on r0: labelled injected, or unclassified;
* rstmon_duplicates_total (the report's `duplicates`, live scrape too) equals the number of
  frames that repeat an earlier frame's segment (same addresses, ports, IP ID, seq, ack, flags,
  length, TCP checksum; any TTL and MACs) within 2 ms of its first sighting, as this script
  counts them from the capture.

(A refusal of the very first SYN is left out: its flow has no copies, so nothing tells rstmon it
is mirrored on both sides, and the server's TTL it knows from other flows is the one before the
router: it reads as port_closed. See the README of this folder.)

    test_span_duplicates_lab.py [--rstmon PATH] [--keep DIR]

Exit status 0 pass, 1 fail, 77 skipped (not root, no `ip netns`, tools missing). About 20 s.
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import struct
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
PY = "/usr/bin/python3"
WINDOW_US = 2000  # rstmon's default dedup.window
CASES = [("port_closed", 0), ("port_closed", 1), ("linger_abort", 0), ("linger_abort", 2),
         ("unread_data_close", 0), ("unread_data_close", 1), ("data_after_close", 0),
         ("injected", 0), ("injected", 1), ("injected", 2), ("middlebox_reject", 1)]
INJECT_MODES = ["single", "burst", "bare"]


def log(msg):
    sys.stderr.write("[span-dups-lab %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ---- the capture ---------------------------------------------------------------------------

class Frame:
    __slots__ = ("i", "ts_us", "pkt", "macs", "ident", "hdr", "data")


def read_frames(path):
    """Every TCP frame of the SPAN capture with its MAC pair and its identity as a segment."""
    with open(path, "rb") as f:
        blob = f.read()
    e = "<" if struct.unpack("<I", blob[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    out = []
    off, i = 24, 0
    while off + 16 <= len(blob):
        sec, usec, incl, _ = struct.unpack_from(e + "IIII", blob, off)
        data = blob[off + 16:off + 16 + incl]
        fr = Frame()
        fr.i, fr.ts_us, fr.hdr, fr.data = i, sec * 1000000 + usec, blob[off:off + 16], data
        off += 16 + incl
        i += 1
        fr.pkt = L.parse_frame(data, fr.ts_us / 1e6)
        fr.macs = frozenset((data[0:6], data[6:12]))
        fr.ident = None
        if fr.pkt is not None:
            et = struct.unpack_from("!H", data, 12)[0]
            if et == 0x0800:
                ip_id = struct.unpack_from("!H", data, 18)[0]
                l4 = 14 + (data[14] & 15) * 4
            else:
                ip_id, l4 = None, 14 + 40
            csum = struct.unpack_from("!H", data, l4 + 16)[0]
            p = fr.pkt
            fr.ident = (p.src, p.sport, p.dst, p.dport, p.seq, p.ack, p.flags, p.plen, ip_id,
                        csum)
        out.append(fr)
    return blob[:24], out


def copies(frames):
    """Frames that repeat an earlier frame's segment (rstmon's definition: flow/dedup.hpp) within
    the window from its first sighting: the SPAN's copies (and any byte-identical repeat)."""
    first = {}
    n = 0
    for fr in frames:
        if fr.ident is None:
            continue
        prev = first.get(fr.ident)
        if prev is not None and fr.ts_us - prev.ts_us <= WINDOW_US:
            n += 1
            continue
        first[fr.ident] = fr
    return n


# ---- rstmon --------------------------------------------------------------------------------

def offline(rstmon, config, pcap, events):
    res = subprocess.run([rstmon, "--config", config, "--pcap", pcap, "--events", events,
                          "--report", "json"], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise L.LabError("offline rstmon on %s exited %d: %s" % (pcap, res.returncode,
                                                                 res.stderr[-2000:]))
    with open(events) as f:
        return json.loads(res.stdout), [json.loads(ln) for ln in f]


def key(e):
    fam = socket.AF_INET6 if ":" in e["src"] else socket.AF_INET
    norm = lambda a: socket.inet_ntop(fam, socket.inet_pton(fam, a))  # noqa: E731
    return (norm(e["src"]), int(e["sport"]), norm(e["dst"]), int(e["dport"]))


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode()


def metric_sum(text, name):
    return sum(float(m.group(1)) for m in re.finditer(r"^%s(?:\{[^}]*\})? (\S+)$" % name, text,
                                                      re.M))


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rstmon", default=os.path.join(HERE, "..", "..", "build", "app", "rstmon"))
    ap.add_argument("--keep", help="keep this run's files in DIR")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return SKIP
    missing = [t for t in ("tcpdump", "nft", "tc", "ethtool", "ip") if not shutil.which(t)]
    if missing:
        print("SKIP: missing tools: %s" % ", ".join(missing))
        return SKIP
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        print("SKIP: `ip netns` unavailable")
        return SKIP
    import scenarios as S  # after the skips: it needs nothing more, but keep start-up cheap

    rstmon = os.path.abspath(args.rstmon)
    work = tempfile.mkdtemp(prefix="rs-spandup-")
    os.chmod(work, 0o755)
    lab = L.Lab("u%d" % os.getpid(), log, mirror_r1=True)
    children, failures = [], []
    ctx = tap = None
    t0 = time.monotonic()
    try:
        lab.up()
        mac = {dev: bytes.fromhex(ns.run(["cat", "/sys/class/net/%s/address" % dev])
                                  .stdout.strip().replace(":", ""))
               for ns, dev in ((lab.rtr, "r0"), (lab.rtr, "r1"))}
        tap = L.Tap(lab.cli, "c0")
        ctx = S.Ctx(lab, tap, log)
        insts = [S.Inst(c, i) for c, i in CASES]
        inj = [x for x in insts if x.cause == "injected"]
        injector = Proc(["ip", "netns", "exec", lab.rtr.name, PY, os.path.join(HERE, "injector.py"),
                         "r0", os.path.join(work, "injector.log"), S.TRIGGER] +
                        ["%d:%s" % (x.port, INJECT_MODES[x.i % 3]) for x in inj],
                        os.path.join(work, "injector.out"))
        children.append(injector)
        injector.wait_for("injector ready", lambda: "ready" in injector.stdout, 30)

        pcap = os.path.join(work, "span.pcap")
        td = Proc(["tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n", "-i", lab.span,
                   "-w", pcap], os.path.join(work, "tcpdump.out"))
        children.append(td)
        td.wait_for("tcpdump listening", lambda: "listening on" in td.stderr, 30)

        config = os.path.join(work, "rstmon.yaml")
        with open(config, "w") as f:
            f.write("flow_table: {size: 65536}\n")
        live_cfg = os.path.join(work, "rstmon-live.yaml")
        with open(live_cfg, "w") as f:
            f.write('flow_table: {size: 65536}\nworkers: 1\n'
                    'ports: [{name: span, device: "net_af_packet0,iface=%s"}]\n'
                    'metrics: {listen: "127.0.0.1:0"}\nevents: {max_per_second: 0}\n' % lab.span)
        live_ev = os.path.join(work, "events-live.jsonl")
        live = Proc([rstmon, "--config", live_cfg, "--events", live_ev, "--report", "json"],
                    os.path.join(work, "rstmon-live.stdout"))
        children.append(live)
        live.wait_for("metrics line", lambda: "metrics at http://" in live.stderr, 90)
        port = int(re.search(r"metrics at http://[^:]+:(\d+)", live.stderr).group(1))
        log("lab, injector, tcpdump and live rstmon up after %.1f s" % (time.monotonic() - t0))

        results = {}
        threads = [threading.Thread(target=S.run_instance, args=(ctx, x, 0.1 * n, results),
                                    daemon=True) for n, x in enumerate(insts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for x in insts:
            if results.get(x, "did not finish") is not None:
                failures.append("%s %d: %s" % (x.cause, x.i, results.get(x, "did not finish")))
        tap.wait_quiet(0.3, 5)
        td.stop()

        header, frames = read_frames(pcap)
        side = lambda fr: "r0" if mac["r0"] in fr.macs else "r1"  # noqa: E731
        r0_only = os.path.join(work, "span-r0.pcap")
        with open(r0_only, "wb") as f:
            f.write(header)
            for fr in frames:
                if side(fr) == "r0":
                    f.write(fr.hdr + fr.data)
        want_dups = copies(frames)
        rst_idents = {fr.ident for fr in frames if fr.pkt is not None and fr.pkt.flags & 4}
        log("capture: %d frames (%d on r0), %d SPAN copies, %d distinct RSTs" % (
            len(frames), sum(side(fr) == "r0" for fr in frames), want_dups, len(rst_idents)))

        # Live: wait until every distinct RST is counted (episodes end after thresholds.linger).
        L.wait_until(lambda: metric_sum(scrape(port), "rstmon_rst_total") >= len(rst_idents),
                     15, "live rstmon to count %d RSTs" % len(rst_idents), step=0.1)
        live_text = scrape(port)
        if live.stop() != 0:
            failures.append("live rstmon exited %s" % live.proc.returncode)
        with open(live_ev) as f:
            live_events = [json.loads(ln) for ln in f]

        dual_rep, dual = offline(rstmon, config, pcap, os.path.join(work, "events-dual.jsonl"))
        one_rep, one = offline(rstmon, config, r0_only, os.path.join(work, "events-r0.jsonl"))

        # Every r0 RST: provoked cause, the same with two mirrors.
        cause_of_port = {x.port: x.cause for x in insts}
        for e in one:
            want = cause_of_port.get(e["sport"]) or cause_of_port.get(e["dport"])
            if e["cause"] != want:
                failures.append("one mirror: %s -> %s, provoked %s" % (key(e), e["cause"], want))
        seen_ports = {e["sport"] for e in one} | {e["dport"] for e in one}
        for x in insts:
            if x.port not in seen_ports:
                failures.append("%s %d: no RST on port %d" % (x.cause, x.i, x.port))
        # Per flow, two mirrors against one, RST by RST (matched by 4-tuple, seq and time).
        sides = collections.defaultdict(set)
        for fr in frames:
            if fr.ident is not None:
                sides[fr.ident].add(side(fr))
        rst_sides = {}
        for fr in frames:
            if fr.pkt is not None and fr.pkt.flags & 4:
                rst_sides[(fr.pkt.key(), fr.pkt.seq, fr.ts_us)] = sides[fr.ident]

        def sides_of(e):
            return rst_sides.get((key(e), e["seq"], int(round(e["ts"] * 1e6))), set())

        def flow_of(e):
            k = key(e)
            return tuple(sorted([k[:2], k[2:]]))

        single, double = collections.defaultdict(list), collections.defaultdict(list)
        for e in one:
            single[flow_of(e)].append(e["cause"])
        router_made = set()  # flows with an RST seen on one side only: made by the router
        for e in dual:
            where = sides_of(e)
            if not where:
                failures.append("two mirrors: event %s matches no RST frame" % (key(e),))
            elif where == {"r1"}:  # behind the router only: its RSTs toward the server
                router_made.add(flow_of(e))
                if e["cause"] not in ("injected", "unclassified"):
                    failures.append("two mirrors: router's RST toward the server %s is %s" % (
                        key(e), e["cause"]))
            else:
                if where == {"r0"}:
                    router_made.add(flow_of(e))
                double[flow_of(e)].append(e["cause"])
        voided = 0
        for flow in sorted(set(single) | set(double)):
            a, b = sorted(single[flow]), sorted(double[flow])
            if a == b:
                continue
            # The router's RST, seen on one side only, in a flow mirrored on both: the causes
            # that rested on its TTL (the same as the endpoints' copies before the router) are
            # withdrawn: no label, never another one.
            if flow in router_made and len(a) == len(b) and set(b) == {"unclassified"}:
                voided += len(b)
                continue
            failures.append("flow %s: one mirror %s, two mirrors %s" % (flow, a, b))
        extra = sum(1 for e in dual if sides_of(e) == {"r1"})
        dual_set = collections.Counter((key(e), e["cause"]) for e in dual)
        live_set = collections.Counter((key(e), e["cause"]) for e in live_events)
        if live_set != dual_set:
            failures.append("live %s != offline %s" % (dict(live_set - dual_set),
                                                      dict(dual_set - live_set)))

        # Copies counted once each, offline and live.
        if dual_rep["duplicates"] != want_dups:
            failures.append("offline duplicates %d, the capture holds %d copies" % (
                dual_rep["duplicates"], want_dups))
        if one_rep["duplicates"] != 0:
            failures.append("one mirror: %d duplicates" % one_rep["duplicates"])
        live_dups = metric_sum(live_text, "rstmon_duplicates_total")
        if live_dups != want_dups:
            failures.append("live rstmon_duplicates_total %d, the capture holds %d copies" % (
                live_dups, want_dups))
        if dual_rep["rst"] != len(rst_idents) or one_rep["rst"] + extra != dual_rep["rst"]:
            failures.append("RSTs: two mirrors %d, one mirror %d (+%d only behind the router), "
                            "distinct on the wire %d" % (dual_rep["rst"], one_rep["rst"], extra,
                                                         len(rst_idents)))
        log("two mirrors: %d RSTs %s (%d only behind the router; %d withdrawn to unclassified), "
            "duplicates %d (live %d); one mirror: %d RSTs %s" % (
                dual_rep["rst"], {c: n for c, n in dual_rep["causes"].items() if n}, extra,
                voided, dual_rep["duplicates"], live_dups, one_rep["rst"],
                {c: n for c, n in one_rep["causes"].items() if n}))
    except L.LabError as e:
        failures.append("lab: %s" % e)
    finally:
        for ch in children:
            if ch.proc.poll() is None:
                ch.stop(signal.SIGTERM)
        if tap is not None:
            tap.close()
        if ctx is not None:
            ctx.close_all()
        lab.down()
        if args.keep:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(work, args.keep)
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("FAIL: %s" % f)
    print("span-duplicates-lab: %s in %.0f s" % ("FAILED" if failures else "passed",
                                                 time.monotonic() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
