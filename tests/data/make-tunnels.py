#!/usr/bin/python3
"""Wraps every frame of an Ethernet capture in each mirror encapsulation rstmon decapsulates.

Usage: make-tunnels.py [IN.pcap] OUTDIR [--no-check] [--only=NAME,...]

IN.pcap defaults to tests/data/rst-lab.pcap (classic pcap, Ethernet). OUTDIR receives one capture
per encapsulation, NAME.pcap, with the same timestamps and the same frames inside:

  vxlan           IPv4 / UDP 4789 / VXLAN (VNI 4242) / the frame; the UDP source port is a hash
                  of the inner flow, as VTEPs choose it (so it differs per direction)
  vxlan-vlan-ip6  802.1Q 30 / IPv6 / UDP 4789 / VXLAN (VNI 7) / the frame
  geneve          IPv4 / UDP 6081 / Geneve (VNI 9001, one 8-byte option) / the frame
  gre-teb         IPv4 / GRE 0x6558 with checksum and key / the frame
  gre-ip          IPv4 / GRE 0x0800 or 0x86DD / the frame's IP packet (its Ethernet header dropped)
  erspan1         IPv4 / GRE 0x88BE, no sequence number / the frame (ERSPAN type I)
  erspan2         IPv4 / GRE 0x88BE with sequence number / ERSPAN II (session 123) / the frame
  erspan2-noseq   IPv4 / GRE 0x88BE without sequence number / ERSPAN II (session 321) / the frame
  erspan3         IPv6 / GRE 0x22EB with sequence number / ERSPAN III (session 456) with the
                  platform-specific subheader / the frame
  mpls            MPLS (2 labels) / the frame's IP packet
  gre-vxlan       IPv4 / GRE 0x0800 / IPv4 / UDP 4789 / VXLAN (VNI 55) / the frame (2 tunnels)

Scapy builds the layers it has (GRE, VXLAN, Geneve, ERSPAN II/III, MPLS); the ERSPAN II header
without GRE sequence number is built by hand, as scapy (like Wireshark) reads 0x88BE without
sequence number as type I.

Unless --no-check, each output is checked with tshark: the last (innermost) addresses, ports,
sequence and acknowledgement numbers, flags and TCP length of every frame, and the number of
RSTs (`tshark -Y tcp.flags.reset==1`), must equal the input's. erspan2-noseq is not checked:
tshark reads it as type I, by the ERSPAN draft's letter. Exit status 0 when every check passed,
1 when one failed, 2 on a usage or input error, 3 when scapy is missing.
"""

import os
import struct
import subprocess
import sys
import zlib

try:
    from scapy.compat import raw
    from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
    from scapy.contrib.geneve import GENEVE, GeneveOptions
    from scapy.contrib.mpls import MPLS
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import GRE, Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.packet import Raw
except ImportError as e:  # the caller decides whether that is a skip
    sys.stderr.write(f"make-tunnels.py: scapy is missing ({e}): apt-get install python3-scapy\n")
    sys.exit(3)

HERE = os.path.dirname(os.path.abspath(__file__))
LINKTYPE_ETHERNET = 1
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)

# The mirror transport: a switch or cloud tap sending to the sensor.
TAP_MAC, SENSOR_MAC = "02:aa:00:00:00:01", "02:aa:00:00:00:02"
TAP4, SENSOR4 = "198.51.100.1", "198.51.100.2"
TAP6, SENSOR6 = "2001:db8:ffff::1", "2001:db8:ffff::2"


# ---------------------------------------------------------------------------------------------
# classic pcap, both byte orders, µs or ns


def read_pcap(path):
    """Returns (nanosecond, [(sec, frac, frame bytes, wire length)]); Ethernet only."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 24:
        raise ValueError(f"{path}: too short for a pcap file")
    for endian in "<>":
        magic = struct.unpack(endian + "I", blob[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError(f"{path}: not a classic pcap file (pcapng: convert with editcap -F pcap)")
    linktype = struct.unpack(endian + "I", blob[20:24])[0] & 0x0FFFFFFF
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, only Ethernet (1) frames can be wrapped")
    records, off = [], 24
    while off + 16 <= len(blob):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", blob[off:off + 16])
        off += 16
        if off + incl > len(blob):
            raise ValueError(f"{path}: truncated record at offset {off - 16}")
        records.append((sec, frac, blob[off:off + incl], orig))
        off += incl
    return magic == 0xA1B23C4D, records


def write_pcap(path, nanosecond, records):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D if nanosecond else 0xA1B2C3D4, 2, 4, 0, 0,
                            262144, LINKTYPE_ETHERNET))
        for sec, frac, data, _ in records:
            f.write(struct.pack("<IIII", sec, frac, len(data), len(data)))
            f.write(data)


# ---------------------------------------------------------------------------------------------
# encapsulations: Ethernet frame (bytes) -> outer Ethernet frame (bytes)


def ip_of(frame):
    """The frame's IP packet and its ethertype (after any VLAN tags)."""
    off, etype = 12, struct.unpack("!H", frame[12:14])[0]
    while etype in VLAN_TPIDS:
        off += 4
        etype = struct.unpack("!H", frame[off:off + 2])[0]
    if etype not in (ETH_IPV4, ETH_IPV6):
        raise ValueError(f"frame with ethertype {etype:#06x}: no IP packet to carry")
    return etype, frame[off + 2:]


def entropy_port(frame):
    """The UDP source port a VTEP would choose: a hash of the inner flow, one per direction
    (RFC 7348 section 5), so the two directions of a connection differ on the outside."""
    _, ip = ip_of(frame)
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0x0F) * 4
        flow = ip[12:20] + ip[ihl:ihl + 4]
    else:
        flow = ip[8:40] + ip[40:44]
    return 49152 + zlib.crc32(flow) % 16384


def outer4(proto_layer):
    return Ether(src=TAP_MAC, dst=SENSOR_MAC) / IP(src=TAP4, dst=SENSOR4, ttl=250) / proto_layer


def vxlan(frame):
    return raw(outer4(UDP(sport=entropy_port(frame), dport=4789) / VXLAN(flags=0x08, vni=4242) /
                      Raw(frame)))


def vxlan_vlan_ip6(frame):
    return raw(Ether(src=TAP_MAC, dst=SENSOR_MAC) / Dot1Q(vlan=30) /
               IPv6(src=TAP6, dst=SENSOR6, hlim=250) / UDP(sport=entropy_port(frame), dport=4789) /
               VXLAN(flags=0x08, vni=7) / Raw(frame))


def geneve(frame):
    opt = GeneveOptions(classid=0x0105, type=0x01, length=1, data=b"\x00\x00\x00\x2a")
    return raw(outer4(UDP(sport=entropy_port(frame), dport=6081) /
                      GENEVE(optionlen=2, proto=0x6558, vni=9001, options=[opt]) / Raw(frame)))


def gre_teb(frame):
    return raw(outer4(GRE(chksum_present=1, key_present=1, key=0x1234, proto=0x6558) /
                      Raw(frame)))


def gre_ip(frame):
    etype, ip = ip_of(frame)
    return raw(outer4(GRE(proto=etype) / Raw(ip)))


def erspan1(frame):
    return raw(outer4(GRE(proto=0x88BE) / Raw(frame)))


class Erspan2(object):
    """ERSPAN II with the GRE sequence number (scapy's layer) or without it (by hand)."""

    def __init__(self):
        self.seq = 0

    def __call__(self, frame):
        self.seq += 1
        return raw(outer4(GRE(seqnum_present=1, sequence_number=self.seq, proto=0x88BE) /
                          ERSPAN_II(ver=1, vlan=0, cos=0, en=0, t=0, session_id=123,
                                    index=self.seq) / Raw(frame)))


def erspan2_noseq(frame):
    gre_hdr = struct.pack("!HH", 0x0000, 0x88BE)
    erspan = struct.pack("!HHI", 1 << 12, 321, 7)  # version 1, VLAN 0; En 0, T 0, session 321
    return raw(Ether(src=TAP_MAC, dst=SENSOR_MAC) / IP(src=TAP4, dst=SENSOR4, ttl=250, proto=47) /
               Raw(gre_hdr + erspan + frame))


def erspan3(frame):
    return raw(Ether(src=TAP_MAC, dst=SENSOR_MAC) / IPv6(src=TAP6, dst=SENSOR6, hlim=250) /
               GRE(seqnum_present=1, sequence_number=1, proto=0x22EB) /
               ERSPAN_III(ver=2, vlan=0, session_id=456, timestamp=0x01020304, ft=0, hw=1, o=1) /
               ERSPAN_PlatformSpecific(platf_id=3, info1=0, info2=0) / Raw(frame))


def mpls(frame):
    _, ip = ip_of(frame)
    return raw(Ether(src=TAP_MAC, dst=SENSOR_MAC, type=0x8847) /
               MPLS(label=1000, s=0, ttl=64) / MPLS(label=2000, s=1, ttl=64) / Raw(ip))


def gre_vxlan(frame):
    inner = IP(src="192.0.2.10", dst="192.0.2.20", ttl=64) / UDP(sport=49155, dport=4789) / \
        VXLAN(flags=0x08, vni=55) / Raw(frame)
    return raw(outer4(GRE(proto=0x0800) / inner))


ENCAPS = {
    "vxlan": vxlan,
    "vxlan-vlan-ip6": vxlan_vlan_ip6,
    "geneve": geneve,
    "gre-teb": gre_teb,
    "gre-ip": gre_ip,
    "erspan1": erspan1,
    "erspan2": Erspan2(),
    "erspan2-noseq": erspan2_noseq,
    "erspan3": erspan3,
    "mpls": mpls,
    "gre-vxlan": gre_vxlan,
}
NOT_TSHARK_CHECKED = {"erspan2-noseq": "tshark reads GRE 0x88BE without sequence number as "
                                       "ERSPAN type I (no ERSPAN header)"}


# ---------------------------------------------------------------------------------------------
# the tshark check

FIELDS = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.seq_raw",
          "tcp.ack_raw", "tcp.flags", "tcp.len"]


def tshark_rows(path):
    """Per frame: the last (innermost) occurrence of each field, as tshark decodes it."""
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "occurrence=l", "-E", "separator=|"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [dict(zip(FIELDS, line.split("|"))) for line in out.splitlines()]


def tshark_rst_count(path):
    out = subprocess.run(["tshark", "-n", "-r", path, "-Y", "tcp.flags.reset==1"], check=True,
                         capture_output=True, text=True).stdout
    return len(out.splitlines())


def inner_view(row, plain):
    """The fields of `row` that describe the plain frame: its IP family's addresses (the last
    occurrence of the other family is the transport's), ports, numbers, flags, length."""
    family = ["ip.src", "ip.dst"] if plain["ip.src"] else ["ipv6.src", "ipv6.dst"]
    return {k: row[k] for k in family + FIELDS[4:]}


def check(plain_path, out_path):
    """Returns (problems, rst count of the output)."""
    want, got = tshark_rows(plain_path), tshark_rows(out_path)
    problems = []
    if len(want) != len(got):
        problems.append(f"{len(got)} frames decoded, the input has {len(want)}")
    for i, (w, g) in enumerate(zip(want, got)):
        if not w["tcp.srcport"]:
            continue  # not TCP in the input: nothing to compare
        if inner_view(w, w) != inner_view(g, w):
            problems.append(f"frame {i + 1}: {inner_view(g, w)} != {inner_view(w, w)}")
            if len(problems) > 5:
                break
    rst_in, rst_out = tshark_rst_count(plain_path), tshark_rst_count(out_path)
    if rst_in != rst_out:
        problems.append(f"{rst_out} RSTs decoded, the input has {rst_in}")
    return problems, rst_out


# ---------------------------------------------------------------------------------------------


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    only = None
    for f in flags:
        if f.startswith("--only="):
            only = f[len("--only="):].split(",")
        elif f != "--no-check":
            sys.stderr.write(f"make-tunnels.py: unknown option {f}\n{__doc__}")
            return 2
    if len(args) == 1:
        args.insert(0, os.path.join(HERE, "rst-lab.pcap"))
    if len(args) != 2:
        sys.stderr.write(__doc__)
        return 2
    src, outdir = args
    names = only or list(ENCAPS)
    unknown = [n for n in names if n not in ENCAPS]
    if unknown:
        sys.stderr.write(f"make-tunnels.py: unknown encapsulation {unknown}; "
                         f"known: {list(ENCAPS)}\n")
        return 2
    try:
        nanosecond, records = read_pcap(src)
    except (OSError, ValueError) as e:
        sys.stderr.write(f"make-tunnels.py: {e}\n")
        return 2
    os.makedirs(outdir, exist_ok=True)
    checking = "--no-check" not in flags
    failed = False
    print(f"{'encapsulation':16} {'frames':>6} {'rst':>4}  tshark")
    for name in names:
        wrap = ENCAPS[name]
        out_path = os.path.join(outdir, name + ".pcap")
        write_pcap(out_path, nanosecond, [(s, f, wrap(d), w) for s, f, d, w in records])
        verdict, rst = "not checked", "-"
        if checking and name in NOT_TSHARK_CHECKED:
            verdict = "not checked: " + NOT_TSHARK_CHECKED[name]
        elif checking:
            problems, rst = check(src, out_path)
            verdict = "same inner TCP frames" if not problems else "; ".join(problems)
            failed |= bool(problems)
        print(f"{name:16} {len(records):6} {rst:>4}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
