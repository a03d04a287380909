#!/usr/bin/python3
"""rstmon scenario suite: provokes every RST cause with real Linux sockets in network
namespaces, captures a SPAN of the router's client-facing interface, records the ground
truth (port -> provoked cause, kernel reason from the tcp:tcp_send_reset tracepoint), runs
rstmon over the SPAN live (net_af_packet) and offline (the pcap), and compares.

    run.py [--rstmon PATH] [--keep DIR] [--only cause[,cause]] [--instances N] [--no-live]

Exit status: 0 pass, 1 fail, 77 skipped (not root, or no `ip netns`). See README.md.
"""

import argparse
import collections
import json
import os
import random
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
import scenarios as S  # noqa: E402
from proc import Proc  # noqa: E402

SKIP = 77
DEFAULT_RSTMON = os.path.join(HERE, "..", "..", "build", "app", "rstmon")
PY = "/usr/bin/python3"

# rstmon config keys used by both runs. Extend here when rstmon grows more thresholds
# (linger, ttl_tolerance, retransmission_run, keepalive_probes, connect_late).
THRESHOLDS = {"idle_threshold": S.IDLE_THRESHOLD}
CONFIG = {"flow_table": {"size": 65536, "handshake_timeout": "%gs" % S.HANDSHAKE_TIMEOUT},
          "thresholds": THRESHOLDS}
OUTCOMES = ("fin", "rst", "handshake_timeout", "idle_expired")

# instances whose first RST may be preceded by a variable number of aftermath RSTs
MULTI_RST = {"injected", "listen_overflow"}


def log(msg):
    sys.stderr.write("[scenarios %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def yaml_scalar(v):
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def to_yaml(d, indent=0):
    """Tiny YAML writer for nested dicts / lists of dicts / scalars (flow style for lists)."""
    out = []
    pad = "  " * indent
    for k, v in d.items():
        if isinstance(v, dict):
            out.append("%s%s:" % (pad, k))
            out.append(to_yaml(v, indent + 1))
        elif isinstance(v, list):
            items = []
            for it in v:
                if isinstance(it, dict):
                    items.append("{" + ", ".join("%s: %s" % (a, yaml_scalar(b))
                                                 for a, b in it.items()) + "}")
                else:
                    items.append(yaml_scalar(it))
            out.append("%s%s: [%s]" % (pad, k, ", ".join(items)))
        else:
            out.append("%s%s: %s" % (pad, k, yaml_scalar(v)))
    return "\n".join(out)


# --------------------------------------------------------------------------
# child processes

def die_with_parent():
    """In the child before exec: SIGTERM when the runner dies, even by SIGKILL."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def lab_child(name, args, workdir, **popen):
    """A lab child (proc.Proc) whose output is kept as workdir/name.stdout and .stderr."""
    return Proc(args, os.path.join(workdir, name + ".stdout"),
                os.path.join(workdir, name + ".stderr"), name=name,
                preexec_fn=die_with_parent, **popen)


# --------------------------------------------------------------------------
# global state shared with other runs: the prequeue sysctl, and leftovers of killed runs

PREQUEUE = "/proc/sys/net/core/netdev_tstamp_prequeue"
PREQUEUE_STATE = "/run/rs-scenarios.prequeue"


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Prequeue:
    """net.core.netdev_tstamp_prequeue=0 while any run captures; the value from before the
    first run is restored when the last one ends (state in PREQUEUE_STATE, under flock)."""

    def __init__(self):
        self.held = False

    def _locked(self, fn):
        import fcntl
        fd = os.open(os.path.dirname(PREQUEUE_STATE), os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = {"orig": None, "pids": []}
            if os.path.exists(PREQUEUE_STATE):
                try:
                    with open(PREQUEUE_STATE) as f:
                        state = json.load(f)
                except ValueError:
                    pass
            state["pids"] = [p for p in state.get("pids", []) if pid_alive(p)]
            fn(state)
            if state["pids"]:
                with open(PREQUEUE_STATE, "w") as f:
                    json.dump(state, f)
            else:
                if state.get("orig") is not None:
                    with open(PREQUEUE, "w") as f:
                        f.write(str(state["orig"]))
                if os.path.exists(PREQUEUE_STATE):
                    os.unlink(PREQUEUE_STATE)
        finally:
            os.close(fd)

    def acquire(self):
        if not os.path.exists(PREQUEUE):
            return

        def add(state):
            if not state["pids"]:
                with open(PREQUEUE) as f:
                    state["orig"] = int(f.read().strip())
            state["pids"].append(os.getpid())
            with open(PREQUEUE, "w") as f:
                f.write("0")
        self._locked(add)
        self.held = True

    def release(self):
        if not self.held:
            return

        def drop(state):
            state["pids"] = [p for p in state["pids"] if p != os.getpid()]
        self._locked(drop)
        self.held = False

    @classmethod
    def sweep(cls):
        """Restores the value if every run that set it is gone (killed with SIGKILL)."""
        if os.path.exists(PREQUEUE_STATE) and os.path.exists(PREQUEUE):
            cls()._locked(lambda state: None)


def sweep_leftovers():
    """Removes what runs killed by SIGKILL left behind: namespaces and SPAN links whose
    runner PID is dead, their trace instances and tracefs mounts."""
    import glob
    for path in glob.glob("/run/netns/rs-*-*"):
        m = re.match(r"rs-(cli|rtr|srv|stl)-(\d+)$", os.path.basename(path))
        if m and not pid_alive(int(m.group(2))):
            log("removing leftover namespace %s" % os.path.basename(path))
            L.sh(["ip", "netns", "del", os.path.basename(path)], check=False)
    for link in os.listdir("/sys/class/net"):
        m = re.match(r"rssp(\d+)$", link)
        if m and not pid_alive(int(m.group(1))):
            log("removing leftover link %s" % link)
            L.sh(["ip", "link", "del", link], check=False)
    with open("/proc/mounts") as f:
        mounts = [ln.split()[1] for ln in f if ln.split()[2:3] == ["tracefs"]]
    for mnt in mounts:
        m = re.match(r".*/rs-scen-(\d+)-[^/]+/tracefs$", mnt)
        if m and not pid_alive(int(m.group(1))):
            for inst in glob.glob(os.path.join(mnt, "instances", "rs-scen-*")):
                mi = re.match(r"rs-scen-(\d+)$", os.path.basename(inst))
                if mi and not pid_alive(int(mi.group(1))):
                    try:
                        os.rmdir(inst)
                    except OSError:
                        pass
            subprocess.run(["umount", mnt], capture_output=True)
            shutil.rmtree(os.path.dirname(mnt), ignore_errors=True)
    for d in glob.glob("/tmp/rs-scen-*-*"):
        m = re.match(r"rs-scen-(\d+)-", os.path.basename(d))
        if m and not pid_alive(int(m.group(1))) and not os.path.ismount(
                os.path.join(d, "tracefs")):
            shutil.rmtree(d, ignore_errors=True)
    Prequeue.sweep()


# --------------------------------------------------------------------------
# the tracepoint

class Trace:
    """tcp:tcp_send_reset in a private trace instance, on a private tracefs mount."""

    def __init__(self, workdir, tag):
        self.mnt = os.path.join(workdir, "tracefs")
        self.name = "rs-scen-%s" % tag
        self.dir = None
        self.mounted = False
        self.mono = False
        self.offsets = []

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tracefs", "nodev", self.mnt], capture_output=True,
                           text=True)
        if p.returncode != 0:
            log("tracefs cannot be mounted (%s): kernel reasons will be '?'" % p.stderr.strip())
            return False
        self.mounted = True
        if not os.path.isdir(os.path.join(self.mnt, "events/tcp/tcp_send_reset")):
            log("no tcp:tcp_send_reset tracepoint: kernel reasons will be '?'")
            return False
        d = os.path.join(self.mnt, "instances", self.name)
        os.mkdir(d)
        self.dir = d
        self._w("buffer_size_kb", "4096")
        try:
            self._w("trace_clock", "mono")      # CLOCK_MONOTONIC: comparable with the pcap
            self.mono = True
        except OSError:
            self.mono = False
        self.offsets = [clock_offset()]
        self._w("events/tcp/tcp_send_reset/enable", "1")
        self._w("tracing_on", "1")
        return True

    def _w(self, rel, val):
        with open(os.path.join(self.dir, rel), "w") as f:
            f.write(val)

    def stop(self):
        if not self.dir:
            return ""
        self._w("tracing_on", "0")
        self.offsets.append(clock_offset())
        with open(os.path.join(self.dir, "trace")) as f:
            return f.read()

    def to_real(self, t):
        """Trace timestamp (CLOCK_MONOTONIC) -> wall clock, as in the pcap."""
        if not self.mono or not self.offsets:
            return None
        return t + sum(self.offsets) / len(self.offsets)

    def cleanup(self):
        if self.dir and os.path.isdir(self.dir):
            try:
                self._w("tracing_on", "0")
                self._w("events/tcp/tcp_send_reset/enable", "0")
            except OSError:
                pass
            for _ in range(50):
                try:
                    os.rmdir(self.dir)
                    break
                except OSError:
                    time.sleep(0.1)
            self.dir = None
        if self.mounted:
            subprocess.run(["umount", self.mnt], capture_output=True)
            self.mounted = False


TRACE_RE = re.compile(r"\s(\d+\.\d+): tcp_send_reset:.*?src=(\S+) dest=(\S+) state=(\S+) "
                      r"reason=(\S+)")


def clock_offset():
    """CLOCK_REALTIME - CLOCK_MONOTONIC, sampled tightly."""
    best = None
    for _ in range(20):
        a = time.clock_gettime(time.CLOCK_MONOTONIC)
        r = time.clock_gettime(time.CLOCK_REALTIME)
        b = time.clock_gettime(time.CLOCK_MONOTONIC)
        if best is None or b - a < best[0]:
            best = (b - a, r - (a + b) / 2)
    return best[1]


def split_addr(s):
    host, _, port = s.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, host)), int(port)


def parse_trace(text, to_real):
    """The tcp_send_reset events: dicts with t (wall clock or None), 4-tuple, reason, state.
    A reset sent on behalf of a listener carries the listener's address and 0.0.0.0:0."""
    out = []
    for line in text.splitlines():
        m = TRACE_RE.search(line)
        if not m:
            continue
        try:
            s, d = split_addr(m.group(2)), split_addr(m.group(3))
        except (ValueError, OSError):
            continue
        out.append({"t": to_real(float(m.group(1))), "src": s[0], "sport": s[1], "dst": d[0],
                    "dport": d[1], "state": m.group(4), "reason": m.group(5), "used": False})
    return out


# --------------------------------------------------------------------------
# truth and comparison

def server_port(p, pmap):
    if p.src in L.SERVER_IPS and p.sport in pmap:
        return p.sport
    if p.dst in L.SERVER_IPS and p.dport in pmap:
        return p.dport
    return None


# a reset's tracepoint fires before the packet is sent; the SPAN copy is timestamped a few
# microseconds later (clock offset error is ~1 us)
TRACE_SLACK = 0.0005


def match_trace(p, events):
    """The tcp_send_reset event that produced wire RST p: same 4-tuple (or the listener's
    address with a wildcard peer), the latest one before the RST was seen on the wire."""
    best = None
    for e in events:
        if e["used"] or e["src"] != p.src or e["sport"] != p.sport:
            continue
        exact = e["dst"] == p.dst and e["dport"] == p.dport
        wild = e["dport"] == 0 and e["dst"] in ("0.0.0.0", "::")
        if not (exact or wild):
            continue
        if e["t"] is not None:
            if e["t"] > p.ts + TRACE_SLACK:
                continue
            if best is None or e["t"] > best["t"]:
                best = e
        elif exact:                         # no usable clock: first unused, in order
            best = e
            break
    if best is not None:
        best["used"] = True
    return best


def build_truth(pkts, trace_ev, pmap):
    rows = []
    for p in pkts:
        if not p.flags & 0x04:
            continue
        sp = server_port(p, pmap)
        cause = pmap.get(sp, "unknown")
        if p.src in L.SERVER_IPS and p.ttl == 64:
            who, reason = "router", "-"      # forged by the router (nft reject, injector)
        else:
            who = "server" if p.src in L.SERVER_IPS else "client"
            e = match_trace(p, trace_ev)
            reason = e["reason"] if e else "?"
        rows.append({"ts": p.ts, "src": p.src, "sport": p.sport, "dst": p.dst,
                     "dport": p.dport, "cause": cause, "reason": reason, "who": who,
                     "port": sp, "pkt": p})
    unmatched = collections.Counter()
    for e in trace_ev:
        if e["used"] or e["src"] not in L.CLIENT_IPS + L.SERVER_IPS:
            continue
        sp = e["sport"] if e["src"] in L.SERVER_IPS else e["dport"]
        unmatched[(pmap.get(sp, "unknown"), e["reason"])] += 1
    return rows, unmatched


def write_truth(path, rows):
    with open(path, "w") as f:
        f.write("ts\tsrc\tsport\tdst\tdport\tprovoked_cause\tkernel_reason\n")
        for r in rows:
            f.write("%.6f\t%s\t%d\t%s\t%d\t%s\t%s\n" % (r["ts"], r["src"], r["sport"], r["dst"],
                                                       r["dport"], r["cause"], r["reason"]))


def read_events(path):
    evs = []
    if not os.path.exists(path):
        return evs
    with open(path) as f:
        for n, line in enumerate(f):
            line = line.strip()
            if not line:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                log("%s:%d: not JSON: %r" % (path, n + 1, line[:100]))
                continue
            for k in ("src", "dst"):
                fam = socket.AF_INET6 if ":" in e[k] else socket.AF_INET
                e[k] = socket.inet_ntop(fam, socket.inet_pton(fam, e[k]))
            evs.append(e)
    return evs


def match(rows, evs):
    """Pairs truth rows with rstmon events by 4-tuple, in order. Returns
    (list of (row, event or None), list of unmatched events)."""
    by_key = collections.defaultdict(list)
    for e in sorted(evs, key=lambda e: e.get("ts", 0)):
        by_key[(e["src"], int(e["sport"]), e["dst"], int(e["dport"]))].append(e)
    pairs = []
    for r in rows:
        k = (r["src"], r["sport"], r["dst"], r["dport"])
        lst = by_key.get(k)
        pairs.append((r, lst.pop(0) if lst else None))
    extra = [e for lst in by_key.values() for e in lst]
    return pairs, extra


ABBREV = {
    "port_closed": "PC", "middlebox_reject": "MB", "injected": "INJ", "connect_timeout": "CT",
    "scan_probe": "SCAN", "listen_overflow": "LO", "unread_data_close": "UDC",
    "linger_abort": "LA", "data_after_close": "DAC", "orphan_abort": "OA",
    "idle_timeout": "IDLE", "keepalive_timeout": "KA", "retransmission_timeout": "RTO",
    "stale_connection": "STALE", "time_wait_reuse": "TWR", "invalid_segment": "INV",
    "no_state": "NOST", "unclassified": "UNCL", "(missing)": "MISS",
}


def fmt_matrix(pairs, extra, title, causes):
    rows_order = [c for c in S.CAUSES] + S.NO_RST + ["normal", "unknown"]
    got = collections.Counter()
    cols = set()
    for r, e in pairs:
        col = e["cause"] if e else "(missing)"
        got[(r["cause"], col)] += 1
        cols.add(col)
    for e in extra:
        got[("(no RST)", e["cause"])] += 1
        cols.add(e["cause"])
    col_order = [c for c in S.CAUSES if c in cols] + \
        [c for c in ("no_state", "unclassified") if True] + \
        sorted(c for c in cols if c not in S.CAUSES and c not in ("no_state", "unclassified"))
    present_rows = [r for r in rows_order + ["(no RST)"]
                    if any(got[(r, c)] for c in col_order) or r in causes or r == "normal"]
    abbrev = {c: ABBREV.get(c, c[:6]) for c in col_order}
    w = 22
    lines = ["", "%s (rows: provoked cause, columns: rstmon cause)" % title]
    lines.append("%-*s" % (w, "") + "".join("%6s" % abbrev[c] for c in col_order) + "  total")
    for r in present_rows:
        vals = [got[(r, c)] for c in col_order]
        if not sum(vals) and r not in causes and r != "normal":
            continue
        lines.append("%-*s" % (w, r) + "".join("%6s" % (v if v else ".") for v in vals)
                     + "%7d" % sum(vals))
    lines.append("  columns: " + ", ".join("%s=%s" % (abbrev[c], c) for c in col_order
                                           if abbrev[c] != c))
    # precision / recall
    lines.append("")
    lines.append("%-24s %5s %5s %5s %9s %7s" % ("cause", "TP", "FP", "FN", "precision", "recall"))
    for c in S.CAUSES:
        tp = got[(c, c)]
        fp = sum(v for (r, col), v in got.items() if col == c and r != c)
        fn = sum(v for (r, col), v in got.items() if r == c and col != c)
        if tp + fp + fn == 0:
            continue
        prec = "%.2f" % (tp / (tp + fp)) if tp + fp else "-"
        rec = "%.2f" % (tp / (tp + fn)) if tp + fn else "-"
        lines.append("%-24s %5d %5d %5d %9s %7s" % (c, tp, fp, fn, prec, rec))
    return "\n".join(lines)


def wrong_list(pairs, extra, title):
    lines = []
    for r, e in pairs:
        if e is not None and e.get("cause") == r["cause"]:
            continue
        p = r["pkt"]
        lines.append("  %.6f %s:%d > %s:%d [%s] seq %d ack %d ttl %d  provoked=%s kernel=%s "
                     "-> rstmon=%s" % (
                         r["ts"], r["src"], r["sport"], r["dst"], r["dport"], p.flagstr(),
                         p.seq, p.ack, p.ttl, r["cause"], r["reason"],
                         ("%s (stage=%s sender=%s validity=%s)" % (
                             e.get("cause"), e.get("stage"), e.get("sender"),
                             e.get("validity"))) if e else "(no event)"))
    for e in extra:
        lines.append("  %s %s:%s > %s:%s rstmon=%s: event without an RST in the capture" % (
            e.get("ts"), e["src"], e["sport"], e["dst"], e["dport"], e.get("cause")))
    if not lines:
        return "%s: every RST got its provoked cause" % title
    return "%s: %d RST(s) wrong:\n%s" % (title, len(lines), "\n".join(lines))


def multiset(evs):
    return collections.Counter((e["src"], int(e["sport"]), e["dst"], int(e["dport"]),
                                e["cause"]) for e in evs)


def scrape(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=3) as r:
            return r.read().decode()
    except OSError:
        return None


def scrape_outcomes(port):
    """rstmon_connections_total by outcome, or None if the metrics cannot be read."""
    body = scrape(port)
    if body is None:
        return None
    out = dict.fromkeys(OUTCOMES, 0)
    for line in body.splitlines():
        m = re.match(r'rstmon_connections_total\{[^}]*outcome="([a-z_]+)"[^}]*\}\s+(\S+)', line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + int(float(m.group(2)))
    return out


def scrape_packets(port):
    body = scrape(port)
    if body is None:
        return None
    n = 0
    found = False
    for line in body.splitlines():
        if line.startswith("rstmon_packets_total"):
            n += int(float(line.rsplit(None, 1)[1]))
            found = True
    return n if found else None


# --------------------------------------------------------------------------
# main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rstmon", default=DEFAULT_RSTMON, help="rstmon binary")
    ap.add_argument("--keep", metavar="DIR",
                    help="keep the pcap, truth, events, configs and logs of this run in DIR")
    ap.add_argument("--only", help="comma-separated causes (or handshake_timeout) to provoke "
                    "(normal traffic always)")
    ap.add_argument("--instances", type=int, default=5, help="instances per cause (default 5)")
    ap.add_argument("--no-live", action="store_true", help="skip the live rstmon run")
    ap.add_argument("--seed", type=int, help="random seed (default: random)")
    a = ap.parse_args(argv)
    if not 1 <= a.instances <= S.MAX_INSTANCES:
        ap.error("--instances must be 1..%d" % S.MAX_INSTANCES)
    if a.only:
        a.causes = [c.strip() for c in a.only.split(",") if c.strip()]
        bad = [c for c in a.causes if c not in S.SCENARIO_NAMES]
        if bad:
            ap.error("unknown cause(s): %s (known: %s)" % (", ".join(bad),
                                                          ", ".join(S.SCENARIO_NAMES)))
    else:
        a.causes = list(S.SCENARIO_NAMES)
    return a


def preflight():
    if os.geteuid() != 0:
        print("SKIP: scenario suite needs root")
        sys.exit(SKIP)
    try:
        p = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10)
        if p.returncode != 0:
            raise OSError(p.stderr)
    except (OSError, subprocess.TimeoutExpired) as e:
        print("SKIP: `ip netns` unavailable: %s" % e)
        sys.exit(SKIP)
    missing = [t for t in ("tcpdump", "nft", "tc", "ethtool") if not shutil.which(t)]
    if missing:
        print("SKIP: missing tools: %s" % ", ".join(missing))
        sys.exit(SKIP)
    try:
        import scapy  # noqa: F401
    except ImportError:
        print("SKIP: python3 scapy missing")
        sys.exit(SKIP)


def wait_for_binary(path, timeout=180):
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            # a binary being linked right now may be incomplete: wait until its size settles
            s1 = os.path.getsize(path)
            time.sleep(0.5)
            if os.path.isfile(path) and os.path.getsize(path) == s1 and s1 > 0:
                return
        if time.monotonic() > deadline:
            raise L.LabError("rstmon binary %s not there after %d s" % (path, timeout))
        if not announced:
            log("waiting for %s to appear" % path)
            announced = True
        time.sleep(1)


class Terminated(Exception):
    pass


def on_term(_sig, _frm):
    raise Terminated()


def on_int(_sig, _frm):
    raise KeyboardInterrupt()


def main(argv):
    args = parse_args(argv)
    preflight()
    signal.signal(signal.SIGINT, on_int)       # also when started in the background
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    t_start = time.monotonic()
    tag = str(os.getpid())
    import scapy.all  # noqa: F401  (imported once here, not by the first scenario thread)
    try:
        wait_for_binary(args.rstmon)
    except L.LabError as e:
        print("FAILED: %s" % e)
        return 1
    work = tempfile.mkdtemp(prefix="rs-scen-%s-" % tag)
    os.chmod(work, 0o755)
    log("work dir %s, seed %d" % (work, seed))
    rstmon = os.path.join(work, "rstmon")
    shutil.copy2(args.rstmon, rstmon)       # a rebuild during the run cannot mix binaries

    sweep_leftovers()
    lab = L.Lab(tag, log)
    trace = Trace(work, tag)
    children = []
    prequeue = Prequeue()
    ctx = None
    result = {"ok": False}
    pcap = os.path.join(work, "span.pcap")
    try:
        log("building the lab")
        lab.up()
        lab.srv.sysctl("net.ipv4.tcp_abort_on_overflow", 1)
        lab.rtr.sysctl("net.netfilter.nf_conntrack_tcp_timeout_established",
                       S.CT_ESTABLISHED_TIMEOUT)
        lab.rtr.sysctl("net.netfilter.nf_conntrack_tcp_loose", 0)
        tap = L.Tap(lab.cli, "c0")
        ctx = S.Ctx(lab, tap, log)
        normal = S.NormalTraffic(ctx)
        normal.setup()
        normal.start()

        insts = {c: [S.Inst(c, i) for i in range(args.instances)] for c in args.causes}
        pmap = S.port_map(args.instances)

        if "injected" in args.causes:
            modes = ["single", "burst", "bare"]
            inj_args = ["%d:%s" % (x.port, modes[x.i % 3]) for x in insts["injected"]]
            inj = lab_child("injector", ["ip", "netns", "exec", lab.rtr.name, PY,
                                     os.path.join(HERE, "injector.py"), "r0",
                                     os.path.join(work, "injector.log"), S.TRIGGER] + inj_args,
                        work)
            children.append(inj)
            inj.wait_for("'ready'", lambda: "ready" in inj.stdout, 30)

        have_trace = trace.start()

        prequeue.acquire()

        td = lab_child("tcpdump", ["tcpdump", "-Z", "root", "-U", "--immediate-mode", "-n",
                               "-i", lab.span, "-w", pcap], work)
        children.append(td)
        td.wait_for("'listening on'", lambda: "listening on" in td.stderr, 30)

        live = None
        live_cfg = os.path.join(work, "rstmon-live.yaml")
        live_ev = os.path.join(work, "events-live.jsonl")
        if not args.no_live:
            cfg = dict(CONFIG)
            cfg["ports"] = [{"name": "span", "device": "net_af_packet0,iface=%s" % lab.span}]
            cfg["workers"] = 1
            cfg["metrics"] = {"listen": "127.0.0.1:0"}
            cfg["events"] = {"max_per_second": 0}
            with open(live_cfg, "w") as f:
                f.write(to_yaml(cfg) + "\n")
            live = lab_child("rstmon-live", [rstmon, "--config", live_cfg, "--events", live_ev,
                                         "--report", "json"], work)
            children.append(live)
            live.wait_for("'metrics at http://'", lambda: "metrics at http://" in live.stderr,
                          90)
            live_port = int(re.search(r"metrics at http://[^:]+:(\d+)", live.stderr).group(1))
            log("live rstmon up (metrics port %d)" % live_port)

        normal.ready()
        log("lab ready after %.1f s; provoking %s x %d" % (
            time.monotonic() - t_start, ",".join(args.causes), args.instances))

        # ---- traffic -----------------------------------------------------------
        t_traffic = time.monotonic()
        normal.start_clients()
        results = {}
        threads = []
        slow = {"idle_timeout", "keepalive_timeout", "retransmission_timeout",
                "connect_timeout", "stale_connection", "handshake_timeout"}
        for c in args.causes:
            if c in S.GROUPS:
                t = threading.Thread(target=S.run_group, daemon=True,
                                     args=(ctx, c, insts[c], random.uniform(0.2, 0.8),
                                           results))
                threads.append(t)
                continue
            for inst in insts[c]:
                d = random.uniform(0, 0.5) if c in slow else random.uniform(0.1, 2.5)
                threads.append(threading.Thread(target=S.run_instance, daemon=True,
                                                args=(ctx, inst, d, results)))
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        normal.join_long(max(1.0, deadline - time.monotonic()))
        normal.stop_clients()
        log("traffic done after %.1f s" % (time.monotonic() - t_traffic))
        # the last segments reach the SPAN: wait for a quiet moment on the client's link
        # (stray SYN-ACK retransmissions of the half-open invalid_segment instances may
        # never stop; that is fine, the wait is bounded)
        tap.wait_quiet(0.3, 2.0)

        # ---- stop the capture ----------------------------------------------------
        t_stop = time.monotonic()
        rc = td.stop(signal.SIGINT)
        log("tcpdump stopped in %.2f s" % (time.monotonic() - t_stop))
        m = re.search(r"(\d+) packets? dropped by kernel", td.stderr)
        td_dropped = int(m.group(1)) if m else -1
        m = re.search(r"(\d+) packets? captured", td.stderr)
        td_captured = int(m.group(1)) if m else -1
        if rc != 0:
            raise L.LabError("tcpdump exited %s: %s" % (rc, td.stderr[-2000:]))
        live_report = None
        live_short = None
        live_scraped = None
        if live is not None:
            # wait until live rstmon has taken in at least what tcpdump wrote, and settles
            last, stable_since = None, time.monotonic()
            dl = time.monotonic() + 10
            while time.monotonic() < dl:
                n = scrape_packets(live_port)
                if n is not None and n != last:
                    last, stable_since = n, time.monotonic()
                if n is not None and n >= td_captured and \
                        time.monotonic() - stable_since > 0.3:
                    break
                time.sleep(0.1)
            log("live rstmon saw %s frames, tcpdump %d" % (last, td_captured))
            if last is None or last < td_captured:
                live_short = "live rstmon took in %s frames, fewer than tcpdump's %d" % (
                    last, td_captured)
            # the handshake_timeout flows end by the live expiry sweep (idle polls), not at
            # exit: the scenario stayed until HANDSHAKE_TIMEOUT after its last SYN, so they
            # should be counted already; allow a little slack before reading the report
            want_ht = len(insts.get("handshake_timeout", []))
            live_scraped = scrape_outcomes(live_port)
            dl = time.monotonic() + 3
            while want_ht and time.monotonic() < dl and (
                    live_scraped is None or live_scraped["handshake_timeout"] < want_ht):
                time.sleep(0.1)
                live_scraped = scrape_outcomes(live_port)
            log("live rstmon connection outcomes before stopping: %s" % live_scraped)
            t_stop = time.monotonic()
            lrc = live.stop(signal.SIGINT, timeout=60)
            log("live rstmon stopped in %.2f s" % (time.monotonic() - t_stop))
            if lrc != 0:
                raise L.LabError("live rstmon exited %s:\n%s" % (lrc, live.stderr[-3000:]))
            try:
                live_report = json.loads(live.stdout)
            except ValueError:
                live_report = None
        trace_text = trace.stop()
        with open(os.path.join(work, "trace.txt"), "w") as f:
            f.write(trace_text)
        prequeue.release()
        for ch in children:
            ch.stop(signal.SIGTERM, timeout=10)
        inj_log = os.path.join(work, "injector.log")

        failures = []
        for inst, err in sorted(results.items(), key=lambda kv: kv[0].port):
            if err:
                failures.append("scenario %r failed: %s" % (inst, err))
        for c in args.causes:
            for inst in insts[c]:
                if inst not in results:
                    failures.append("scenario %r did not finish in time" % inst)
        for e in normal.errors:
            failures.append("normal traffic: %s" % e)
        if td_dropped != 0:
            failures.append("tcpdump dropped %d packets" % td_dropped)
        if live_short:
            failures.append(live_short)
        result.update(insts=insts, pmap=pmap, failures=failures, have_trace=have_trace,
                      live=live is not None, live_ev=live_ev, live_report=live_report,
                      normal_count=dict(normal.count), inj_log=inj_log,
                      live_scraped=live_scraped,
                      to_real=trace.to_real)
    except (KeyboardInterrupt, Terminated):
        log("interrupted: cleaning up")
        result["interrupted"] = True
    except Exception:
        import traceback
        log("lab error:\n" + traceback.format_exc())
        result["error"] = True
    finally:
        for ch in children:
            try:
                ch.stop(signal.SIGTERM, timeout=10)
            except Exception:  # noqa: BLE001
                pass
        try:
            if ctx is not None:
                ctx.stop.set()
                ctx.tap.close()
                ctx.close_all()
        except Exception:  # noqa: BLE001
            pass
        try:
            lab.down()
        except Exception as e:  # noqa: BLE001
            log("teardown: %s" % e)
        trace.cleanup()
        try:
            prequeue.release()
        except Exception as e:  # noqa: BLE001
            log("restoring netdev_tstamp_prequeue: %s" % e)

    try:
        if result.get("interrupted"):
            return 130
        if result.get("error"):
            return 1
        return analyse(args, work, rstmon, pcap, result, t_start)
    finally:
        if args.keep:
            keep(work, args.keep)
        shutil.rmtree(work, ignore_errors=True)


def keep(work, dest):
    os.makedirs(dest, exist_ok=True)
    for name in os.listdir(work):
        src = os.path.join(work, name)
        if name in ("rstmon", "tracefs") or not os.path.isfile(src):
            continue
        shutil.copy2(src, os.path.join(dest, name))
    log("kept the run in %s" % dest)


def analyse(args, work, rstmon, pcap, result, t_start):
    insts, pmap, failures = result["insts"], result["pmap"], result["failures"]
    trace_text = open(os.path.join(work, "trace.txt")).read()
    pkts, nframes = L.read_pcap(pcap)
    rows, unmatched = build_truth(pkts, parse_trace(trace_text, result["to_real"]), pmap)
    write_truth(os.path.join(work, "truth.tsv"), rows)
    ports = {}
    for c, lst in insts.items():
        for inst in lst:
            ports[inst.port] = inst

    # offline rstmon
    cfg_path = os.path.join(work, "rstmon.yaml")
    with open(cfg_path, "w") as f:
        f.write(to_yaml(CONFIG) + "\n")
    ev_off = os.path.join(work, "events-offline.jsonl")
    p = subprocess.run([rstmon, "--pcap", pcap, "--config", cfg_path, "--events", ev_off,
                        "--report", "json"], capture_output=True, text=True, timeout=180)
    with open(os.path.join(work, "rstmon-offline.stdout"), "w") as f:
        f.write(p.stdout)
    with open(os.path.join(work, "rstmon-offline.stderr"), "w") as f:
        f.write(p.stderr)
    if p.returncode != 0:
        failures.append("offline rstmon exited %d: %s" % (p.returncode, p.stderr.strip()[-1500:]))
    try:
        off_report = json.loads(p.stdout)
    except ValueError:
        off_report = None
    evs_off = read_events(ev_off)
    evs_live = read_events(result["live_ev"]) if result["live"] else None

    out = []
    out.append("capture: %d frames, %d TCP, %d RSTs; normal connections: %s" % (
        nframes, len(pkts), len(rows),
        ", ".join("%s=%d" % kv for kv in sorted(result["normal_count"].items()))))

    # per cause: RSTs per instance and kernel reasons
    per_inst = collections.Counter(r["port"] for r in rows)
    out.append("")
    out.append("%-24s %-16s %-28s %s" % ("cause", "RSTs/instance", "sent by", "kernel reasons"))
    for c in [c for c in args.causes if c in S.CAUSES]:
        counts = [per_inst.get(inst.port, 0) for inst in insts[c]]
        rs = collections.Counter(r["reason"] for r in rows if r["cause"] == c)
        who = collections.Counter(r["who"] for r in rows if r["cause"] == c)
        out.append("%-24s %-16s %-28s %s" % (
            c, ",".join(map(str, counts)), ",".join("%s=%d" % kv for kv in sorted(who.items())),
            ", ".join("%s=%d" % kv for kv in sorted(rs.items()))))
        for inst in insts[c]:
            if per_inst.get(inst.port, 0) == 0 and not any(
                    inst.cause in f for f in failures):
                failures.append("%r: no RST on the wire" % inst)
    check_no_rst(out, failures, insts, pkts, per_inst)
    if unmatched:
        out.append("kernel RSTs that never reached the SPAN (dropped on purpose by a "
                   "blackhole/filter): " + ", ".join("%s/%s=%d" % (k[0], k[1], v)
                                                     for k, v in sorted(unmatched.items())))
    missing_reason = [r for r in rows if r["reason"] == "?"]
    if missing_reason and result["have_trace"]:
        out.append("WARNING: %d endpoint RST(s) without a tracepoint event" % len(missing_reason))

    check_outcomes(out, failures, insts, off_report, result)

    normal_rsts = [r for r in rows if r["cause"] in ["normal", "unknown"] + S.NO_RST]
    for r in normal_rsts:
        failures.append("RST on %s traffic: %s" % (r["cause"], r["pkt"]))

    verdicts = collections.defaultdict(dict)     # id(pkt) -> {title: rstmon cause}

    def check(evs, title):
        pairs, extra = match(rows, evs)
        for r, e in pairs:
            verdicts[id(r["pkt"])][title] = e["cause"] if e else "(missing)"
        out.append(fmt_matrix(pairs, extra, "%s confusion matrix" % title, args.causes))
        out.append("")
        out.append(wrong_list(pairs, extra, title))
        nbad = sum(1 for r, e in pairs if e is None or e.get("cause") != r["cause"]) + len(extra)
        if nbad:
            failures.append("%s: %d RST(s) without their provoked cause" % (title, nbad))
        # Evidence: an RST the router made (TTL 64 on the SPAN) is one hop closer than the server
        # it speaks for; an endpoint's own RST comes from its endpoint's distance.
        for r, e in pairs:
            d = e.get("hop_delta") if e else None
            if e and r["who"] == "router" and (d is None or d < 1):
                failures.append("%s: router-made RST with hop_delta %s: %s" % (title, d, e))
            elif e and r["who"] != "router" and d not in (None, 0):
                failures.append("%s: %s's own RST with hop_delta %s: %s" % (title, r["who"], d, e))
        for e in evs:
            sp = int(e["sport"]) if e["src"] in L.SERVER_IPS else int(e["dport"])
            if pmap.get(sp) in ["normal"] + S.NO_RST:
                failures.append("%s: event on %s traffic: %s" % (title, pmap[sp], e))

    check(evs_off, "offline")
    if evs_live is not None:
        check(evs_live, "live")
        a, b = multiset(evs_off), multiset(evs_live)
        if a == b:
            out.append("\nlive and offline agree exactly (%d events)" % sum(a.values()))
        else:
            only_off = a - b
            only_live = b - a
            out.append("\nlive and offline DISAGREE: %d only offline, %d only live" % (
                sum(only_off.values()), sum(only_live.values())))
            for k, v in list(only_off.items())[:30]:
                out.append("  only offline: %s:%d > %s:%d %s x%d" % (k + (v,)))
            for k, v in list(only_live.items())[:30]:
                out.append("  only live:    %s:%d > %s:%d %s x%d" % (k + (v,)))
            failures.append("live and offline disagree")

    report = "\n".join(out)
    print(report)
    with open(os.path.join(work, "report.txt"), "w") as f:
        f.write(report + "\n")
    write_shapes(os.path.join(work, "shapes.txt"), pkts, insts, rows, verdicts)
    if failures:
        verdict = "FAILED (%d problem(s)) in %.0f s:\n" % (
            len(failures), time.monotonic() - t_start) + "".join(
                "  - " + f_.replace("\n", "\n    ") + "\n" for f_ in failures)
    else:
        verdict = "PASSED in %.0f s\n" % (time.monotonic() - t_start)
    print("\n" + verdict, end="")
    with open(os.path.join(work, "report.txt"), "a") as f:
        f.write("\n" + verdict)
    return 1 if failures else 0


def check_no_rst(out, failures, insts, pkts, per_inst):
    """The handshake_timeout instances on the wire: only client SYNs on their ports (so no
    RST; RSTs are also failures through the truth rows), and the capture goes on past
    flow_table.handshake_timeout after the last of them."""
    hts = insts.get("handshake_timeout", [])
    if hts:
        syns = {inst.port: [p for p in pkts if p.dport == inst.port and p.src in L.CLIENT_IPS
                            and p.flags & 0x17 == 0x02] for inst in hts}
        other = [p for p in pkts if any(inst.port in (p.sport, p.dport) for inst in hts)
                 and not (p.dport in syns and p.src in L.CLIENT_IPS and p.flags & 0x17 == 2)]
        out.append("%-24s %-16s SYNs/instance %s, other segments %d" % (
            "handshake_timeout", ",".join(str(per_inst.get(i.port, 0)) for i in hts),
            ",".join(str(len(syns[i.port])) for i in hts), len(other)))
        for inst in hts:
            if not syns[inst.port]:
                failures.append("%r: no SYN on the wire" % inst)
        for p in other[:10]:
            failures.append("handshake_timeout: a segment other than a client SYN: %s" % p)
        # offline, flows expire at the latest at the end of the replay, by the last packet's
        # time: the capture must go on past the timeout
        last_syn = max((p.ts for lst in syns.values() for p in lst), default=None)
        last_pkt = max((p.ts for p in pkts), default=0.0)
        if last_syn is not None and last_pkt - last_syn <= S.HANDSHAKE_TIMEOUT:
            failures.append("handshake_timeout: the capture ends %.2f s after the last SYN, "
                            "not past flow_table.handshake_timeout (%g s)" % (
                                last_pkt - last_syn, S.HANDSHAKE_TIMEOUT))
        elif last_syn is not None:
            out.append("%-24s capture goes on %.1f s past the last SYN (timeout %g s)" % (
                "", last_pkt - last_syn, S.HANDSHAKE_TIMEOUT))


def check_outcomes(out, failures, insts, off_report, result):
    """rstmon's connection outcomes (offline report, live report at exit, live metrics before
    the stop) count exactly one handshake_timeout per handshake_timeout instance, and none for
    any other traffic (checked also when that scenario is not selected: then 0)."""
    want = len(insts.get("handshake_timeout", []))

    def fmt(d):
        if d is None:
            return "(none)"
        return " ".join("%s=%s" % (k, d.get(k, "?")) for k in OUTCOMES)

    out.append("")
    out.append("connection outcomes (expect handshake_timeout=%d):" % want)
    sources = [("offline report", (off_report or {}).get("connections"))]
    if result["live"]:
        sources.append(("live report", (result["live_report"] or {}).get("connections")))
        sources.append(("live metrics", result.get("live_scraped")))
    for title, conn in sources:
        out.append("  %-15s %s" % (title, fmt(conn)))
        if conn is None:
            failures.append("%s: no connection outcomes" % title)
        elif conn.get("handshake_timeout") != want:
            failures.append("%s: handshake_timeout=%s, expected %d (one per instance, none "
                            "from other traffic)" % (title, conn.get("handshake_timeout"), want))


def write_shapes(path, pkts, insts, rows, verdicts):
    """For every instance: every packet of the instance's port, in order, RSTs marked with
    the provoked cause, the kernel reason and rstmon's verdicts. What the classifier keys on."""
    by_pkt = {id(r["pkt"]): r for r in rows}
    with open(path, "w") as f:
        for c, lst in insts.items():
            for inst in lst:
                f.write("== %s #%d (port %d) %s\n" % (c, inst.i, inst.port,
                                                       "; ".join(inst.notes)))
                t0 = None
                for p in pkts:
                    if inst.port not in (p.sport, p.dport):
                        continue
                    if t0 is None:
                        t0 = p.ts
                    line = "  %s+%.6f %s:%d > %s:%d [%s] seq %d ack %d win %d len %d ttl %d" % (
                        "RST " if p.flags & 4 else "    ", p.ts - t0, p.src, p.sport, p.dst,
                        p.dport, p.flagstr(), p.seq, p.ack, p.win, p.plen, p.ttl)
                    r = by_pkt.get(id(p))
                    if r is not None:
                        line += "   <- %s, kernel %s%s" % (r["who"], r["reason"], "".join(
                            "; %s: %s" % kv for kv in sorted(verdicts.get(id(p), {}).items())))
                    f.write(line + "\n")
                f.write("\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
