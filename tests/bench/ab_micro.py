#!/usr/bin/python3
"""A/B of two bench_micro builds on a noisy machine: both run at the same time, each pinned to a
CPU of its own, and swap CPUs every round.

On a shared VM the speed of a run moves by 20-50% from one minute to the next, so two builds
measured one after the other compare the machine's moods, not the code. Run side by side they
meet the same mood (and share the L3 and the memory bus, equally), and the ratio of their rates
in one round stays within a few percent. Needs two CPUs. Timing only: no thresholds.

    /usr/bin/python3 tests/bench/ab_micro.py OLD/bench_micro NEW/bench_micro \
        [--filter 'WorkerUpdate/(1024|1048576)$'] [--rounds 4] [--min-time 2]

Prints each round's rates and, per benchmark, the median of NEW/OLD. A benchmark whose set-up
takes seconds (BM_WorkerUpdate/10000000 fills 10 M flows first) lines up badly when the two
builds set up at different speeds: one measures while the other still fills its table. Compare
those one at a time, alone, with --filter.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys


def start(binary, cpu, filt, min_time):
    return subprocess.Popen(
        ["taskset", "-c", str(cpu), binary, f"--benchmark_filter={filt}",
         f"--benchmark_min_time={min_time}", "--benchmark_format=console"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def rates(proc):
    out, _ = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"ab_micro: {proc.args[2]} exited {proc.returncode}")
    found = {}
    for line in out.splitlines():
        m = re.match(r"(BM_\S+)\s.*items_per_second=([0-9.]+)([kMG]?)/s", line)
        if m:
            scale = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(3)]
            found[m.group(1)] = float(m.group(2)) * scale
    if not found:
        sys.exit(f"ab_micro: {proc.args[2]} reported no items_per_second")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--filter", default=r"WorkerUpdate/(1024|1048576)$")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--min-time", default="2")
    a = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("ab_micro: needs two CPUs")
    ratios = {}
    for r in range(a.rounds):
        c_old, c_new = (cpus[0], cpus[1]) if r % 2 == 0 else (cpus[1], cpus[0])
        p_old = start(a.old, c_old, a.filter, a.min_time)
        p_new = start(a.new, c_new, a.filter, a.min_time)
        old, new = rates(p_old), rates(p_new)
        for name in sorted(old.keys() & new.keys()):
            ratios.setdefault(name, []).append(new[name] / old[name])
            print(f"round {r + 1} {name}: old {old[name] / 1e6:.2f} M/s (cpu {c_old}), "
                  f"new {new[name] / 1e6:.2f} M/s (cpu {c_new}), new/old {new[name] / old[name]:.3f}")
    for name, rs in ratios.items():
        print(f"{name}: new/old median {statistics.median(rs):.3f} "
              f"(min {min(rs):.3f}, max {max(rs):.3f}, {len(rs)} rounds)")


if __name__ == "__main__":
    main()
