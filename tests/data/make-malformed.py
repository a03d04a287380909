#!/usr/bin/env python3
"""Writes a capture of hostile and malformed frames and the class rstmon must give each one.

    make-malformed.py OUT.pcap OUT.tsv

Every frame lands in exactly one class: `tracked` (a TCP segment rstmon follows), `ignored`
with a reason (well-formed, not ours: ARP, UDP, IP fragments, ...) or `malformed` with a reason
(the names of RSTMON_IGNORED_REASONS / RSTMON_MALFORMED_REASONS in lib/packet/packet.hpp). The
TSV has one row per frame, in capture order:

    frame  class  reason  rst  sliced  what

`rst` is 1 for tracked segments with the RST flag (each is counted as one RST), `sliced` is 1
when the capture holds less of the segment than its IP length claims (rstmon_sliced_packets_total).

What is in it: frames truncated at every layer, lying IP/TCP lengths, IHL and data offset below
5, TCP options that overrun, SYN+FIN+RST combinations, RSTs with payload, VLAN stacks up to 9
deep, IPv6 extension-header chains (long, looping into ESP, broken), IPv4 and IPv6 fragments,
9000-byte jumbo frames (which span many mbufs when rx.mbuf_size is small) and zero-length
frames. Scapy builds the well-formed layers; the lies are written byte by byte on top.

Deterministic: the same script writes the same bytes (fixed timestamps, no randomness).
"""

import struct
import sys

from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Ether

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
V4_A, V4_B = "198.51.100.1", "198.51.100.2"
V6_A, V6_B = "2001:db8::1", "2001:db8::2"
JUMBO = 9000
ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ, ETH_VLAN_OLD = 0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100
F, S, R, P, A, U, E, C = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


class Frames:
    """The capture being built: frame bytes, original lengths and expectations, in order."""

    def __init__(self):
        self.rows = []  # (data, orig_len, class, reason, rst, sliced, what)
        self._port = 20000

    def port(self):
        """A fresh client port: every tracked frame is its own flow, so no frame's state
        depends on another's."""
        self._port += 1
        return self._port

    def add(self, data, cls, reason, what, rst=0, sliced=0, orig_len=None):
        assert cls in ("tracked", "ignored", "malformed"), cls
        assert (cls == "tracked") == (reason == ""), (cls, reason)
        data = bytes(data)
        self.rows.append((data, orig_len if orig_len is not None else len(data), cls, reason,
                          rst, sliced, what))

    def tracked(self, data, what, rst=0, sliced=0, orig_len=None):
        self.add(data, "tracked", "", what, rst, sliced, orig_len)

    def ignored(self, data, reason, what):
        self.add(data, "ignored", reason, what)

    def malformed(self, data, reason, what):
        self.add(data, "malformed", reason, what)


# ------------------------------------------------------------------------------------------
# byte-level helpers (scapy builds the honest layers; these tell the lies)


def eth_hdr(etype):
    return bytes(Ether(dst=MAC_B, src=MAC_A, type=etype))[:14]


def tcp_bytes(sport, dport=80, flags=S, seq=1000, ack=0, options=b"", payload=b"", doff=None,
              window=65535):
    """A TCP header with a free data offset (in words) and raw option bytes. The checksum is left
    zero: rstmon, like any passive monitor, does not verify it."""
    opts = options + b"\x00" * (-len(options) % 4)
    words = (20 + len(opts)) // 4 if doff is None else doff
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (words & 0xF) << 4, flags, window,
                      0, 0)
    return hdr + opts + payload


def ipv4_bytes(l4, proto=6, ihl=5, total=None, frag=0, version=4, options=b"", ttl=64):
    """An IPv4 header with free version, IHL and total length fields."""
    total = 4 * ihl + len(l4) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | (ihl & 0xF), 0, total & 0xFFFF, 1, frag,
                      ttl, proto, 0, bytes(map(int, V4_A.split("."))),
                      bytes(map(int, V4_B.split("."))))
    return hdr + options + l4


def ipv6_bytes(l4, nh=6, plen=None, version=6):
    import ipaddress
    plen = len(l4) if plen is None else plen
    return (struct.pack("!IHBB", version << 28, plen & 0xFFFF, nh, 64) +
            ipaddress.IPv6Address(V6_A).packed + ipaddress.IPv6Address(V6_B).packed + l4)


def ether_v4(l4, **ip):
    return eth_hdr(ETH_IPV4) + ipv4_bytes(l4, **ip)


def ether_v6(l4, **ip):
    return eth_hdr(ETH_IPV6) + ipv6_bytes(l4, **ip)


def scapy_v4(fr, flags="S", payload=b"", **tcp):
    return bytes(Ether(dst=MAC_B, src=MAC_A) / IP(src=V4_A, dst=V4_B) /
                 TCP(sport=fr.port(), dport=80, flags=flags, seq=1000, **tcp) / payload)


def scapy_v6(fr, *ext, flags="S", payload=b""):
    pkt = Ether(dst=MAC_B, src=MAC_A) / IPv6(src=V6_A, dst=V6_B)
    for e in ext:
        pkt = pkt / e
    return bytes(pkt / TCP(sport=fr.port(), dport=80, flags=flags, seq=1000) / payload)


def vlan_stack(fr, tpids, inner_type=ETH_IPV4, inner=None):
    """Ethernet with the given tag protocol ids (outermost first), then `inner`."""
    out = eth_hdr(tpids[0])
    for i, _ in enumerate(tpids):
        nxt = tpids[i + 1] if i + 1 < len(tpids) else inner_type
        out += struct.pack("!HH", 100 + i, nxt)
    if inner is None:
        inner = ipv4_bytes(tcp_bytes(fr.port()))
    return out + inner


# ------------------------------------------------------------------------------------------
# the frames, by family


def truncated_at_every_layer(fr):
    fr.malformed(b"", "truncated_l2", "zero-length frame")
    fr.malformed(b"\x02", "truncated_l2", "one byte")
    fr.malformed(eth_hdr(ETH_IPV4)[:13], "truncated_l2", "Ethernet header cut at 13 bytes")
    fr.malformed(eth_hdr(ETH_IPV4), "truncated_ip", "Ethernet header only (IPv4 type)")
    fr.malformed(eth_hdr(ETH_IPV6), "truncated_ip", "Ethernet header only (IPv6 type)")
    fr.malformed(eth_hdr(ETH_VLAN) + b"\x00\x64", "truncated_l2", "802.1Q tag cut in half")
    fr.malformed(eth_hdr(ETH_QINQ) + struct.pack("!HH", 10, ETH_VLAN) + b"\x00",
                 "truncated_l2", "QinQ: inner tag cut")
    full = ether_v4(tcp_bytes(fr.port()))
    fr.malformed(full[:14 + 19], "truncated_ip", "IPv4 header cut at 19 bytes")
    fr.malformed(ether_v4(tcp_bytes(fr.port()), ihl=8, options=b"\x01" * 12)[:14 + 28],
                 "bad_ipv4_ihl", "IPv4 options (IHL 8) cut by the frame end")
    full6 = ether_v6(tcp_bytes(fr.port()))
    fr.malformed(full6[:14 + 39], "truncated_ip", "IPv6 header cut at 39 bytes")
    fr.malformed(full[:14 + 20 + 10], "truncated_tcp", "IPv4: TCP header cut at 10 bytes")
    with_opts = ether_v4(tcp_bytes(fr.port(), options=b"\x02\x04\x05\xb4" + b"\x01" * 16))
    fr.malformed(with_opts[:14 + 20 + 30], "truncated_tcp", "TCP options cut (offset 10 words)")
    fr.malformed(full6[:14 + 40 + 12], "truncated_tcp", "IPv6: TCP header cut at 12 bytes")
    hbh = scapy_v6(fr, IPv6ExtHdrHopByHop())
    fr.malformed(hbh[:14 + 40 + 4], "bad_ipv6_ext_header", "IPv6 hop-by-hop header cut at 4 bytes")
    # Sliced by the capture: the IP length is honest, the snap length cut the payload.
    data = scapy_v4(fr, "PA", payload=b"x" * 1000)
    fr.tracked(data[:100], "IPv4 payload cut by the snap length", sliced=1, orig_len=len(data))
    data6 = scapy_v6(fr, flags="PA", payload=b"y" * 1000)
    fr.tracked(data6[:120], "IPv6 payload cut by the snap length", sliced=1, orig_len=len(data6))
    fr.malformed(eth_hdr(ETH_IPV4) + b"\x45", "truncated_ip", "one byte of IPv4")


def lying_lengths(fr):
    fr.malformed(ether_v4(tcp_bytes(fr.port()), total=10), "bad_ip_length",
                 "IPv4 total length 10, below its own header")
    fr.malformed(ether_v4(tcp_bytes(fr.port()), total=30), "bad_ip_length",
                 "IPv4 total length leaves 10 bytes for TCP")
    fr.tracked(ether_v4(tcp_bytes(fr.port()), total=0),
               "IPv4 total length 0 (a TSO super-frame as the sender's capture shows it)")
    fr.tracked(ether_v4(tcp_bytes(fr.port()), total=65535),
               "IPv4 total length 65535 on a 54-byte frame", sliced=1)
    fr.tracked(ether_v4(tcp_bytes(fr.port())) + b"\x00" * 6,
               "IPv4 total length shorter than the frame (Ethernet padding)")
    fr.malformed(ether_v6(tcp_bytes(fr.port()), plen=0), "bad_ip_length",
                 "IPv6 payload length 0 with TCP next")
    fr.malformed(ether_v6(tcp_bytes(fr.port()), plen=10), "bad_ip_length",
                 "IPv6 payload length 10 with TCP next")
    fr.tracked(ether_v6(tcp_bytes(fr.port()), plen=65535), "IPv6 payload length 65535", sliced=1)
    hbh = bytes(IPv6ExtHdrHopByHop(nh=6))  # 8 bytes
    fr.malformed(ether_v6(hbh + tcp_bytes(fr.port()), nh=0, plen=4), "bad_ipv6_ext_header",
                 "IPv6 payload length ends inside the hop-by-hop header")
    fr.malformed(ether_v4(tcp_bytes(fr.port(), doff=15)), "bad_tcp_offset",
                 "TCP data offset 15 words in a 20-byte IP payload")
    fr.malformed(ether_v6(tcp_bytes(fr.port(), doff=8)), "bad_tcp_offset",
                 "IPv6: TCP data offset 8 words in a 20-byte payload")


def header_lengths_below_five(fr):
    for ihl in (0, 4):
        fr.malformed(ether_v4(tcp_bytes(fr.port()), ihl=ihl), "bad_ipv4_ihl", f"IPv4 IHL {ihl}")
    fr.malformed(ether_v4(tcp_bytes(fr.port()), ihl=15), "bad_ipv4_ihl",
                 "IPv4 IHL 15 (60 bytes) in a 40-byte packet")
    for doff in (0, 3, 4):
        fr.malformed(ether_v4(tcp_bytes(fr.port(), doff=doff)), "bad_tcp_offset",
                     f"TCP data offset {doff}")
    fr.malformed(ether_v6(tcp_bytes(fr.port(), doff=2)), "bad_tcp_offset",
                 "IPv6: TCP data offset 2")
    fr.malformed(ether_v4(tcp_bytes(fr.port()), version=6), "bad_ip_version",
                 "IPv4 EtherType, version 6")
    fr.malformed(ether_v6(tcp_bytes(fr.port()), version=4), "bad_ip_version",
                 "IPv6 EtherType, version 4")
    fr.malformed(ether_v4(tcp_bytes(fr.port()), version=15), "bad_ip_version",
                 "IPv4 EtherType, version 15")


def tcp_options(fr):
    fr.malformed(ether_v4(tcp_bytes(fr.port(), options=b"\x02\x28\x05\xb4")), "bad_tcp_option",
                 "option length 40 in 4 bytes of options")
    fr.malformed(ether_v4(tcp_bytes(fr.port(), options=b"\x02\x00\x05\xb4")), "bad_tcp_option",
                 "option length 0")
    fr.malformed(ether_v4(tcp_bytes(fr.port(), options=b"\x02\x01\x05\xb4")), "bad_tcp_option",
                 "option length 1")
    fr.malformed(ether_v4(tcp_bytes(fr.port(), options=b"\x01\x01\x01\x08")), "bad_tcp_option",
                 "timestamp option kind in the last byte, no length")
    fr.malformed(ether_v4(tcp_bytes(fr.port(), options=b"\x08\x0a" + b"\x00" * 6)),
                 "bad_tcp_option", "timestamp option (10 bytes) in 8 bytes of options")
    fr.tracked(ether_v4(tcp_bytes(fr.port(), options=b"\x00\xff\xff\xff")),
               "end-of-options, then garbage")
    fr.tracked(ether_v4(tcp_bytes(fr.port(), options=b"\x01" * 40)), "40 NOPs (offset 15)")
    fr.tracked(ether_v4(tcp_bytes(fr.port(), options=b"\x02\x03\x05\x01")),
               "MSS with the wrong length (3), skipped")
    fr.tracked(ether_v4(tcp_bytes(fr.port(), options=b"\x03\x03\xc8\x01")),
               "window scale 200 (capped at 14)")
    fr.tracked(ether_v4(tcp_bytes(fr.port(), options=b"\xfe\x06abcd\x01\x01")),
               "unknown option kind 254 with a valid length")


def flag_combinations(fr):
    for flags, name, rst in ((S | F, "SYN+FIN", 0), (S | R, "SYN+RST", 1), (F | R, "FIN+RST", 1),
                             (S | F | R, "SYN+FIN+RST", 1), (0xFF, "every flag", 1),
                             (0, "no flag", 0), (F | P | U, "FIN+PSH+URG (xmas)", 0),
                             (S | E | C, "SYN+ECE+CWR", 0), (R | A | P, "RST+ACK+PSH", 1)):
        fr.tracked(ether_v4(tcp_bytes(fr.port(), flags=flags, seq=5000, ack=7000)), name, rst=rst)
    fr.tracked(ether_v4(tcp_bytes(fr.port(), flags=R, payload=b"reset reason: " * 8)),
               "RST with 112 bytes of payload", rst=1)
    fr.tracked(ether_v6(tcp_bytes(fr.port(), flags=R | A, ack=1, payload=b"\x00" * 300)),
               "IPv6 RST+ACK with 300 bytes of payload", rst=1)
    fr.tracked(ether_v4(tcp_bytes(fr.port(), flags=S | R, options=b"\x02\x04\x05\xb4",
                                  payload=b"data on a SYN+RST")),
               "SYN+RST with options and payload", rst=1)


def vlan_stacks(fr):
    fr.tracked(vlan_stack(fr, [ETH_VLAN]), "one 802.1Q tag")
    fr.tracked(vlan_stack(fr, [ETH_QINQ, ETH_VLAN]), "QinQ")
    fr.tracked(vlan_stack(fr, [ETH_QINQ, ETH_VLAN_OLD, ETH_VLAN, ETH_VLAN]),
               "4 tags (88a8, 9100, 8100, 8100): the deepest stack followed")
    fr.malformed(vlan_stack(fr, [ETH_QINQ, ETH_VLAN, ETH_VLAN, ETH_VLAN, ETH_VLAN]),
                 "vlan_stack_too_deep", "5-deep VLAN stack")
    fr.malformed(vlan_stack(fr, [ETH_VLAN] * 9), "vlan_stack_too_deep", "9-deep VLAN stack")
    fr.ignored(vlan_stack(fr, [ETH_VLAN] * 4, inner_type=0x0806,
                          inner=bytes(ARP(psrc=V4_A, pdst=V4_B))),
               "not_ip", "ARP under 4 tags")
    fr.tracked(vlan_stack(fr, [ETH_VLAN, ETH_VLAN], inner_type=ETH_IPV6,
                          inner=ipv6_bytes(tcp_bytes(fr.port(), flags=R), nh=6)),
               "IPv6 RST under 2 tags", rst=1)
    fr.malformed(vlan_stack(fr, [ETH_VLAN] * 3, inner=ipv4_bytes(tcp_bytes(fr.port()))[:15]),
                 "truncated_ip", "3 tags, IPv4 header cut")


def ipv6_chains(fr):
    fr.tracked(scapy_v6(fr, IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(),
                        IPv6ExtHdrDestOpt()), "IPv6 chain: HBH, DST, routing, DST, TCP")
    fr.tracked(scapy_v6(fr, IPv6ExtHdrHopByHop(), IPv6ExtHdrFragment(offset=0, m=0)),
               "IPv6 atomic fragment (offset 0, M=0) then TCP")
    fr.tracked(scapy_v6(fr, *[IPv6ExtHdrDestOpt() for _ in range(8)]),
               "8 extension headers (the most followed)")
    fr.malformed(scapy_v6(fr, *[IPv6ExtHdrDestOpt() for _ in range(9)]), "bad_ipv6_ext_header",
                 "9 extension headers")
    fr.tracked(scapy_v6(fr, AH(nh=6, payloadlen=4, icv=b"\x00" * 12), flags="R"),
               "IPv6 AH then an RST", rst=1)
    esp = bytes(Ether(dst=MAC_B, src=MAC_A) / IPv6(src=V6_A, dst=V6_B) / IPv6ExtHdrHopByHop(nh=50))
    fr.ignored(esp + b"\x00\x00\x01\x00" + b"\x00" * 28, "not_tcp", "IPv6 chain into ESP")
    nonext = bytes(Ether(dst=MAC_B, src=MAC_A) / IPv6(src=V6_A, dst=V6_B) /
                   IPv6ExtHdrDestOpt(nh=59))
    fr.ignored(nonext, "not_tcp", "IPv6 chain into no-next-header")
    fr.ignored(bytes(Ether(dst=MAC_B, src=MAC_A) / IPv6(src=V6_A, dst=V6_B) /
                     IPv6ExtHdrRouting() / ICMPv6EchoRequest()), "not_tcp",
               "IPv6 routing then ICMPv6")
    fr.ignored(scapy_v6(fr, IPv6ExtHdrFragment(offset=10, m=0)), "ip_fragment",
               "IPv6 fragment with an offset")
    fr.ignored(scapy_v6(fr, IPv6ExtHdrHopByHop(), IPv6ExtHdrFragment(offset=0, m=1)),
               "ip_fragment", "IPv6 first fragment (M=1)")
    hbh_big = bytes(IPv6ExtHdrHopByHop(nh=6))
    hbh_big = hbh_big[:1] + b"\xff" + hbh_big[2:]  # says 2048 bytes
    fr.malformed(ether_v6(hbh_big + tcp_bytes(fr.port()), nh=0), "bad_ipv6_ext_header",
                 "hop-by-hop header claiming 2048 bytes")
    loop = bytes(IPv6ExtHdrDestOpt(nh=60))  # each header names another destination-options one
    fr.malformed(ether_v6(loop * 20, nh=60), "bad_ipv6_ext_header",
                 "20 destination-options headers naming each other")


def fragments(fr):
    big = IP(src=V4_A, dst=V4_B, id=77) / TCP(sport=fr.port(), dport=80, flags="PA") / (b"z" * 1400)
    frags = fragment(big, fragsize=512)
    assert len(frags) == 3
    for i, f in enumerate(frags):
        fr.ignored(bytes(Ether(dst=MAC_B, src=MAC_A) / f), "ip_fragment",
                   f"IPv4 fragment {i + 1} of 3")
    fr.ignored(ether_v4(tcp_bytes(fr.port()), frag=0x2000), "ip_fragment",
               "IPv4 MF set, offset 0, a whole TCP header inside")
    fr.ignored(ether_v4(b"\x00" * 16, frag=0x0001), "ip_fragment", "IPv4 offset 8, MF clear")
    fr.tracked(ether_v4(tcp_bytes(fr.port()), frag=0x4000), "IPv4 DF only: not a fragment")
    fr.ignored(ether_v4(b"", frag=0x1fff, proto=6), "ip_fragment",
               "IPv4 fragment at the largest offset, no payload")


def not_ours(fr):
    fr.ignored(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_A) / ARP(psrc=V4_A, pdst=V4_B)),
               "not_ip", "ARP")
    fr.ignored(eth_hdr(0x88CC) + b"\x02\x07\x04" + b"\x00" * 40, "not_ip", "LLDP")
    fr.ignored(eth_hdr(0x0026) + b"\xaa\xaa\x03" + b"\x00" * 43, "not_ip",
               "802.3 frame (length field)")
    fr.ignored(bytes(Ether(dst=MAC_B, src=MAC_A) / IP(src=V4_A, dst=V4_B) / UDP(dport=53) /
                     (b"\x00" * 12)), "not_tcp", "IPv4 UDP (DNS)")
    fr.ignored(bytes(Ether(dst=MAC_B, src=MAC_A) / IP(src=V4_A, dst=V4_B) / ICMP()), "not_tcp",
               "ICMP echo")
    fr.ignored(ether_v4(b"\x00" * 24, proto=50), "not_tcp", "IPv4 ESP")
    fr.ignored(ether_v4(b"", proto=132), "not_tcp", "IPv4 SCTP, no payload")
    fr.malformed(ether_v4(struct.pack("!HHH", 4000, 4789, 30), proto=17), "truncated_tunnel",
                 "UDP to the VXLAN port, cut inside the UDP header")
    fr.malformed(ether_v4(struct.pack("!HHHH", 4000, 4789, 9, 0) + b"\x08" + b"\x00" * 7,
                          proto=17), "bad_tunnel_length", "VXLAN with a UDP length of 9")


def jumbo_frames(fr):
    def pad_to(frame, size):
        return frame + b"\x00" * (size - len(frame))

    hdr4 = 14 + 20 + 20
    fr.tracked(scapy_v4(fr, "PA", payload=b"j" * (JUMBO - hdr4), ack=1),
               "9000-byte IPv4 segment")
    fr.tracked(scapy_v6(fr, flags="PA", payload=b"k" * (JUMBO - 14 - 40 - 20)),
               "9000-byte IPv6 segment")
    fr.tracked(vlan_stack(fr, [ETH_QINQ, ETH_VLAN, ETH_VLAN, ETH_VLAN],
                          inner=ipv4_bytes(tcp_bytes(fr.port(), flags=P | A,
                                                     payload=b"v" * (JUMBO - 14 - 16 - 40)))),
               "9000-byte segment under 4 VLAN tags")
    fr.tracked(ether_v4(tcp_bytes(fr.port(), flags=R | A, ack=1,
                                  payload=b"r" * (JUMBO - hdr4))),
               "9000-byte RST+ACK (payload 8946 bytes)", rst=1)
    fr.tracked(scapy_v6(fr, IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(),
                        flags="PA", payload=b"e" * (JUMBO - 14 - 40 - 24 - 20)),
               "9000-byte IPv6 segment behind 3 extension headers")
    fr.tracked(pad_to(ether_v4(tcp_bytes(fr.port(), flags=P | A, payload=b"p" * 1446)), JUMBO),
               "9000-byte frame holding a 1486-byte IP datagram (the rest is padding)")
    data = scapy_v4(fr, "PA", payload=b"s" * (JUMBO - hdr4))
    fr.tracked(data[:4000], "9000-byte segment cut at 4000 bytes by the snap length", sliced=1,
               orig_len=len(data))
    fr.ignored(bytes(Ether(dst=MAC_B, src=MAC_A) / IP(src=V4_A, dst=V4_B) / UDP(dport=9999) /
                     (b"u" * (JUMBO - 14 - 28))), "not_tcp", "9000-byte UDP datagram")
    fr.malformed(pad_to(ether_v4(tcp_bytes(fr.port(), doff=3)), JUMBO), "bad_tcp_offset",
                 "9000-byte frame, TCP data offset 3")
    fr.malformed(pad_to(vlan_stack(fr, [ETH_VLAN] * 6), JUMBO), "vlan_stack_too_deep",
                 "9000-byte frame under 6 VLAN tags")
    fr.ignored(bytes(Ether(dst=MAC_B, src=MAC_A) / IP(src=V4_A, dst=V4_B, flags="MF", id=9) /
                     (b"f" * (JUMBO - 34))), "ip_fragment", "9000-byte IPv4 first fragment")


FAMILIES = (truncated_at_every_layer, lying_lengths, header_lengths_below_five, tcp_options,
            flag_combinations, vlan_stacks, ipv6_chains, fragments, not_ours, jumbo_frames)


def build():
    fr = Frames()
    for family in FAMILIES:
        family(fr)
    return fr.rows


def write_pcap(path, rows):
    t0 = 1_700_000_000
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, (data, orig_len, *_rest) in enumerate(rows):
            us = i * 1000  # 1 ms apart: nothing expires, every frame is its own moment
            f.write(struct.pack("<IIII", t0 + us // 1_000_000, us % 1_000_000, len(data),
                                orig_len))
            f.write(data)


def write_tsv(path, rows):
    with open(path, "w") as f:
        f.write("frame\tclass\treason\trst\tsliced\twhat\n")
        for i, (_data, _orig, cls, reason, rst, sliced, what) in enumerate(rows):
            f.write(f"{i + 1}\t{cls}\t{reason}\t{rst}\t{sliced}\t{what}\n")


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    rows = build()
    write_pcap(argv[1], rows)
    write_tsv(argv[2], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
