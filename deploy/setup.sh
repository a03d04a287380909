#!/usr/bin/env bash
# rstmon set-up on Debian 12, as root: installs what is missing, builds, then
#   demo  replays the bundled capture through the real DPDK pipeline, prints the per-cause
#         table and serves Prometheus metrics on 127.0.0.1:9580 until Ctrl-C
#         (extra arguments go to rstmon, e.g. --duration 60)
#   test  runs every test suite (what CI runs); extra arguments go to meson test.
#         then tests/sanitize.sh: the unit, dpdk and fuzz suites again under ASan + UBSan in
#         build-asan (clang 14 with libFuzzer; each fuzz target 30 s)
#   build only installs and builds
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-build}
shift || true

packages=(
  build-essential meson ninja-build pkg-config
  libdpdk-dev dpdk libhyperscan-dev prometheus-cpp-dev libspdlog-dev libyaml-cpp-dev
  nlohmann-json3-dev libcli11-dev libpcap-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-prometheus-client python3-scapy tcpdump iproute2 ethtool nftables
  dpdk-dev argus-server argus-client tshark time
  prometheus curl openssl libssl-dev python3-yaml python3-matplotlib
  clang-14 libclang-rt-14-dev
)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    if [[ $(id -u) -ne 0 ]]; then
      echo "setup: installing packages needs root (run as root or with sudo)" >&2
      exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

build() {
  if [[ ! -f build/build.ninja ]]; then
    meson setup build --buildtype=debugoptimized
  fi
  ninja -C build
}

# One closing line for CI: "tests: N passed, N failed, N skipped", counted per test case over the
# build dirs given (GoogleTest cases from meson's JUnit log; a test program that crashed counts
# as failed).
summarize() {
  /usr/bin/python3 - "$@" <<'PY'
import json, os, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for d in sys.argv[1:]:
    log = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        continue
    cases = {}
    try:
        junit = os.path.join(d, "meson-logs", "testlog.junit.xml")
        for suite in ET.parse(junit).getroot().iter("testsuite"):
            ok = skip = bad = 0
            for c in suite.iter("testcase"):
                if c.find("failure") is not None or c.find("error") is not None: bad += 1
                elif c.find("skipped") is not None or c.get("result") == "skipped": skip += 1
                else: ok += 1
            name = suite.get("name", "")
            name = name[len("rstmon."):] if name.startswith("rstmon.") else name
            key = name.rsplit(".", 1)[0] if "." in name else name
            tot = cases.setdefault(key, [0, 0, 0])
            tot[0] += ok; tot[1] += bad; tot[2] += skip
    except (OSError, ET.ParseError):
        pass
    for line in open(log):
        t = json.loads(line)
        ok, bad, skip = cases.get(t["name"], [0, 0, 0])
        if t["result"] == "OK" and ok + bad + skip:
            passed += ok; failed += bad; skipped += skip
        elif t["result"] in ("OK", "EXPECTEDFAIL"):  # should_fail tests that failed as they must
            passed += 1
        elif t["result"] == "SKIP":
            skipped += 1
        else:
            failed += max(1, bad); passed += ok; skipped += skip
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
}

install_missing
build
case "$mode" in
  build) ;;
  demo)
    exec ./build/app/rstmon --pcap tests/data/rst-lab.pcap --serve "$@"
    ;;
  test)
    rc=0
    meson test -C build --print-errorlogs "$@" || rc=$?
    # Then the same suites (and the fuzz targets) under ASan + UBSan; extra arguments are for the
    # main run only. One build at a time: the machine may have two cores.
    bash tests/sanitize.sh || rc=$?
    summarize build build-asan || true
    exit $rc
    ;;
  *)
    echo "usage: bash deploy/setup.sh [build|demo|test] [args...]" >&2
    exit 2
    ;;
esac
