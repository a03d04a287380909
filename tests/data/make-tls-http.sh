#!/bin/bash
# Regenerates tests/data/tls-http.pcap and tests/data/tls-http.truth.tsv: real TLS ClientHellos
# (openssl s_client, curl) and real HTTP/1.x requests (curl) for the SNI / Host extractors, and
# connections the server resets (reset_server.py: SO_LINGER 0 after reading the request or the
# ClientHello, or after a reply naming a trigger word) for services, names and triggers on RST
# events.
#
# Builds two network namespaces (th-cli, th-srv) joined by a veth pair, runs openssl s_server
# (a throw-away certificate made here with openssl req), python3 -m http.server and
# reset_server.py in th-srv, and captures on the client side with tcpdump while the clients
# connect one after another. Nothing leaves the namespaces. Run as root:
#   bash tests/data/make-tls-http.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
PCAP=$HERE/tls-http.pcap
TRUTH=$HERE/tls-http.truth.tsv

NS_CLI=th-cli
NS_SRV=th-srv
DEV_CLI=th-c0
DEV_SRV=th-s0
CLI4=10.98.0.1
SRV4=10.98.0.2
SPLIT4=10.98.0.3  # second server address, reached over a route with a tiny MTU
CLI6=fd00:98::1
SRV6=fd00:98::2
TLS_PORT=8443
HTTP_PORT=8080
RESET_HTTP_PORT=8081   # reset_server.py: RST after the request
RESET_REPLY_PORT=8082  # RST after a reply that names $TRIGGER_WORD
RESET_TLS_PORT=8444    # RST after the ClientHello
TRIGGER_WORD=forbidden-word
# MTU of the client's route to $SPLIT4: MSS 120, so the ClientHello's server_name (about 200
# bytes in) lands in its second segment and the extractor must wait for it.
SPLIT_MTU=160

die() { echo "make-tls-http: ERROR: $*" >&2; exit 1; }
log() { echo "make-tls-http: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
missing=()
for c in ip ethtool tcpdump ss openssl curl; do
    command -v "$c" >/dev/null || missing+=("$c")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    pkgs=()
    for c in "${missing[@]}"; do
        case $c in ip | ss) pkgs+=(iproute2) ;; *) pkgs+=("$c") ;; esac
    done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null; } \
        || die "cannot install ${pkgs[*]}"
fi
[ -x "$PY" ] || die "missing $PY"

WORK=$(mktemp -d /tmp/tls-http.XXXXXX)
chmod 755 "$WORK"
TCPDUMP_PID=
TLS_PID=
HTTP_PID=
RESET_PID=

stop() { # pid [signal]
    [ -n "$1" ] || return 0
    kill "-${2:-TERM}" "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

cleanup() {
    local rc=$?
    set +e
    stop "$TLS_PID"
    stop "$HTTP_PID"
    stop "$RESET_PID"
    stop "$TCPDUMP_PID" INT
    ip netns del "$NS_CLI" 2>/dev/null
    ip netns del "$NS_SRV" 2>/dev/null
    rm -rf "$WORK"
    [ "$rc" -ne 0 ] && echo "make-tls-http: FAILED (rc=$rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls a command for up to 5 s (200 x 25 ms).
wait_for() { # description command...
    local what=$1
    shift
    for _ in $(seq 200); do
        "$@" && return 0
        sleep 0.025
    done
    die "timed out waiting for $what"
}

# ---- namespaces + veth -----------------------------------------------------
ip netns del "$NS_CLI" 2>/dev/null || true
ip netns del "$NS_SRV" 2>/dev/null || true
ip netns add "$NS_CLI"
ip netns add "$NS_SRV"
ip link add "$DEV_CLI" netns "$NS_CLI" type veth peer name "$DEV_SRV" netns "$NS_SRV"

setup_ns() { # ns dev v6 v4...
    local ns=$1 dev=$2 v6=$3
    shift 3
    ip -n "$ns" link set lo up
    # one wire-sized segment per packet with a real checksum, as a SPAN port delivers them
    ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0
    ip netns exec "$ns" sysctl -qw net.ipv6.conf."$dev".accept_dad=0
    for a in "$@"; do ip -n "$ns" addr add "$a/24" dev "$dev"; done
    ip -n "$ns" -6 addr add "$v6/64" dev "$dev" nodad
    ip -n "$ns" link set "$dev" up
}
setup_ns "$NS_CLI" "$DEV_CLI" "$CLI6" "$CLI4"
setup_ns "$NS_SRV" "$DEV_SRV" "$SRV6" "$SRV4" "$SPLIT4"
ip -n "$NS_CLI" route add "$SPLIT4/32" dev "$DEV_CLI" mtu lock "$SPLIT_MTU"

link_ready() {
    for ns_dev in "$NS_CLI:$DEV_CLI" "$NS_SRV:$DEV_SRV"; do
        ip -n "${ns_dev%%:*}" link show dev "${ns_dev#*:}" | grep -q LOWER_UP || return 1
        ! ip -n "${ns_dev%%:*}" -6 addr show dev "${ns_dev#*:}" | grep -q tentative || return 1
    done
}
wait_for "veth link" link_ready

# ---- servers -----------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=api.example.com -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null \
    || die "openssl req failed"
mkdir "$WORK/www"
echo "rstmon tls-http test page" > "$WORK/www/index.html"

# -www: answer each GET with a status page, so curl gets a response and closes.
ip netns exec "$NS_SRV" openssl s_server -quiet -www -accept "$TLS_PORT" \
    -cert "$WORK/cert.pem" -key "$WORK/key.pem" >"$WORK/s_server.log" 2>&1 </dev/null &
TLS_PID=$!
(cd "$WORK/www" && exec ip netns exec "$NS_SRV" "$PY" -m http.server --bind :: "$HTTP_PORT") \
    >"$WORK/http.log" 2>&1 </dev/null &
HTTP_PID=$!
ip netns exec "$NS_SRV" "$PY" "$HERE/reset_server.py" "$RESET_HTTP_PORT" "$RESET_TLS_PORT" \
    "$RESET_REPLY_PORT" "$TRIGGER_WORD" >"$WORK/reset.log" 2>&1 </dev/null &
RESET_PID=$!
listening() { ip netns exec "$NS_SRV" ss -Hltn "sport = :$1" | grep -q LISTEN; }
wait_for "s_server" listening "$TLS_PORT"
wait_for "http.server" listening "$HTTP_PORT"
for p in "$RESET_HTTP_PORT" "$RESET_TLS_PORT" "$RESET_REPLY_PORT"; do
    wait_for "reset_server.py on $p" listening "$p"
done

# ---- capture -----------------------------------------------------------------
ip netns exec "$NS_CLI" tcpdump -Z root -U --immediate-mode -i "$DEV_CLI" -w "$WORK/cap.pcap" \
    tcp 2>"$WORK/tcpdump.err" &
TCPDUMP_PID=$!
wait_for "tcpdump" grep -qs "listening on" "$WORK/tcpdump.err"

# ---- clients, one after another (the truth file lists them in this order) ----------------------
# reset: yes when the server ends the connection with an RST (reset_server.py).
printf 'server\tport\tkind\tresult\tname\tsplit\treset\n' > "$WORK/truth.tsv"
truth() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${7:-no}" >> "$WORK/truth.tsv"; }
in_cli() { ip netns exec "$NS_CLI" "$@"; }
CURL=(curl -sS -o /dev/null --max-time 10 --noproxy '*')
# -quiet alone would imply -ign_eof: with -no_ign_eof the end of stdin closes the connection.
S_CLIENT=(openssl s_client -quiet -no_ign_eof)

in_cli "${S_CLIENT[@]}" -connect "$SRV4:$TLS_PORT" -servername api.example.com \
    </dev/null >/dev/null 2>"$WORK/c1.err" || { cat "$WORK/c1.err" >&2; die "s_client 1 failed"; }
truth "$SRV4" "$TLS_PORT" sni found api.example.com no

in_cli "${CURL[@]}" -k --resolve "secure.example.org:$TLS_PORT:$SRV4" \
    "https://secure.example.org:$TLS_PORT/" || die "curl https failed"
truth "$SRV4" "$TLS_PORT" sni found secure.example.org no

# A long ALPN list makes the ClientHello about 1 KB; -max_send_frag 512 spreads it over TLS
# records; the route's MTU over TCP segments.
ALPN=$(for i in $(seq 8); do printf 'rstmon-test-protocol-%02d-%s,' "$i" "$(printf 'x%.0s' $(seq 60))"; done)
in_cli "${S_CLIENT[@]}" -connect "$SPLIT4:$TLS_PORT" -servername split.example.com \
    -alpn "${ALPN%,}" -max_send_frag 512 </dev/null >/dev/null 2>"$WORK/c3.err" \
    || { cat "$WORK/c3.err" >&2; die "s_client 3 failed"; }
truth "$SPLIT4" "$TLS_PORT" sni found split.example.com yes

in_cli "${S_CLIENT[@]}" -connect "$SRV4:$TLS_PORT" -noservername \
    </dev/null >/dev/null 2>"$WORK/c4.err" || { cat "$WORK/c4.err" >&2; die "s_client 4 failed"; }
truth "$SRV4" "$TLS_PORT" sni no_sni - no

in_cli "${CURL[@]}" --resolve "www.example.org:$HTTP_PORT:$SRV4" \
    "http://www.example.org:$HTTP_PORT/" || die "curl http failed"
truth "$SRV4" "$HTTP_PORT" host found www.example.org no

in_cli "${CURL[@]}" -g "http://[$SRV6]:$HTTP_PORT/" || die "curl http ipv6 failed"
truth "$SRV6" "$HTTP_PORT" host found "$SRV6" no

in_cli "${CURL[@]}" -H "Host:   WWW.Example.ORG.:80  " "http://$SRV4:$HTTP_PORT/" \
    || die "curl http with Host failed"
truth "$SRV4" "$HTTP_PORT" host found www.example.org no

in_cli "${CURL[@]}" -0 -H "Host:" "http://$SRV4:$HTTP_PORT/" || die "curl http/1.0 failed"
truth "$SRV4" "$HTTP_PORT" host no_host - no

# Connections the server resets. The clients see "connection reset": their exit status is
# expected to fail; the capture checks below count the RSTs.
reset_expected() { # what... : runs a client that the server will reset
    "$@" </dev/null >/dev/null 2>&1 && die "expected a reset: $*"
    return 0
}
# The request names the trigger word; curl's User-Agent is there too.
reset_expected in_cli "${CURL[@]}" --resolve "www.example.org:$RESET_HTTP_PORT:$SRV4" \
    -H "X-Note: $TRIGGER_WORD" "http://www.example.org:$RESET_HTTP_PORT/"
truth "$SRV4" "$RESET_HTTP_PORT" host found www.example.org no yes
# Names are case-insensitive: the extractor lower-cases what the client sent.
reset_expected in_cli "${CURL[@]}" -H "Host: WWW.EXAMPLE.ORG" "http://$SRV4:$RESET_HTTP_PORT/"
truth "$SRV4" "$RESET_HTTP_PORT" host found www.example.org no yes
reset_expected in_cli "${CURL[@]}" -H "Host: other.example.net" "http://$SRV4:$RESET_HTTP_PORT/"
truth "$SRV4" "$RESET_HTTP_PORT" host found other.example.net no yes
reset_expected in_cli "${S_CLIENT[@]}" -connect "$SRV4:$RESET_TLS_PORT" -servername API.Example.COM
truth "$SRV4" "$RESET_TLS_PORT" sni found api.example.com no yes
# The split ClientHello again (the reassembly path), reset once it is whole.
reset_expected in_cli "${S_CLIENT[@]}" -connect "$SPLIT4:$RESET_TLS_PORT" \
    -servername split.example.com -alpn "${ALPN%,}" -max_send_frag 512
truth "$SPLIT4" "$RESET_TLS_PORT" sni found split.example.com yes yes
# The trigger word in the server's reply, not in the request.
reset_expected in_cli "${CURL[@]}" "http://$SRV4:$RESET_REPLY_PORT/"
truth "$SRV4" "$RESET_REPLY_PORT" host found "$SRV4" no yes
N_RESET=6
N_CONN=14

# Every connection is over once each side has sent a FIN or one has sent an RST: poll the
# capture for that, so the teardown is in it, then stop tcpdump.
ended() {
    local n
    n=$(tcpdump -nr "$WORK/cap.pcap" 2>/dev/null | awk '
        { for (i = 1; i <= NF; ++i) if ($i == ">") { a = $(i-1); b = $(i+1); sub(/:$/, "", b) } }
        /Flags \[[^]]*R/ { rst[(a < b) ? a " " b : b " " a] = 1 }
        /Flags \[[^]]*F/ { fin[a " " b] = 1; k = (a < b) ? a " " b : b " " a; if (fin[b " " a]) done[k] = 1 }
        END { for (k in rst) done[k] = 1; n = 0; for (k in done) ++n; print n }')
    [ "$n" -ge "$N_CONN" ]
}
wait_for "all connections to end" ended
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || die "tcpdump failed: $(cat "$WORK/tcpdump.err")"
TCPDUMP_PID=
grep -q "^0 packets dropped by kernel" "$WORK/tcpdump.err" \
    || die "tcpdump dropped packets: $(cat "$WORK/tcpdump.err")"

# ---- checks -------------------------------------------------------------------
n_syn=$(tcpdump -nr "$WORK/cap.pcap" 'tcp[tcpflags] == tcp-syn or (ip6 and ip6[6] = 6 and ip6[53] = 2)' 2>/dev/null | wc -l)
[ "$n_syn" -eq "$N_CONN" ] || die "$n_syn SYNs in the capture, expected $N_CONN (a retransmitted SYN?)"
# The split scenario: the client sent its ClientHello in more than one segment before the
# server said anything.
# (awk reads to the end: a reader that quits early can make tcpdump fail on a closed pipe,
# which pipefail and set -e would turn into a silent exit.)
n_split=$(tcpdump -nr "$WORK/cap.pcap" "host $SPLIT4" 2>/dev/null | awk -v srv="$SPLIT4.$TLS_PORT" '
    / length [1-9]/ { if ($3 == srv) done = 1; if (!done) ++n }
    END { print n + 0 }')
[ "$n_split" -ge 2 ] || die "the ClientHello to $SPLIT4 came in $n_split segment(s), expected 2 or more"
# One RST per reset connection, each sent by the server, none elsewhere.
n_rst=$(tcpdump -nr "$WORK/cap.pcap" 'tcp[tcpflags] & tcp-rst != 0' 2>/dev/null | wc -l)
[ "$n_rst" -eq "$N_RESET" ] || die "$n_rst RSTs in the capture, expected $N_RESET ($(cat "$WORK/reset.log"))"
n_rst_srv=$(tcpdump -nr "$WORK/cap.pcap" "tcp[tcpflags] & tcp-rst != 0 and (src port $RESET_HTTP_PORT or src port $RESET_TLS_PORT or src port $RESET_REPLY_PORT)" 2>/dev/null | wc -l)
[ "$n_rst_srv" -eq "$N_RESET" ] || die "only $n_rst_srv of the $N_RESET RSTs come from the reset servers"
n_word=$(tcpdump -Anr "$WORK/cap.pcap" "src port $RESET_REPLY_PORT" 2>/dev/null \
    | awk -v w="$TRIGGER_WORD" 'index($0, w) { ++n } END { print n + 0 }')
[ "$n_word" -ge 1 ] || die "the reply naming $TRIGGER_WORD is not in the capture"

mv "$WORK/cap.pcap" "$PCAP"
mv "$WORK/truth.tsv" "$TRUTH"
chmod 644 "$PCAP" "$TRUTH"
log "wrote $PCAP ($(stat -c %s "$PCAP") bytes, $(tcpdump -nr "$PCAP" 2>/dev/null | wc -l) packets, $N_CONN connections)"
log "wrote $TRUTH (ClientHello to $SPLIT4 in $n_split segments, $N_RESET connections reset)"
