#!/usr/bin/env python3
"""Every RST of the public captures keeps the cause we can defend.

    test_corpus_causes.py RSTMON SOURCE_ROOT [--update]

Replays every capture under ../shared/corpus (top level, crafted/, wild/: benign traffic of
Windows, BSD, embedded and Linux stacks, see their INDEX.md) through rstmon and compares each
RST's cause with tests/corpus/causes.tsv, where every row carries a one-line reason. Also holds:

  - no RST of these benign captures is `injected` (a false injection pages a security team);
  - `unclassified` stays below 5 % of their RSTs;
  - every RST on the wire has its event (events = the report's RST count, none dropped);
  - every row has a reason, and the table lists exactly the RSTs rstmon reports.

Stage and sender are in the table for the reader; a change there is printed, not failed (the
Zeek oracle test holds them against an independent verdict).

--update rewrites the table from rstmon's output, keeping the reason of every row whose RST and
cause are unchanged and writing TODO elsewhere (the test fails until each TODO is replaced).
Skips (exit 77) when ../shared/corpus is absent. Never copies a capture into the repository.
"""
import collections
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile

RSTMON, ROOT = sys.argv[1], sys.argv[2]
UPDATE = "--update" in sys.argv[3:]
CORPUS = os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus"))
TABLE = os.path.join(ROOT, "tests", "corpus", "causes.tsv")
COLUMNS = ["capture", "ts", "src", "sport", "dst", "dport", "flags", "seq", "sender", "stage",
           "cause", "why"]
KEY = COLUMNS[:8]
UNCLASSIFIED_MAX = 0.05


def replay(pcap, tmp):
    """rstmon's events and report for one capture."""
    out = os.path.join(tmp, "events.jsonl")
    r = subprocess.run([RSTMON, "--pcap", pcap, "--events", out, "--report", "json"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"rstmon failed on {pcap}: {r.stderr.strip()}")
    with open(out) as f:
        events = [json.loads(line) for line in f if line.strip()]
    return events, json.loads(r.stdout)


def row_of(name, e):
    return {"capture": name, "ts": f"{e['ts']:.6f}", "src": e["src"], "sport": str(e["sport"]),
            "dst": e["dst"], "dport": str(e["dport"]), "flags": e["flags"], "seq": str(e["seq"]),
            "sender": e["sender"], "stage": e["stage"], "cause": e["cause"]}


def key_of(row):
    return tuple(row[k] for k in KEY)


def main():
    if not os.path.isdir(CORPUS):
        print(f"SKIP: {CORPUS} is absent")
        return 77
    problems = []
    got = []
    with tempfile.TemporaryDirectory() as tmp:
        for pcap in sorted(glob.glob(os.path.join(CORPUS, "**", "*.pcap"), recursive=True)):
            name = os.path.relpath(pcap, CORPUS)
            events, report = replay(pcap, tmp)
            if len(events) != report["rst"] or report.get("events_dropped", 0):
                problems.append(f"{name}: {len(events)} events for {report['rst']} RSTs "
                                f"({report.get('events_dropped', 0)} dropped)")
            got += [row_of(name, e) for e in events]

    old = []
    if os.path.exists(TABLE):
        with open(TABLE, newline="") as f:
            old = list(csv.DictReader((line for line in f if not line.startswith("#")),
                                      delimiter="\t"))
    # Multisets: a capture may hold the same RST twice (a SPAN copy at the same microsecond).
    held = collections.defaultdict(list)
    for row in old:
        held[key_of(row)].append(row)

    if UPDATE:
        rows = []
        for row in got:
            cand = held[key_of(row)]
            same = [r for r in cand if r["cause"] == row["cause"]]
            if same:
                cand.remove(same[0])
            rows.append(dict(row, why=same[0]["why"] if same else "TODO"))
        with open(TABLE, "w", newline="") as f:
            f.write("# RSTs of ../shared/corpus and the cause rstmon gives each; written by "
                    "test_corpus_causes.py --update, reasons by hand. See STACKS.md.\n")
            w = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {len(rows)} rows to {TABLE}; "
              f"{sum(r['why'] == 'TODO' for r in rows)} need a reason")
        return 0

    causes = collections.Counter(row["cause"] for row in got)
    for row in got:
        cand = held[key_of(row)]
        where = (f"{row['capture']} {row['ts']} {row['src']}:{row['sport']} > "
                 f"{row['dst']}:{row['dport']} [{row['flags']}] seq {row['seq']}")
        if not cand:
            problems.append(f"{where}: rstmon says {row['cause']}, not in the table")
            continue
        same = [r for r in cand if r["cause"] == row["cause"]]
        r = same[0] if same else cand[0]
        cand.remove(r)
        if r["cause"] != row["cause"]:
            problems.append(f"{where}: rstmon says {row['cause']}, the table {r['cause']} "
                            f"({r['why']})")
        elif (r["sender"], r["stage"]) != (row["sender"], row["stage"]):
            print(f"note: {where}: now {row['sender']} at {row['stage']}, table "
                  f"{r['sender']} at {r['stage']}")
        if not r["why"].strip() or r["why"].strip() == "TODO":
            problems.append(f"{where}: no reason given for {r['cause']}")
    for rows in held.values():
        for r in rows:
            problems.append(f"{r['capture']} {r['ts']} {r['src']}:{r['sport']} > "
                            f"{r['dst']}:{r['dport']}: in the table ({r['cause']}), no such RST")

    total = sum(causes.values())
    unclassified = causes["unclassified"] / total if total else 0.0
    print(f"{total} RSTs in {len({r['capture'] for r in got})} captures:")
    for cause, n in causes.most_common():
        print(f"  {cause:24s} {n:4d}  {100 * n / total:5.1f}%")
    if causes["injected"]:
        problems.append(f"{causes['injected']} benign RST(s) labelled injected")
    if unclassified >= UNCLASSIFIED_MAX:
        problems.append(f"unclassified {100 * unclassified:.1f}% (must stay below "
                        f"{100 * UNCLASSIFIED_MAX:.0f}%)")
    for p in problems:
        print("FAIL", p)
    print(f"corpus causes: {len(problems)} problem(s); injected {causes['injected']}, "
          f"unclassified {causes['unclassified']}/{total} = {100 * unclassified:.1f}%")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
