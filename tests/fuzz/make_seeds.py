#!/usr/bin/python3
"""Writes the committed seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

  /usr/bin/python3 tests/fuzz/make_seeds.py            # rewrite the generated seeds
  /usr/bin/python3 tests/fuzz/make_seeds.py --check    # exit 1 if a committed seed is stale

Only the files named here are written; regression seeds added by hand (crash-*, see README.md)
are left alone. Stdlib only: frames are packed with struct, real ones read from
tests/data/rst-lab.pcap.
"""
import argparse
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# ---------------------------------------------------------------------------------------------
# fuzz_packet: byte 0 picks the link type (bits 0-2, index into fuzz_packet.cpp's kLinks) and the
# decap settings (bits 3-7, 0 = defaults), then the frame.
ETHERNET, SLL, SLL2, RAW_IP, BSD_HOST, BSD_NET = range(6)

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def tcp_header(sport=40000, dport=80, seq=1000, ack=0, flags=SYN, window=65535, options=b""):
    assert len(options) % 4 == 0
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0) + options


SYN_OPTIONS = (struct.pack("!BBH", 2, 4, 1460) + bytes([4, 2]) +            # MSS, SACK-permitted
               struct.pack("!BBII", 8, 10, 123456, 0) + bytes([1, 3, 3, 7]))  # TS, NOP, wscale 7


def ipv4(l4, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", ttl=64, total=None, frag=0x4000,
         proto=6, options=b""):
    ihl = (20 + len(options)) // 4
    total = 20 + len(options) + len(l4) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0x1234, frag, ttl, proto, 0, src,
                       dst) + options + l4


def ipv6(l4, next_header=6, ext=b"", payload_len=None, hlim=63):
    src = bytes.fromhex("fd000000000000000000000000000001")
    dst = bytes.fromhex("fd000000000000000000000000000002")
    plen = len(ext) + len(l4) if payload_len is None else payload_len
    return struct.pack("!IHBB16s16s", 0x60000000, plen, next_header, hlim, src, dst) + ext + l4


def ext_header(next_header, body_len_units=0, fill=b""):
    """A generic IPv6 extension header of (units + 1) * 8 bytes."""
    size = (body_len_units + 1) * 8
    return struct.pack("!BB", next_header, body_len_units) + fill.ljust(size - 2, b"\x00")


def eth(ethertype, payload, tags=()):
    hdr = bytes.fromhex("020000000002") + bytes.fromhex("020000000001")
    for tpid, vid in tags:
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", ethertype) + payload


def pcap_frames(path):
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and linktype == 1, "rst-lab.pcap: expected µs pcap, Ethernet"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def lab_seeds():
    """A few real frames from the bundled capture: SYN, SYN-ACK, data, FIN, RST, IPv4 and IPv6."""
    picked, seen = {}, set()
    for f in pcap_frames(ROOT / "tests/data/rst-lab.pcap"):
        etype = struct.unpack("!H", f[12:14])[0]
        l3 = f[14:]
        if etype == 0x0800:
            fam, l4 = "v4", l3[(l3[0] & 15) * 4:]
        elif etype == 0x86DD:
            fam, l4 = "v6", l3[40:]
        else:
            continue
        flags = l4[13]
        doff = (l4[12] >> 4) * 4
        kind = ("rst" if flags & RST else "fin" if flags & FIN else "synack" if flags & SYN and flags & ACK
                else "syn" if flags & SYN else "data" if len(l4) > doff else None)
        if kind is None or (fam, kind) in seen:
            continue
        seen.add((fam, kind))
        picked[f"lab-{fam}-{kind}"] = bytes([ETHERNET]) + f
    return picked


def udp(payload, dport, sport=54321):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def vxlan(vni, inner):
    return struct.pack("!BBHI", 0x08, 0, 0, vni << 8) + inner


def geneve(vni, proto, inner, options=b""):
    assert len(options) % 4 == 0
    return struct.pack("!BBHI", len(options) // 4, 0, proto, vni << 8) + options + inner


def gre(proto, payload, key=None, seq=None):
    flags = (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    hdr = struct.pack("!HH", flags, proto)
    if key is not None:
        hdr += struct.pack("!I", key)
    if seq is not None:
        hdr += struct.pack("!I", seq)
    return hdr + payload


def erspan2(session, vlan, inner):
    return struct.pack("!HHI", 0x1000 | vlan, session, 0) + inner


def erspan3(session, vlan, inner, frame_type=0, platform=b""):
    o_bit = 1 if platform else 0
    return (struct.pack("!HHIHBB", 0x2000 | vlan, session, 0x01020304, 0, frame_type << 2, o_bit)
            + platform + inner)


def mpls(labels, inner):
    out = b""
    for n, label in enumerate(labels):
        out += struct.pack("!I", label << 12 | (1 << 8 if n == len(labels) - 1 else 0) | 64)
    return out + inner


def tunnel_seeds():
    """Mirror encapsulations the parser peels (VXLAN, Geneve, GRE, ERSPAN I/II/III, MPLS)."""
    inner4 = eth(0x0800, ipv4(tcp_header(options=SYN_OPTIONS)))
    inner6 = eth(0x86DD, ipv6(tcp_header(flags=RST | ACK, seq=0, ack=1001)))
    data4 = ipv4(tcp_header(flags=PSH | ACK, ack=5001) + b"hello")
    outer = dict(src=b"\xc0\x00\x02\x01", dst=b"\xc0\x00\x02\x02")
    return {
        "vxlan-ipv4": bytes([ETHERNET]) + eth(0x0800, ipv4(udp(vxlan(1000, inner4), 4789), proto=17,
                                                           **outer)),
        "geneve-ipv6-option": bytes([ETHERNET]) + eth(0x86DD, ipv6(
            udp(geneve(77, 0x6558, inner4, options=struct.pack("!HBB", 0x0102, 0x03, 1) + bytes(4)),
                6081), next_header=17)),
        "gre-key-bridged-vlan": bytes([ETHERNET]) + eth(0x0800, ipv4(
            gre(0x6558, eth(0x0800, data4, [(0x8100, 7)]), key=42), proto=47, **outer)),
        "erspan1": bytes([ETHERNET]) + eth(0x0800, ipv4(gre(0x88BE, inner4), proto=47, **outer)),
        "erspan2": bytes([ETHERNET]) + eth(0x0800, ipv4(gre(0x88BE, erspan2(7, 10, inner6), seq=1),
                                                        proto=47, **outer)),
        "erspan3-platform": bytes([ETHERNET]) + eth(0x0800, ipv4(
            gre(0x22EB, erspan3(9, 0, inner4, platform=bytes(8)), seq=5), proto=47, **outer)),
        "erspan3-ip-frame": bytes([ETHERNET]) + eth(0x0800, ipv4(
            gre(0x22EB, erspan3(9, 20, data4, frame_type=2), seq=6), proto=47, **outer)),
        "mpls-ipv4": bytes([ETHERNET]) + eth(0x8847, mpls([100, 200], data4)),
        "mpls-pseudowire-cw": bytes([ETHERNET]) + eth(0x8847, mpls([300], bytes(4) + inner4)),
        "vxlan-gre-mpls-nested": bytes([ETHERNET]) + eth(0x0800, ipv4(udp(vxlan(5, eth(0x0800, ipv4(
            gre(0x8847, mpls([16], data4)), proto=47))), 4789), proto=17, **outer)),
        # Byte 0 bit 6: a second VXLAN port (8472) is listed.
        "vxlan-port-8472": bytes([ETHERNET | 0x40]) + eth(0x0800, ipv4(udp(vxlan(3, inner6), 8472),
                                                                       proto=17, **outer)),
    }


def packet_seeds():
    seeds = lab_seeds()
    seeds.update(tunnel_seeds())
    syn4 = ipv4(tcp_header(options=SYN_OPTIONS))
    syn6 = ipv6(tcp_header(options=SYN_OPTIONS))
    data = tcp_header(flags=PSH | ACK, ack=5001) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    rst = tcp_header(flags=RST | ACK, seq=0, ack=1001)
    seeds.update({
        "vlan-ipv4-syn-options": bytes([ETHERNET]) + eth(0x0800, syn4, [(0x8100, 42)]),
        "qinq-ipv6-hbh-dst-frag": bytes([ETHERNET]) + eth(0x86DD, ipv6(
            data, next_header=0,
            ext=ext_header(60) + ext_header(44) + struct.pack("!BBHI", 6, 0, 0, 0x01020304)),
            [(0x88A8, 100), (0x8100, 200)]),
        "ipv6-routing-ah-rst": bytes([ETHERNET]) + eth(0x86DD, ipv6(
            rst, next_header=43, ext=ext_header(51, 0) + struct.pack("!BBH", 6, 1, 0) + bytes(8))),
        "ipv6-atomic-fragment": bytes([ETHERNET]) + eth(0x86DD, ipv6(
            data, next_header=44, ext=struct.pack("!BBHI", 6, 0, 0, 0xDEADBEEF))),
        "sll-ipv4-data": bytes([SLL]) + struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + ipv4(data),
        "sll2-ipv6-syn": bytes([SLL2]) + struct.pack("!HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, bytes(8)) + syn6,
        "raw-ipv4-rst": bytes([RAW_IP]) + ipv4(rst),
        "raw-ipv6-syn": bytes([RAW_IP]) + syn6,
        "bsd-host-ipv4": bytes([BSD_HOST]) + struct.pack("<I", 2) + ipv4(data),
        "bsd-net-ipv6": bytes([BSD_NET]) + struct.pack("!I", 30) + ipv6(rst),
        # IPv4 options, and an IP length beyond the frame (snaplen slicing).
        "ipv4-options-sliced": bytes([ETHERNET]) + eth(0x0800, ipv4(data, options=bytes([1, 1, 1, 0]),
                                                                    total=1500)),
        # TSO super-frame as captured on the sender: IP total length 0.
        "ipv4-tso-zero-length": bytes([RAW_IP]) + ipv4(data, total=0),
        # Ignored frames: a fragment, UDP, ARP.
        "ipv4-fragment": bytes([RAW_IP]) + ipv4(data, frag=0x2000),
        "ipv4-udp": bytes([RAW_IP]) + ipv4(struct.pack("!HHHH", 53, 53, 8, 0), proto=17),
        "arp": bytes([ETHERNET]) + eth(0x0806, bytes(28)),
        # Malformed: an option whose length runs past the TCP header; Ethernet padding after IPv4.
        "tcp-option-overrun": bytes([RAW_IP]) + ipv4(tcp_header(options=bytes([1, 1, 8, 10]))),
        "ipv4-eth-padding": bytes([ETHERNET]) + eth(0x0800, ipv4(tcp_header(flags=ACK)) + bytes(6)),
    })
    return seeds


# ---------------------------------------------------------------------------------------------
# fuzz_tcp_classifier: an 11-byte header, then 10-byte records (layout in fuzz_tcp_classifier.cpp).
C, S = 0, 1  # side 0 = client 10.0.0.1:40000, side 1 = server 10.0.0.2:80 in these seeds


def time_code(ms):
    """The smallest code whose delay (m << 3e) is at least `ms` (exact for the values used)."""
    for e in range(8):
        m = -(-ms // (1 << 3 * e))
        if m < 32:
            return e << 5 | m
    raise ValueError(ms)


class Conv:
    def __init__(self, h0=0x0A, h1=0x00, host_ttl=0, isn=(1000, 5000)):
        # h0 0x0a: retransmission_run 3, keepalive_probes 1, ttl_tolerance 0 (the defaults).
        self.isn = isn
        self.out = bytearray([h0, h1, host_ttl]) + struct.pack("!II", *isn)
        self.pending_ms = 0

    def wait(self, ms):
        self.pending_ms += ms
        return self

    def seg(self, side, flags, seq=None, ack=None, payload=0, ttl=None, seq_mode=0, ack_mode=0,
            ts=False, opts=False, tsecr_nudge=0, window=0xFF):
        """seq/ack: absolute values for mode 0 (offsets from the ISNs are computed here), raw
        operands for the other modes; None = the natural value of mode 1 (next seq / peer's
        next seq)."""
        peer = 1 - side
        if seq is None:
            seq_mode, sop = 1, 0
        elif seq_mode == 0:
            sop = (seq - self.isn[side]) % 2**32
        else:
            sop = seq % 2**16
        if ack is None:
            ack_mode, aop = (1, 0) if flags & ACK else (0, 0)
        elif ack_mode == 0:
            aop = (ack - self.isn[peer]) % 2**32
        else:
            aop = ack % 2**16
        assert sop < 2**16 and aop < 2**16, (seq, ack)
        r0 = side | seq_mode << 1 | ack_mode << 3 | (0x20 if ts else 0) | (0x40 if opts else 0)
        r9 = tsecr_nudge % 256
        if ttl is not None:
            r0 |= 0x80
            r9 = ttl
        assert payload < 0xE0 or payload % 1460 == 0, payload  # what r7 can say
        plen = payload if payload < 0xE0 else 0xDF + payload // 1460
        self.out += struct.pack("!BBHHBBBB", r0, flags, sop, aop, window, plen,
                                time_code(self.pending_ms), r9)
        self.pending_ms = 0
        return self

    def handshake(self):
        i, j = self.isn
        return (self.seg(C, SYN, i).seg(S, SYN | ACK, j, i + 1).seg(C, ACK, i + 1, j + 1))

    def bytes(self):
        return bytes(self.out)


def tcp_seeds():
    i, j = 1000, 5000
    s = {}
    s["port_closed"] = Conv().seg(C, SYN, i).seg(S, RST | ACK, j, i + 1)
    s["middlebox_reject-syn"] = Conv(host_ttl=63).seg(C, SYN, i).seg(S, RST | ACK, j, i + 1, ttl=64)
    s["middlebox_reject-midflow"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
                                     .seg(S, ACK | PSH, j + 1, i + 101, 200)
                                     .seg(C, ACK | PSH, i + 101, j + 201, 100)
                                     .seg(S, RST | ACK, j + 201, i + 201, ttl=64))
    # The purported sender keeps talking inside the episode: someone else sent that RST.
    s["injected-race"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
                          .seg(S, RST | ACK, j + 1, i + 101, ttl=64)
                          .wait(1).seg(S, ACK | PSH, j + 1, i + 101, 200))
    # An RST burst with jumping sequence numbers.
    s["injected-burst"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
                           .seg(S, RST | ACK, j + 1, i + 101)
                           .seg(S, RST | ACK, j + 1461, i + 101)
                           .seg(S, RST | ACK, j + 4381, i + 101))
    s["connect_timeout"] = (Conv().seg(C, SYN, i).wait(1000).seg(C, SYN, i).wait(2000)
                            .seg(S, SYN | ACK, j, i + 1).seg(C, RST, i + 1))
    s["scan_probe"] = Conv().seg(C, SYN, i).wait(1).seg(S, SYN | ACK, j, i + 1).seg(C, RST, i + 1)
    s["listen_overflow"] = Conv().handshake().seg(S, RST, j + 1)
    s["unread_data_close"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
                              .seg(S, ACK | PSH, j + 1, i + 101, 200)
                              .seg(C, ACK | PSH, i + 101, j + 201, 100)
                              .seg(S, RST | ACK, j + 201, i + 201))
    s["linger_abort"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
                         .seg(S, ACK | PSH, j + 1, i + 101, 200)
                         .seg(C, ACK, i + 101, j + 201)
                         .seg(S, RST | ACK, j + 201, i + 101))
    s["data_after_close"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
                             .seg(S, ACK | PSH | FIN, j + 1, i + 101, 200)
                             .seg(C, ACK | PSH, i + 101, j + 202, 50)
                             .seg(S, RST, j + 202))
    s["orphan_abort"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
                         .seg(S, ACK | PSH | FIN, j + 1, i + 101, 200)
                         .seg(C, ACK, i + 101, j + 202)
                         .seg(S, RST | ACK, j + 202, i + 101))
    s["idle_timeout"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 10)
                         .seg(S, ACK | PSH, j + 1, i + 11, 10)
                         .wait(262144).seg(C, ACK | PSH, i + 11, j + 11, 10)
                         .seg(S, RST, j + 11, ttl=64))
    s["keepalive_timeout"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 10)
                              .seg(S, ACK, j + 1, i + 11)
                              .wait(1024).seg(C, ACK, i + 10, j + 1)
                              .wait(1024).seg(C, ACK, i + 10, j + 1)
                              .seg(C, RST | ACK, i + 11, j + 1))
    rexmit = Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
    for _ in range(4):
        rexmit.seg(C, ACK | PSH, i + 1, j + 1, 100)
    s["retransmission_timeout"] = (rexmit.wait(10240).seg(S, ACK | PSH, j + 1, i + 1, 20)
                                   .seg(C, RST, i + 1))
    s["stale_connection"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 100)
                             .seg(S, ACK | PSH, j + 1, i + 101, 100)
                             .seg(C, ACK, i + 101, j + 101)
                             .wait(2048).seg(C, ACK | PSH, i + 101, j + 101, 10)
                             .seg(S, RST, j + 101))
    # A FIN close, then a SYN on the same 4-tuple answered by a TIME_WAIT socket's bare ACK.
    s["time_wait_reuse"] = (Conv().handshake().seg(C, FIN | ACK, i + 1, j + 1)
                            .seg(S, FIN | ACK, j + 1, i + 2).seg(C, ACK, i + 2, j + 2)
                            .wait(8).seg(C, SYN, i + 30000)
                            .seg(S, ACK, j + 2777, i + 234).seg(C, RST, i + 234))
    s["invalid_segment-synack"] = Conv().seg(C, SYN, i).seg(S, SYN | ACK, j, i + 3242).seg(C, RST, i + 3242)
    s["invalid_segment-paws"] = (Conv().seg(C, SYN, i, ts=True, opts=True)
                                 .seg(S, SYN | ACK, j, i + 1, ts=True, opts=True, tsecr_nudge=-3)
                                 .seg(C, RST, i + 1))
    s["invalid_segment-conflicting-syn"] = (Conv().seg(C, SYN, i).seg(S, SYN | ACK, j, i + 1)
                                            .seg(C, SYN, i + 500).seg(S, RST | ACK, j, i + 501))
    s["invalid_segment-handshake-ack"] = (Conv().seg(C, SYN, i).seg(S, SYN | ACK, j, i + 1)
                                          .seg(C, ACK, i + 1, 12, ack_mode=3)
                                          .seg(S, RST, 0, seq_mode=2))
    s["invalid_segment-ack-unsent"] = (Conv().handshake().seg(C, ACK | PSH, i + 1, j + 1, 10)
                                       .seg(S, ACK, j + 1, i + 11)
                                       .seg(C, ACK, i + 11, 152, ack_mode=3)
                                       .seg(S, RST, 0, seq_mode=2))
    s["no_state-midstream"] = (Conv().seg(C, ACK | PSH, i + 1, j + 1, 10)
                               .seg(S, RST | ACK, j + 1, i + 11))
    s["no_state-lone-rst"] = Conv().seg(C, RST, i + 1)
    # Out of window with ACK after the handshake: no signature matches.
    s["unclassified"] = Conv().handshake().seg(C, RST | ACK, 0x100, j + 1, seq_mode=3)
    # Window scaling, timestamps, a long flow, then a reused 4-tuple after an RST episode.
    flow = Conv(h1=0x04 | 0x40, host_ttl=64).seg(C, SYN, i, ts=True, opts=True)
    flow.seg(S, SYN | ACK, j, i + 1, ts=True, opts=True).seg(C, ACK, i + 1, j + 1, ts=True)
    for k in range(6):
        flow.seg(C, ACK | PSH, None, None, 1460, ts=True).seg(S, ACK, None, None, ts=True)
    flow.seg(C, RST | ACK, None, None).wait(3).seg(C, SYN, i + 9000).seg(S, SYN | ACK, j + 9000, i + 9001)
    s["window-scale-reuse-after-rst"] = flow
    return {k: v.bytes() for k, v in s.items()}


# ---------------------------------------------------------------------------------------------
# fuzz_config: the shipped config without its comments, and a few small valid and invalid ones.
def config_seeds():
    lines = (ROOT / "config/rstmon.yaml").read_text().splitlines()
    bare = "\n".join(l for l in lines if l.strip() and not l.lstrip().startswith("#")) + "\n"
    return {
        "rstmon-yaml": bare,
        "empty": "",
        "inline-ports": ("ports:\n  - {name: a, device: net_pcap0, forward_to: b}\n"
                         "  - {name: b, device: '0000:03:00.0', forward_to: a}\n"
                         "workers: 4\nrx: {dispatch_ring: 1024}\n"),
        "durations": ("flow_table: {handshake_timeout: 2500ms, established_timeout: 2h, "
                      "closing_timeout: 1m}\nthresholds: {idle_threshold: 4.5m, linger: 0, "
                      "connect_late: 1e-1}\n"),
        "services-eal": ("services:\n  - name: web\n    ports: [80, 443]\n  - {name: db, ports: [5432]}\n"
                         "eal_args: [-l, 0-2, --no-huge]\nmetrics: {enabled: false, listen: '[::1]:9580'}\n"
                         "events: {path: /tmp/e.jsonl, max_per_second: 0, ring_size: 64}\n"),
        "anchors-flow-style": "thresholds: {linger: &d 1500ms, connect_late: *d}\nrx: {burst: !!int 64}\n",
        "bad-unknown-key": "flow_table:\n  sise: 10\n",
        "bad-types": "workers: [1, 2]\nports: {name: x}\nthresholds: {linger: forever}\n",
    }


# ---------------------------------------------------------------------------------------------
# fuzz_sni_host: first payloads of flows. ClientHellos are built field by field (RFC 8446 4.1.2).
def client_hello(sni=b"www.example.com", grease=False, extra=b""):
    def ext(kind, body):
        return struct.pack("!HH", kind, len(body)) + body

    exts = b""
    if grease:
        exts += ext(0x0A0A, b"")
    if sni is not None:
        name = struct.pack("!BH", 0, len(sni)) + sni
        exts += ext(0, struct.pack("!H", len(name)) + name)
    exts += ext(43, bytes([4]) + struct.pack("!HH", 0x0304, 0x0303))        # supported_versions
    exts += ext(51, struct.pack("!HHH", 36, 0x001D, 32) + bytes(range(32)))  # key_share x25519
    exts += extra
    body = (struct.pack("!H", 0x0303) + bytes(range(32)) + bytes([32]) + bytes(32) +
            struct.pack("!HHH", 4, 0x1301, 0x1302) + bytes([1, 0]) +
            struct.pack("!H", len(exts)) + exts)
    return bytes([1]) + len(body).to_bytes(3, "big") + body


def tls_records(handshake, split=None):
    parts = [handshake] if split is None else [handshake[:split], handshake[split:]]
    return b"".join(struct.pack("!BHH", 22, 0x0301, len(p)) + p for p in parts)


def sni_host_seeds():
    return {
        "tls-sni": tls_records(client_hello()),
        "tls-sni-grease-upper-dot": tls_records(client_hello(b"API.Example.ORG.", grease=True)),
        "tls-sni-split-records": tls_records(client_hello(b"split.example.net"), split=60),
        "tls-no-sni": tls_records(client_hello(None)),
        "tls-truncated": tls_records(client_hello())[:70],
        "http-get": b"GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nHost: www.example.com\r\n\r\n",
        "http-host-port-lf": b"POST /api HTTP/1.0\nhost:\tExample.com:8080 \nContent-Length: 0\n\n",
        "http-ipv6-literal": b"HEAD / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\nAccept: */*\r\n\r\n",
        "http-absolute-no-host": b"GET http://proxy.example/ HTTP/1.1\r\nAccept: */*\r\n\r\n",
        "http-folded": b"GET / HTTP/1.1\r\nHost: a.example\r\n continued\r\n\r\n",
        "ssh-banner": b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
    }


def all_seeds():
    out = {}
    for name, data in packet_seeds().items():
        out[f"fuzz_packet/{name}"] = data
    for name, data in tcp_seeds().items():
        out[f"fuzz_tcp_classifier/{name}"] = data
    for name, data in sni_host_seeds().items():
        out[f"fuzz_sni_host/{name}"] = data
    for name, text in config_seeds().items():
        out[f"fuzz_config/{name}.yaml"] = text.encode()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare with the committed seeds")
    args = ap.parse_args()
    stale = []
    for rel, data in sorted(all_seeds().items()):
        path = HERE / "corpus" / rel
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if stale:
        print("stale or missing seeds (run tests/fuzz/make_seeds.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
