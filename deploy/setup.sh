#!/usr/bin/env bash
# rstmon set-up on Debian 12, as root: installs what is missing, builds, then
#   demo  replays the bundled capture through the real DPDK pipeline, prints the per-cause
#         table and serves Prometheus metrics on 127.0.0.1:9580 until Ctrl-C
#         (extra arguments go to rstmon, e.g. --duration 60)
#   test  runs every test suite (what CI runs)
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

# One closing line for CI: "tests: N passed, N failed, N skipped" counted per test case.
summarize() {
  /usr/bin/python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    subs = t.get("subtests") or []
    if not subs:
        r = t["result"]
        passed += r == "OK"; skipped += r == "SKIP"; failed += r not in ("OK", "SKIP", "EXPECTEDFAIL")
        continue
    for s in subs:
        r = s["result"]
        passed += r == "OK"; skipped += r == "SKIP"; failed += r not in ("OK", "SKIP", "EXPECTEDFAIL")
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
    summarize || true
    exit $rc
    ;;
  *)
    echo "usage: bash deploy/setup.sh [build|demo|test] [args...]" >&2
    exit 2
    ;;
esac
