#!/usr/bin/python3
"""How rstmon degrades on one-sided and lossy captures, measured on the scenario suite's SPAN.

Takes a scenario run (run.py --keep DIR: span.pcap, truth.tsv, rstmon.yaml), or makes one, and
replays variants of its capture through rstmon offline:

    one-sided  client->server only / server->client only (asymmetric routing: the other
               direction never crosses the tap); the RSTs of the removed direction leave too
    loss       1% and 5% of the non-RST frames dropped at random, several fixed seeds each
               (a lossy mirror; every RST stays, so every truth row is still asked about)

Each RST left in a variant is paired with its truth row (4-tuple and capture timestamp) and
rstmon's cause for it. `no_state` and `unclassified` are honest abstentions: they cost recall,
never precision. Any other cause that is not the provoked one is a wrong label. Printed: per
cause TP, FP (wrong labels of that cause), FN, abstentions, precision and recall, per variant
and pooled over the seeds; then every wrong label with its shape.

    degrade.py --rstmon build/app/rstmon [--capture DIR | --instances N] [--seeds N]
               [--keep DIR] [--check]

--check: exit 1 unless every cause's precision is >= 0.99 in every variant (and the intact
capture is labelled exactly). Exit 77 when a scenario run is needed and cannot be made (not
root, no netns, tools missing: run.py's own skip).
"""

import argparse
import collections
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lab as L  # noqa: E402
import scenarios as S  # noqa: E402

SKIP = 77
ABSTAIN = ("no_state", "unclassified")
MIN_PRECISION = 0.99
LOSS_RATES = (0.01, 0.05)
DEFAULT_SEEDS = 10


def log(msg):
    sys.stderr.write("[degrade] %s\n" % msg)
    sys.stderr.flush()


# ---- pcap in and out (classic pcap, as tcpdump writes the SPAN) ---------------------------

def read_records(path):
    """Returns (global header bytes, endianness, list of (header bytes, data bytes, ts))."""
    with open(path, "rb") as f:
        blob = f.read()
    magic = struct.unpack("<I", blob[:4])[0]
    e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = struct.unpack(e + "I", blob[:4])[0] == 0xA1B23C4D
    out = []
    off = 24
    while off + 16 <= len(blob):
        sec, frac, incl, _orig = struct.unpack_from(e + "IIII", blob, off)
        out.append((blob[off:off + 16], blob[off + 16:off + 16 + incl],
                    sec + frac / (1e9 if nano else 1e6)))
        off += 16 + incl
    return blob[:24], out


def write_records(path, header, records):
    with open(path, "wb") as f:
        f.write(header)
        for h, d, _ts in records:
            f.write(h)
            f.write(d)


def norm(addr):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, addr))


def us(ts):
    return int(round(float(ts) * 1e6))


# ---- the capture's RSTs and their truth -----------------------------------------------------

class Capture:
    """The scenario capture: frames, which of them are RSTs, and each RST's provoked cause."""

    def __init__(self, directory):
        self.dir = directory
        self.header, self.records = read_records(os.path.join(directory, "span.pcap"))
        self.config = os.path.join(directory, "rstmon.yaml")
        self.pkts = [L.parse_frame(d, ts) for _h, d, ts in self.records]
        truth = collections.defaultdict(list)
        with open(os.path.join(directory, "truth.tsv")) as f:
            next(f)
            for ln in f:
                ts, src, sport, dst, dport, cause, _reason = ln.rstrip("\n").split("\t")
                truth[(norm(src), int(sport), norm(dst), int(dport))].append((us(ts), cause))
        # Truth rows are in capture order, one per RST on the wire: pair them with the RST
        # frames of their 4-tuple in order.
        self.cause_of = {}  # frame index -> provoked cause
        for i, p in enumerate(self.pkts):
            if p is None or not p.flags & 0x04:
                continue
            rows = truth.get(p.key())
            if not rows:
                raise SystemExit("%s: RST frame %d (%r) has no truth row" % (directory, i + 1, p))
            t, cause = rows.pop(0)
            if abs(t - us(p.ts)) > 1:
                raise SystemExit("%s: RST frame %d at %d us, its truth row at %d" % (
                    directory, i + 1, us(p.ts), t))
            self.cause_of[i] = cause
        left = sum(len(v) for v in truth.values())
        if left:
            raise SystemExit("%s: %d truth rows without an RST frame" % (directory, left))

    def from_client(self, i):
        p = self.pkts[i]
        return p is not None and p.src in L.CLIENT_IPS


def variants(cap, seeds):
    """(name, group, list of frame indexes kept). `group` pools the seeds of one loss rate."""
    n = len(cap.records)
    yield "intact", "intact", list(range(n))
    yield "client->server only", "client->server only", [i for i in range(n) if cap.from_client(i)]
    yield "server->client only", "server->client only", \
        [i for i in range(n) if not cap.from_client(i)]
    for rate in LOSS_RATES:
        group = "%g%% loss" % (rate * 100)
        for seed in range(1, seeds + 1):
            rnd = random.Random(seed * 1000 + int(rate * 1000))
            keep = [i for i in range(n) if i in cap.cause_of or rnd.random() >= rate]
            yield "%s seed %d" % (group, seed), group, keep


# ---- running rstmon and scoring --------------------------------------------------------------

def run_rstmon(rstmon, config, pcap, events):
    p = subprocess.run([rstmon, "--config", config, "--pcap", pcap, "--events", events,
                        "--report", "json"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise SystemExit("rstmon on %s exited %d:\n%s" % (pcap, p.returncode, p.stderr[-3000:]))
    evs = collections.defaultdict(list)
    with open(events) as f:
        for ln in f:
            e = json.loads(ln)
            evs[(norm(e["src"]), e["sport"], norm(e["dst"]), e["dport"], us(e["ts"]))].append(e)
    return evs, json.loads(p.stdout)


def score(cap, keep, evs):
    """List of (frame index, provoked cause, rstmon cause or '(missing)', event)."""
    out = []
    for i in keep:
        if i not in cap.cause_of:
            continue
        p = cap.pkts[i]
        lst = evs.get(p.key() + (us(p.ts),))
        e = lst.pop(0) if lst else None
        out.append((i, cap.cause_of[i], e["cause"] if e else "(missing)", e))
    extra = [e for lst in evs.values() for e in lst]
    return out, extra


class Tally:
    def __init__(self):
        self.tp = collections.Counter()
        self.fp = collections.Counter()
        self.fn = collections.Counter()
        self.abstain = collections.Counter()
        self.rsts = 0
        self.wrong = []  # (variant, frame index, truth, got, event, frames kept)

    def add(self, variant, pairs, kept):
        for i, truth, got, e in pairs:
            self.rsts += 1
            if got == truth:
                self.tp[truth] += 1
                continue
            self.fn[truth] += 1
            if got in ABSTAIN:
                self.abstain[truth] += 1
            else:
                self.fp[got] += 1
                self.wrong.append((variant, i, truth, got, e, kept))

    def precision(self, c):
        d = self.tp[c] + self.fp[c]
        return self.tp[c] / d if d else None

    def recall(self, c):
        d = self.tp[c] + self.fn[c]
        return self.tp[c] / d if d else None


def fmt(v):
    return "-" if v is None else "%.3f" % v


def table(title, t, causes):
    lines = ["", "%s: %d RSTs, %d labelled right, %d abstained (no_state/unclassified), "
             "%d wrong" % (title, t.rsts, sum(t.tp.values()), sum(t.abstain.values()),
                           sum(t.fp.values())),
             "  %-24s %5s %5s %5s %7s %9s %7s" % ("cause", "TP", "FP", "FN", "abstain",
                                                  "precision", "recall")]
    for c in causes:
        if t.tp[c] + t.fp[c] + t.fn[c] == 0:
            continue
        lines.append("  %-24s %5d %5d %5d %7d %9s %7s" % (c, t.tp[c], t.fp[c], t.fn[c],
                                                          t.abstain[c], fmt(t.precision(c)),
                                                          fmt(t.recall(c))))
    return "\n".join(lines)


def shape(cap, i, kept, k=10):
    """The frames of the RST's 4-tuple up to it (last k; those the variant lost marked), for
    the wrong-label list."""
    p = cap.pkts[i]
    key = tuple(sorted([(p.src, p.sport), (p.dst, p.dport)]))
    same = [j for j in range(i + 1) if cap.pkts[j] is not None and
            tuple(sorted([(cap.pkts[j].src, cap.pkts[j].sport),
                          (cap.pkts[j].dst, cap.pkts[j].dport)])) == key]
    return "\n".join("    %s %s" % ("   " if j in kept else "XX ", cap.pkts[j])
                     for j in same[-k:])


def make_capture(args, work):
    cmd = ["/usr/bin/python3", os.path.join(HERE, "run.py"), "--rstmon", args.rstmon,
           "--keep", os.path.join(work, "run"), "--no-live", "--instances", str(args.instances),
           "--seed", str(args.scenario_seed)]
    log("making the scenario capture: %s" % " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=900)
    if p.returncode == SKIP:
        print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "SKIP")
        sys.exit(SKIP)
    if not os.path.isfile(os.path.join(work, "run", "span.pcap")):
        raise SystemExit("run.py exited %d without a capture:\n%s" % (p.returncode,
                                                                      p.stdout[-4000:]))
    if p.returncode != 0:
        # The intact capture is checked below by this script too: go on, but say so.
        log("run.py exited %d (its own checks failed); measuring anyway" % p.returncode)
    return os.path.join(work, "run")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rstmon", required=True)
    ap.add_argument("--capture", metavar="DIR", help="a kept scenario run (run.py --keep DIR)")
    ap.add_argument("--instances", type=int, default=5,
                    help="instances per cause when a scenario run is made (default 5)")
    ap.add_argument("--scenario-seed", type=int, default=10,
                    help="run.py --seed when a scenario run is made (default 10)")
    ap.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                    help="seeds per loss rate (default %d)" % DEFAULT_SEEDS)
    ap.add_argument("--keep", metavar="DIR", help="keep the variants, events and report here")
    ap.add_argument("--check", action="store_true",
                    help="fail unless precision >= %.2f per cause in every variant" % MIN_PRECISION)
    args = ap.parse_args(argv)
    if not os.access(args.rstmon, os.X_OK):
        raise SystemExit("no rstmon binary at %s" % args.rstmon)
    args.rstmon = os.path.abspath(args.rstmon)

    work = tempfile.mkdtemp(prefix="rs-degrade-")
    try:
        src = args.capture or make_capture(args, work)
        cap = Capture(src)
        causes = [c for c in S.CAUSES if c in set(cap.cause_of.values())]
        log("capture %s: %d frames, %d RSTs" % (src, len(cap.records), len(cap.cause_of)))
        groups = collections.OrderedDict()
        report = []
        for name, group, keep in variants(cap, args.seeds):
            slug = name.replace(" ", "-").replace(">", "").replace("%", "pc")
            pcap = os.path.join(work, slug + ".pcap")
            write_records(pcap, cap.header, [cap.records[i] for i in keep])
            evs, rep = run_rstmon(args.rstmon, cap.config, pcap,
                                  os.path.join(work, slug + ".events.jsonl"))
            pairs, extra = score(cap, keep, evs)
            t = groups.setdefault(group, Tally())
            t.add(name, pairs, set(keep))
            for e in extra:  # an event for no RST frame of the variant: a bug in the pairing
                t.wrong.append((name, None, "(no RST)", e["cause"], e, None))
                t.fp[e["cause"]] += 1
            report.append({"variant": name, "frames": len(keep), "rsts": len(pairs),
                           "report_rst": rep["rst"], "flows": rep["flows_created"],
                           "one_sided_flows": rep["one_sided_flows"]})
        out = []
        for group, t in groups.items():
            out.append(table(group, t, causes))
        failures = []
        out.append("\none-sided flows (rstmon_one_sided_flows_total) / flows:")
        for r in report:
            if "seed" not in r["variant"] or r["variant"].endswith("seed 1"):
                out.append("  %-24s %4d / %d" % (r["variant"], r["one_sided_flows"], r["flows"]))
        for r in report:
            if r["variant"] == "intact" and r["one_sided_flows"] != 0:
                failures.append("intact capture: %d flows counted one-sided" %
                                r["one_sided_flows"])
            if r["variant"].endswith(" only") and 2 * r["one_sided_flows"] < r["flows"]:
                failures.append("%s: only %d of %d flows counted one-sided" % (
                    r["variant"], r["one_sided_flows"], r["flows"]))
        for group, t in groups.items():
            for c in sorted(set(t.tp) | set(t.fp)):
                p = t.precision(c)
                if p is not None and p < MIN_PRECISION:
                    failures.append("%s: precision of %s %.3f < %.2f" % (group, c, p,
                                                                         MIN_PRECISION))
            if group == "intact" and (t.fn or t.fp):
                failures.append("intact capture: %d RSTs not labelled as provoked" % (
                    sum(t.fn.values()) + sum(t.fp.values())))
        wrong = [w for t in groups.values() for w in t.wrong]
        if wrong:
            out.append("\nwrong labels (variant, frame, provoked -> rstmon; the flow's last "
                       "frames up to the RST, XX = lost in the variant):")
            for variant, i, truth, got, e, kept in wrong:
                out.append("  %s: frame %s %s -> %s" % (variant, i + 1 if i is not None else "-",
                                                        truth, got))
                if i is not None:
                    out.append(shape(cap, i, kept))
        text = "\n".join(out)
        print(text)
        if args.keep:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(work, args.keep)
            with open(os.path.join(args.keep, "degrade.txt"), "w") as f:
                f.write(text + "\n")
            with open(os.path.join(args.keep, "variants.json"), "w") as f:
                json.dump(report, f, indent=1)
        for f in failures:
            print("FAIL: %s" % f)
        if args.check:
            print("degrade: %s" % ("FAILED" if failures else "passed"))
            return 1 if failures else 0
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
