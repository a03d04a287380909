#!/usr/bin/python3
"""On-path RST injector for the `injected` scenario (runs in the router namespace).

    injector.py IFACE LOGFILE TRIGGER PORT:MODE [PORT:MODE ...]

Watches IFACE (the router's client-facing interface) with an AF_PACKET socket. When a
client->server segment to one of PORTs carries TRIGGER in its payload, it forges RSTs in
both directions (GFW style) and lets the real segment through (it never drops anything;
the router forwards the original as usual). Forged packets are built by hand (scapy is far
too slow to win the race with the real answer) and sent through a raw IP socket, with TTL 64
like anything the router itself originates.

MODE per port:
  single   one RST+ACK to the client (seq = the client's ack, exact), one RST+ACK to the
           server with seq = the trigger's seq (stale once the real segment has landed, so
           the server survives and its real answer reaches a client that no longer exists)
  burst    GFW style: three bare RSTs to the client with seq base, base+1460, base+4380,
           and three to the server with seq trigger seq, +1460, +4380 (stale, or in window
           but not exact: the server answers with challenge ACKs)
  bare     one bare RST to the client (seq = the client's ack) and one to the server with
           seq = trigger seq + len + 1460 (in window, not exact: a challenge ACK)
In every mode the real server is heard from after the forged RST (the race evidence).

Prints "ready" on stdout once listening. Writes one line per forged packet to LOGFILE.
Stops on SIGTERM/SIGINT.
"""

import os
import random
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import parse_frame  # noqa: E402

stop = False


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def forge(src, dst, sport, dport, seq, ack, flags, v6):
    """An IPv4/IPv6 + TCP RST, hand-built (scapy would take milliseconds per packet, and an
    injector must beat the real answer). TTL / hop limit 64, window 0, no options."""
    fl = 0x04 | (0x10 if "A" in flags else 0)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq % 2**32, ack % 2**32 if fl & 0x10 else 0,
                      5 << 4, fl, 0, 0, 0)
    if v6:
        s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        pseudo = s + d + struct.pack("!IxxxB", len(tcp), 6)
    else:
        s, d = socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst)
        pseudo = s + d + struct.pack("!xBH", 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    if v6:
        return struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + s + d + tcp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randrange(65536), 0,
                     64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + tcp


def on_signal(_sig, _frm):
    global stop
    stop = True


def main():
    if len(sys.argv) < 5:
        sys.stderr.write(__doc__)
        sys.exit(2)
    iface, logfile, trigger = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    modes = {}
    for a in sys.argv[4:]:
        p, m = a.split(":")
        modes[int(p)] = m
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    rx.bind((iface, 0))
    rx.settimeout(0.2)
    tx4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    tx6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    log = open(logfile, "a", buffering=1)
    done = set()
    print("ready", flush=True)

    while not stop:
        try:
            data, addr = rx.recvfrom(65535)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        p = parse_frame(data, time.time(), keep_payload=True)
        if p is None or p.dport not in modes or not p.plen or trigger not in p.payload:
            continue
        key = p.key()
        if key in done:
            continue
        done.add(key)
        mode = modes[p.dport]
        tx = tx6 if p.v6 else tx4
        sent = []

        def send(src, dst, sport, dport, seq, ack, flags, what):
            tx.sendto(forge(src, dst, sport, dport, seq, ack, flags, p.v6), (dst, 0))
            sent.append("%.6f %s %s:%d > %s:%d %s seq %d ack %d" % (
                time.time(), what, src, sport, dst, dport, flags, seq % 2**32,
                ack % 2**32 if "A" in flags else 0))

        end = p.seq + p.plen
        if mode == "burst":
            for k, off in enumerate((0, 1460, 4380)):
                send(p.dst, p.src, p.dport, p.sport, p.ack + off, 0, "R", "to-client#%d" % k)
            for k, off in enumerate((0, 1460, 4380)):
                send(p.src, p.dst, p.sport, p.dport, p.seq + off, 0, "R", "to-server#%d" % k)
        elif mode == "bare":
            send(p.dst, p.src, p.dport, p.sport, p.ack, 0, "R", "to-client")
            send(p.src, p.dst, p.sport, p.dport, end + 1460, 0, "R", "to-server")
        else:
            send(p.dst, p.src, p.dport, p.sport, p.ack, end, "RA", "to-client")
            send(p.src, p.dst, p.sport, p.dport, p.seq, p.ack, "RA", "to-server")
        log.write("%.6f trigger %r\n" % (p.ts, p) + "".join(x + "\n" for x in sent))
    log.close()


if __name__ == "__main__":
    main()
