#!/usr/bin/env python3
"""rstmon against an independent oracle: Zeek's conn_state (and Suricata's flow flags) for real
captures of public projects (../shared/corpus, see its INDEX.md).

For every connection with an RST, rstmon's first RST (the event that opened the connection's
reset episode, `"first": true`) must agree with the oracle:

  REJ     server RST at post_syn            RSTOS0  client RST at post_syn (no SYN-ACK)
  RSTRH   server RST, no SYN seen (no_state) RSTO   client RST once the SYN-ACK was seen
  RSTR    server RST once the SYN-ACK was seen
  other states (SF, OTH) and Suricata rows: the sender of the first RST
                                             (oracle column first_rst_direction)

Zeek calls a connection established as soon as it has seen SYN and SYN-ACK, so RSTO/RSTR include
rstmon's post_synack stage. Zeek splits a 5-tuple into several connections after a reset; rstmon
starts a new connection there too, so the i-th Zeek connection pairs with the i-th first RST.
Every disagreement must be explained in tests/corpus/DISAGREEMENTS.md (by capture name).
Skips (exit 77) when ../shared/corpus is absent.
"""
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile

RSTMON, ROOT = sys.argv[1], sys.argv[2]
CORPUS = os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus"))
TARGET = 0.99

AFTER_SYNACK = {"post_synack", "post_ack", "post_psh", "later_in_flow", "closing"}
RULES = {
    "REJ": ("server", {"post_syn"}),
    "RSTOS0": ("client", {"post_syn"}),
    "RSTRH": ("server", {"no_state"}),
    "RSTO": ("client", AFTER_SYNACK),
    "RSTR": ("server", AFTER_SYNACK),
}


def events_for(pcap, tmp):
    out = os.path.join(tmp, os.path.basename(pcap) + ".jsonl")
    r = subprocess.run([RSTMON, "--pcap", pcap, "--events", out, "--report", "none"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"rstmon failed on {pcap}: {r.stderr.strip()}")
    with open(out) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    if not os.path.isdir(CORPUS):
        print(f"SKIP: {CORPUS} is absent")
        return 77
    explained = open(os.path.join(ROOT, "tests", "corpus", "DISAGREEMENTS.md")).read()
    items = agreed = 0
    unexplained = []
    with tempfile.TemporaryDirectory() as tmp:
        for oracle in sorted(glob.glob(os.path.join(CORPUS, "**", "*.oracle.tsv"), recursive=True)):
            pcap = oracle[: -len(".oracle.tsv")] + ".pcap"
            name = os.path.relpath(pcap, CORPUS)
            events = events_for(pcap, tmp)
            with open(oracle) as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            for row in rows:
                ends = {(row["orig_h"], int(row["orig_p"])), (row["resp_h"], int(row["resp_p"]))}
                firsts = [e for e in events if e["first"] and
                          {(e["src"], e["sport"]), (e["dst"], e["dport"])} == ends]
                states = [s for s in row["zeek_conn_state"].split("|") if s] or [""]
                for i, state in enumerate(states):
                    items += 1
                    ev = firsts[i] if i < len(firsts) else None
                    if state in RULES:
                        want_sender, want_stages = RULES[state]
                        want = f"{state}: sender {want_sender}, stage in {sorted(want_stages)}"
                    else:
                        d = row["first_rst_direction"] if i == 0 else ""
                        want_sender = {"orig": "client", "resp": "server"}.get(d)
                        want_stages = None
                        want = f"{state or 'suricata'}: first RST from {d or '?'}"
                    got = (f"{ev['sender']} at {ev['stage']} ({ev['cause']})" if ev
                           else "no RST event")
                    ok = ev is not None and (want_sender is None or ev["sender"] == want_sender) \
                        and (want_stages is None or ev["stage"] in want_stages)
                    if want_sender is None and want_stages is None:
                        ok = ev is not None
                    agreed += ok
                    tup = f"{row['orig_h']}:{row['orig_p']} > {row['resp_h']}:{row['resp_p']}"
                    print(f"{'agree   ' if ok else 'DISAGREE'} {name} {tup} #{i + 1}: "
                          f"oracle {want}; rstmon {got}")
                    if not ok and name not in explained:
                        unexplained.append(name)
    rate = agreed / items if items else 1.0
    print(f"\nZeek/Suricata agreement: {agreed}/{items} = {100 * rate:.1f}% (target "
          f"{100 * TARGET:.0f}%)")
    failed = 0
    if unexplained:
        print(f"disagreements not explained in DISAGREEMENTS.md: {sorted(set(unexplained))}")
        failed = 1
    if rate < TARGET:
        print("agreement below target")
        failed = 1
    print(f"oracle: {agreed} passed, {items - agreed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(main())
