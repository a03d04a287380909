#!/bin/bash
# Regenerates tests/data/rst-lab.pcap and tests/data/rst-lab.truth.tsv.
#
# Builds two network namespaces (rl-cli, rl-srv) joined by a veth pair,
# captures on the client side with tcpdump while tests/data/rst_lab.py
# provokes TCP RSTs with real Linux sockets, records the kernel's own RST
# reason via the tcp:tcp_send_reset tracepoint (if available) and verifies
# the result.  Run as root:  bash tests/data/make-rst-lab.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
HELPER=$HERE/rst_lab.py
PCAP=$HERE/rst-lab.pcap
TRUTH=$HERE/rst-lab.truth.tsv

NS_CLI=rl-cli
NS_SRV=rl-srv
DEV_CLI=rl-c0
DEV_SRV=rl-s0
TRACEFS=/sys/kernel/tracing
TRACE_INST=rst-lab

die() { echo "make-rst-lab: ERROR: $*" >&2; exit 1; }
log() { echo "make-rst-lab: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
for c in ip tcpdump ethtool "$PY"; do
    command -v "$c" >/dev/null || die "missing $c"
done

WORK=$(mktemp -d /tmp/rst-lab.XXXXXX)
chmod 755 "$WORK"
TCPDUMP_PID=
SERVER_PID=
PREQUEUE_OLD=
MOUNTED_TRACEFS=
TRACE_DIR=

cleanup() {
    local rc=$?
    set +e
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ -n "$TCPDUMP_PID" ]; then
        kill -INT "$TCPDUMP_PID" 2>/dev/null
        wait "$TCPDUMP_PID" 2>/dev/null
    fi
    if [ -n "$TRACE_DIR" ] && [ -d "$TRACE_DIR" ]; then
        echo 0 > "$TRACE_DIR/events/tcp/tcp_send_reset/enable" 2>/dev/null
        echo 0 > "$TRACE_DIR/tracing_on" 2>/dev/null
        rmdir "$TRACE_DIR" 2>/dev/null
    fi
    [ -n "$MOUNTED_TRACEFS" ] && umount "$TRACEFS" 2>/dev/null
    if [ -n "$PREQUEUE_OLD" ]; then
        sysctl -qw net.core.netdev_tstamp_prequeue="$PREQUEUE_OLD"
    fi
    ip netns del "$NS_CLI" 2>/dev/null
    ip netns del "$NS_SRV" 2>/dev/null
    rm -rf "$WORK"
    if [ "$rc" -ne 0 ]; then
        echo "make-rst-lab: FAILED (rc=$rc)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- idempotence: remove leftovers of an earlier (aborted) run ------------
ip netns del "$NS_CLI" 2>/dev/null || true
ip netns del "$NS_SRV" 2>/dev/null || true

# ---- namespaces + veth ----------------------------------------------------
ip netns add "$NS_CLI"
ip netns add "$NS_SRV"
ip link add "$DEV_CLI" netns "$NS_CLI" type veth peer name "$DEV_SRV" netns "$NS_SRV"

setup_ns() { # ns dev v4 v6
    local ns=$1 dev=$2 v4=$3 v6=$4
    ip -n "$ns" link set lo up
    # real checksums on the wire, one segment per packet
    ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null 2>&1 \
        || ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off rx off
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0
    ip netns exec "$ns" sysctl -qw net.ipv6.conf."$dev".accept_dad=0
    ip -n "$ns" addr add "$v4/24" dev "$dev"
    ip -n "$ns" -6 addr add "$v6/64" dev "$dev" nodad
    ip -n "$ns" link set "$dev" up
}
setup_ns "$NS_CLI" "$DEV_CLI" 10.99.0.1 fd00:99::1
setup_ns "$NS_SRV" "$DEV_SRV" 10.99.0.2 fd00:99::2

# wait until both veth ends are up (no ping on minimal systems; nodad makes
# the IPv6 addresses usable at once, but check nothing is tentative)
link_ready() {
    local ns dev
    for ns_dev in "$NS_CLI:$DEV_CLI" "$NS_SRV:$DEV_SRV"; do
        ns=${ns_dev%%:*} dev=${ns_dev#*:}
        ip -n "$ns" link show dev "$dev" | grep -q 'LOWER_UP' || return 1
        ! ip -n "$ns" -6 addr show dev "$dev" | grep -q tentative || return 1
    done
}
for _ in $(seq 200); do
    link_ready && break
    sleep 0.025
done
link_ready || die "veth link did not come up"

# ---- tracepoint (optional ground truth) -----------------------------------
TRACE_OUT=-
if [ ! -d "$TRACEFS/events" ]; then
    if mount -t tracefs nodev "$TRACEFS" 2>/dev/null; then
        MOUNTED_TRACEFS=1
    fi
fi
if [ -d "$TRACEFS/events/tcp/tcp_send_reset" ] && [ -d "$TRACEFS/instances" ]; then
    # private trace instance: does not disturb the global trace buffer
    rmdir "$TRACEFS/instances/$TRACE_INST" 2>/dev/null || true
    if mkdir "$TRACEFS/instances/$TRACE_INST" 2>/dev/null; then
        TRACE_DIR=$TRACEFS/instances/$TRACE_INST
        echo 1 > "$TRACE_DIR/events/tcp/tcp_send_reset/enable"
        echo 1 > "$TRACE_DIR/tracing_on"
        TRACE_OUT=$WORK/trace.txt
    fi
fi
[ "$TRACE_OUT" = - ] && log "tcp:tcp_send_reset tracepoint unavailable; kernel_reason will be '-'"

# ---- server ----------------------------------------------------------------
ip netns exec "$NS_SRV" "$PY" "$HELPER" server "$WORK/server.ready" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 200); do
    [ -e "$WORK/server.ready" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; die "server died"; }
    sleep 0.025
done
[ -e "$WORK/server.ready" ] || die "server not ready"

# ---- capture ----------------------------------------------------------------
if [ -e /proc/sys/net/core/netdev_tstamp_prequeue ]; then
    PREQUEUE_OLD=$(sysctl -n net.core.netdev_tstamp_prequeue)
    sysctl -qw net.core.netdev_tstamp_prequeue=0
fi

ip netns exec "$NS_CLI" tcpdump -Z root -U --immediate-mode -i "$DEV_CLI" \
    -w "$WORK/cap.pcap" tcp 2>"$WORK/tcpdump.err" &
TCPDUMP_PID=$!
for _ in $(seq 200); do
    grep -q "listening on" "$WORK/tcpdump.err" && break
    kill -0 "$TCPDUMP_PID" 2>/dev/null || { cat "$WORK/tcpdump.err" >&2; die "tcpdump died"; }
    sleep 0.025
done
grep -q "listening on" "$WORK/tcpdump.err" || die "tcpdump not ready"

# ---- provoke ----------------------------------------------------------------
if ! ip netns exec "$NS_CLI" "$PY" "$HELPER" client "$WORK/conns.tsv"; then
    cat "$WORK/server.err" >&2
    die "client failed"
fi

# give the last segments a moment, then stop tcpdump cleanly
sleep 0.3
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || die "tcpdump exited with error: $(cat "$WORK/tcpdump.err")"
TCPDUMP_PID=
grep -q "^0 packets dropped by kernel" "$WORK/tcpdump.err" \
    || die "tcpdump dropped packets: $(cat "$WORK/tcpdump.err")"

if [ -n "$PREQUEUE_OLD" ]; then
    sysctl -qw net.core.netdev_tstamp_prequeue="$PREQUEUE_OLD"
    PREQUEUE_OLD=
fi

kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
if [ -s "$WORK/server.err" ]; then
    cat "$WORK/server.err" >&2
    die "server reported errors"
fi

if [ -n "$TRACE_DIR" ]; then
    echo 0 > "$TRACE_DIR/tracing_on"
    cat "$TRACE_DIR/trace" > "$TRACE_OUT"
fi

# ---- ground truth + verification -------------------------------------------
"$PY" "$HELPER" truth "$WORK/conns.tsv" "$TRACE_OUT" "$WORK/cap.pcap" "$WORK/truth.tsv"

# independent cross-check with tcpdump
n_rst=$(tcpdump -nr "$WORK/cap.pcap" 'tcp[tcpflags] & tcp-rst != 0 or (ip6 and ip6[6] = 6 and ip6[53] & 4 != 0)' 2>/dev/null | wc -l)
n_rows=$(($(wc -l < "$WORK/truth.tsv") - 1))
[ "$n_rst" -eq "$n_rows" ] || die "pcap has $n_rst RSTs but truth has $n_rows rows"
[ "$n_rst" -gt 0 ] || die "no RSTs captured"
n_8080=$(tcpdump -nr "$WORK/cap.pcap" 'port 8080 and (tcp[tcpflags] & tcp-rst != 0 or (ip6 and ip6[6] = 6 and ip6[53] & 4 != 0))' 2>/dev/null | wc -l)
[ "$n_8080" -eq 0 ] || die "$n_8080 RSTs on port 8080"
n_fin8080=$(tcpdump -nr "$WORK/cap.pcap" 'port 8080 and (tcp[tcpflags] & tcp-fin != 0 or (ip6 and ip6[6] = 6 and ip6[53] & 1 != 0))' 2>/dev/null | wc -l)
[ "$n_fin8080" -gt 0 ] || die "no FINs on port 8080"

mv "$WORK/cap.pcap" "$PCAP"
mv "$WORK/truth.tsv" "$TRUTH"
chmod 644 "$PCAP" "$TRUTH"
log "wrote $PCAP ($(stat -c %s "$PCAP") bytes, $(tcpdump -nr "$PCAP" 2>/dev/null | wc -l) packets)"
log "wrote $TRUTH ($n_rows RSTs)"
