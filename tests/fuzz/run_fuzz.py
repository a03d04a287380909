#!/usr/bin/python3
"""Runs one libFuzzer target for a bounded time over a copy of its seed corpus (meson suite 'fuzz').

  run_fuzz.py TARGET SEEDS [--time S] [--artifacts DIR] [--dict F]
  run_fuzz.py TARGET SEEDS --check-causes TAXONOMY_HPP

The first form fails on any crash, timeout, leak, out-of-memory or sanitizer report (libFuzzer's
exit status), and prints the executions per second. The seeds are copied to a temporary directory
first: libFuzzer adds what it finds to its corpus directory, which must not be the source tree.
A failing input is kept in --artifacts (crash-*, timeout-*, leak-*, oom-*).

The second form runs fuzz_tcp_classifier once over each seed with RSTMON_FUZZ_TRACE=1 and fails
unless, together, the seeds reach every cause listed in lib/classify/taxonomy.hpp.
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile


def fuzz(args):
    seeds = sorted(p for p in pathlib.Path(args.seeds).iterdir() if p.is_file())
    if not seeds:
        print(f"no seeds in {args.seeds}")
        return 1
    artifacts = pathlib.Path(args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rstmon-fuzz-") as tmp:
        corpus = pathlib.Path(tmp) / "corpus"
        corpus.mkdir()
        for p in seeds:
            shutil.copy(p, corpus / p.name)
        cmd = [args.target, f"-max_total_time={args.time}", "-timeout=10", "-rss_limit_mb=2048",
               "-print_final_stats=1", f"-artifact_prefix={artifacts}/"]
        if args.dict:
            cmd.append(f"-dict={args.dict}")
        cmd.append(str(corpus))
        print("$", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace", timeout=args.time + 120)
        out = proc.stdout
        found = len(list(corpus.iterdir()))
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", out, re.M))
    if proc.returncode != 0:
        # The report (stack, the input's hex and where it was saved) is at the end.
        print(out[-20000:])
        print(f"FAIL: {pathlib.Path(args.target).name} exited {proc.returncode}; "
              f"failing input saved under {artifacts}")
        return 1
    runs = int(stats.get("number_of_executed_units", 0))
    # libFuzzer's progress lines and final stats; its recommended dictionary is noise here.
    progress = [l for l in out.splitlines() if re.match(r"#\d+\s|stat::|INFO: (Seed|Loaded)", l)]
    print("\n".join(progress[-12:]))
    # A run that executed nothing (bad corpus path, flags refused) must not pass as fuzzing.
    if runs < len(seeds):
        print(f"FAIL: only {runs} executions for {len(seeds)} seeds")
        return 1
    print(f"{pathlib.Path(args.target).name}: {runs} executions in {args.time}s, "
          f"{stats.get('average_exec_per_sec', '?')} exec/s, corpus {len(seeds)} -> {found} inputs, "
          f"peak RSS {stats.get('peak_rss_mb', '?')} MB")
    return 0


def causes_in(taxonomy):
    text = pathlib.Path(taxonomy).read_text()
    block = re.search(r"#define RSTMON_CAUSES\(X\)(.*?)\n\s*\n", text, re.S)
    if not block:
        raise SystemExit(f"cannot find RSTMON_CAUSES in {taxonomy}")
    return re.findall(r"X\((\w+),", block.group(1))


def check_causes(args):
    expected = causes_in(args.check_causes)
    seeds = sorted(p for p in pathlib.Path(args.seeds).iterdir() if p.is_file())
    env = dict(os.environ, RSTMON_FUZZ_TRACE="1")
    # With file arguments libFuzzer runs each file once and exits: no fuzzing, just replay.
    # Leak checking stays off here: it re-runs any input that leaves an allocation behind (stdio's
    # buffer, for one), which would print its trace twice; the fuzzing runs check leaks.
    proc = subprocess.run([args.target, "-detect_leaks=0", *map(str, seeds)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, errors="replace", env=env, timeout=300)
    if proc.returncode != 0:
        print(proc.stdout[-5000:], proc.stderr[-20000:])
        print(f"FAIL: a seed failed when replayed (exit {proc.returncode})")
        return 1
    reached = {}
    for m in re.finditer(r"(?:verdict|episode)=(\w+)", proc.stdout):
        reached[m.group(1)] = reached.get(m.group(1), 0) + 1
    for c in expected:
        print(f"  {c:24} {reached.get(c, 0)}")
    missing = [c for c in expected if c not in reached]
    unknown = sorted(set(reached) - set(expected))
    if unknown:
        print("FAIL: trace names causes the taxonomy does not list:", ", ".join(unknown))
        return 1
    if missing:
        print(f"FAIL: no seed reaches {', '.join(missing)}: add one (tests/fuzz/make_seeds.py)")
        return 1
    print(f"all {len(expected)} causes reached by {len(seeds)} seeds")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target")
    ap.add_argument("seeds")
    ap.add_argument("--time", type=int, default=30, help="seconds of fuzzing (-max_total_time)")
    ap.add_argument("--artifacts", default=".", help="where a failing input is saved")
    ap.add_argument("--dict", help="libFuzzer dictionary")
    ap.add_argument("--check-causes", metavar="TAXONOMY_HPP",
                    help="replay the seeds with tracing and require every cause of this header")
    args = ap.parse_args()
    if not os.access(args.target, os.X_OK):
        print(f"{args.target}: not built")
        return 1
    return check_causes(args) if args.check_causes else fuzz(args)


if __name__ == "__main__":
    sys.exit(main())
