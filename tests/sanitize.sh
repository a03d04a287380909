#!/usr/bin/env bash
# rstmon under AddressSanitizer + UndefinedBehaviorSanitizer: builds a second meson build dir
# (build-asan, beside the normal build/) and runs the unit, dpdk (offline-cli, metrics, the EAL
# tests, the generated mix, tests/hardening's soak-leaks: a 15 s soak) and fuzz suites there. Any sanitizer report fails the run: ASan and
# UBSan halt on the first error, LeakSanitizer checks every process at exit.
#
#   bash tests/sanitize.sh                 # set up if missing, build, test
#   bash tests/sanitize.sh --suite unit    # extra arguments go to meson test
#
# Environment: RSTMON_SANITIZE_BUILD (build dir, default build-asan), RSTMON_JOBS (ninja -j;
# default: ninja's own, all cores). With clang (clang++-14, preferred) the same dir also builds
# the libFuzzer targets (-Dfuzzing=true); with gcc only the sanitized suites run.
#
# DPDK's libraries are Debian's, not instrumented: ASan sees our code and what we hand to them.
# The EAL with --no-huge (the tests', and rstmon's where no hugepages are reserved) runs under
# ASan as is, and LeakSanitizer finds nothing of DPDK's to report: no suppression file is needed
# (tests/fuzz/README.md says what to do if that changes).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${RSTMON_SANITIZE_BUILD:-build-asan}
start=$(date +%s)

if [[ ! -f $dir/build.ninja ]]; then
  setup=(meson setup "$dir" --buildtype=debugoptimized -Db_sanitize=address,undefined
         -Db_lundef=false)
  if command -v clang++-14 >/dev/null && command -v clang-14 >/dev/null; then
    # libFuzzer comes with clang's runtime (libclang-rt-14-dev).
    CC=clang-14 CXX=clang++-14 "${setup[@]}" -Dfuzzing=true
  else
    echo "sanitize: clang++-14 not found, building with gcc: no fuzz targets" >&2
    "${setup[@]}"
  fi
fi
ninja -C "$dir" ${RSTMON_JOBS:+-j "$RSTMON_JOBS"}
built=$(date +%s)
echo "sanitize: build took $((built - start)) s"

# halt_on_error: the first report ends the process (UBSan would otherwise print and go on, and
# the test would pass). abort_on_error: it ends by SIGABRT, which meson names, and which no test
# mistakes for an expected exit status (the Python tests assert rstmon's 0 or 2 exactly).
# LeakSanitizer's exit status at exit is 23: no test expects that either.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:report_error_type=1"

suites=(--suite unit --suite dpdk)
if meson introspect "$dir" --tests | grep -q '"suite": \["rstmon:fuzz"\]'; then
  suites+=(--suite fuzz)
fi
# Sanitized code runs 2-5x slower: give the suites' timeouts room.
exec meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier 3 "${suites[@]}" "$@"
