#!/usr/bin/python3
"""On-path RST injector for the `injected` scenario (runs in the router namespace).

    injector.py IFACE LOGFILE TRIGGER PORT:MODE [PORT:MODE ...]

Watches IFACE (the router's client-facing interface) with an AF_PACKET socket. When a
client->server segment to one of PORTs carries TRIGGER in its payload, it forges RSTs in
both directions (GFW style) and lets the real segment through (it never drops anything;
the router forwards the original as usual). Forged packets are built with scapy and sent
through a raw IP socket, so they leave with the router's default TTL (64).

MODE per port:
  single   one RST+ACK to the client (seq = the client's ack), and to the server two
           RST+ACKs (seq = trigger seq and trigger seq + len: whichever is exact when it
           lands wins the race with the real segment)
  burst    three bare RSTs to the client with seq base, base+1460, base+4380, and the
           two to the server as in single
  bare     like single, but bare RSTs (no ACK flag)

Prints "ready" on stdout once listening. Writes one line per forged packet to LOGFILE.
Stops on SIGTERM/SIGINT.
"""

import os
import signal
import socket
import struct
import sys
import time

from scapy.all import IP, IPv6, TCP, conf  # noqa: E402

conf.verb = 0

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import parse_frame  # noqa: E402

stop = False


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
    # warm scapy up so the first injection is as fast as the others
    bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="R"))
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
        L3 = IPv6 if p.v6 else IP
        tx = tx6 if p.v6 else tx4

        def send(src, dst, sport, dport, seq, ack, flags, what):
            pkt = L3(src=src, dst=dst) / TCP(sport=sport, dport=dport, seq=seq % 2**32,
                                                ack=ack % 2**32 if "A" in flags else 0,
                                                flags=flags, window=0)
            tx.sendto(bytes(pkt), (dst, 0))
            log.write("%.6f %s %s:%d > %s:%d %s seq %d ack %d\n" % (
                time.time(), what, src, sport, dst, dport, flags, seq % 2**32,
                ack % 2**32 if "A" in flags else 0))

        end = p.seq + p.plen
        if mode == "burst":
            for k, off in enumerate((0, 1460, 4380)):
                send(p.dst, p.src, p.dport, p.sport, p.ack + off, 0, "R", "to-client#%d" % k)
        else:
            fl = "R" if mode == "bare" else "RA"
            send(p.dst, p.src, p.dport, p.sport, p.ack, end, fl, "to-client")
        fl = "R" if mode in ("bare", "burst") else "RA"
        send(p.src, p.dst, p.sport, p.dport, p.seq, p.ack, fl, "to-server#0")
        send(p.src, p.dst, p.sport, p.dport, end, p.ack, fl, "to-server#1")
    log.close()


if __name__ == "__main__":
    main()
