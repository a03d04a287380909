"""Small, dependency-free helpers for the rstmon DPDK tests.

Reads and writes classic pcap (both byte orders, µs and ns timestamps), writes minimal pcapng,
converts Ethernet frames to other link types, builds (possibly broken) frames by hand, decodes
the TCP 5-tuple of a frame, and runs the rstmon binary with a timeout.
"""

import ipaddress
import os
import signal
import struct
import subprocess
from dataclasses import dataclass, field
from typing import List, Optional

# Link types (LINKTYPE_* values as stored in the file header).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_IEEE802_11 = 105
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
ETH_QINQ = 0x88A8

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D


class PcapError(Exception):
    """The file is not a classic pcap this reader understands."""


@dataclass
class Record:
    ts_sec: int
    ts_frac: int  # µs, or ns when the file has nanosecond resolution
    data: bytes
    orig_len: Optional[int] = None

    def wire_len(self):
        return len(self.data) if self.orig_len is None else self.orig_len


@dataclass
class Capture:
    linktype: int
    records: List[Record] = field(default_factory=list)
    snaplen: int = 262144
    nanosecond: bool = False

    def timestamp(self, i):
        """Timestamp of record i in (float) seconds."""
        r = self.records[i]
        return r.ts_sec + r.ts_frac / (1e9 if self.nanosecond else 1e6)

    def timestamp_us(self, i):
        """Timestamp of record i as an integer number of microseconds (truncated)."""
        r = self.records[i]
        frac_us = r.ts_frac // 1000 if self.nanosecond else r.ts_frac
        return r.ts_sec * 1_000_000 + frac_us


# --------------------------------------------------------------------------------------------
# classic pcap


def read_pcap(path) -> Capture:
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 24:
        raise PcapError(f"{path}: {len(blob)} bytes, shorter than a pcap file header")
    magic_le = struct.unpack("<I", blob[:4])[0]
    if magic_le in (MAGIC_US, MAGIC_NS):
        endian = "<"
    elif struct.unpack(">I", blob[:4])[0] in (MAGIC_US, MAGIC_NS):
        endian = ">"
    else:
        raise PcapError(f"{path}: not a classic pcap file (magic {blob[:4].hex()})")
    magic, _vmaj, _vmin, _tz, _sig, snaplen, linktype = struct.unpack(endian + "IHHiIII", blob[:24])
    # The upper bits of the link type field can carry FCS information: keep the link type only.
    cap = Capture(linktype=linktype & 0x0FFFFFFF, snaplen=snaplen, nanosecond=magic == MAGIC_NS)
    off = 24
    while off < len(blob):
        if off + 16 > len(blob):
            raise PcapError(f"{path}: truncated record header at offset {off}")
        sec, frac, incl, orig = struct.unpack(endian + "IIII", blob[off:off + 16])
        off += 16
        if incl > max(snaplen, 262144) or off + incl > len(blob):
            raise PcapError(f"{path}: bad or truncated record at offset {off - 16}")
        cap.records.append(Record(sec, frac, blob[off:off + incl], orig))
        off += incl
    return cap


def write_pcap(path, linktype, records, snaplen=262144, nanosecond=False, endian="<"):
    """Writes a classic pcap (little-endian unless endian=">"). `records` are Record objects or
    raw frames (bytes); raw frames get timestamps 1 s apart."""
    with open(path, "wb") as f:
        f.write(struct.pack(endian + "IHHiIII", MAGIC_NS if nanosecond else MAGIC_US, 2, 4, 0, 0,
                            snaplen, linktype))
        for i, r in enumerate(records):
            if not isinstance(r, Record):
                r = Record(1_700_000_000 + i, 0, bytes(r))
            f.write(struct.pack(endian + "IIII", r.ts_sec, r.ts_frac, len(r.data), r.wire_len()))
            f.write(r.data)


def write_capture(path, cap: Capture, endian="<"):
    write_pcap(path, cap.linktype, cap.records, cap.snaplen, cap.nanosecond, endian)


def to_nanosecond(cap: Capture) -> Capture:
    """Same capture with nanosecond timestamps (exact multiples of 1000 ns)."""
    if cap.nanosecond:
        return cap
    return Capture(cap.linktype, [Record(r.ts_sec, r.ts_frac * 1000, r.data, r.orig_len)
                                  for r in cap.records], cap.snaplen, True)


# --------------------------------------------------------------------------------------------
# pcapng (writer only: SHB, one IDB, EPBs)


def _pad4(b):
    return b + b"\0" * (-len(b) % 4)


def _block(btype, body):
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def write_pcapng(path, cap: Capture):
    """Writes `cap` as a minimal little-endian pcapng file (default µs resolution, so ns captures
    are rounded down to µs)."""
    out = bytearray()
    # Section Header Block: byte-order magic, version 1.0, section length unknown (-1).
    out += _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    # Interface Description Block: link type, reserved, snaplen, no options (if_tsresol = 6).
    out += _block(0x00000001, struct.pack("<HHI", cap.linktype, 0, cap.snaplen))
    for i, r in enumerate(cap.records):
        ts = cap.timestamp_us(i)
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(r.data), r.wire_len())
        out += _block(0x00000006, body + r.data)
    with open(path, "wb") as f:
        f.write(bytes(out))


# --------------------------------------------------------------------------------------------
# link type conversion (from Ethernet)


def _eth_split(frame):
    if len(frame) < 14:
        raise ValueError("frame shorter than an Ethernet header")
    return frame[6:12], struct.unpack("!H", frame[12:14])[0], frame[14:]


def eth_to_sll(frame, pkttype=0):
    src, etype, payload = _eth_split(frame)
    hdr = struct.pack("!HHH", pkttype, 1, 6) + src + b"\0\0" + struct.pack("!H", etype)
    assert len(hdr) == 16
    return hdr + payload


def eth_to_sll2(frame, pkttype=0, ifindex=2):
    src, etype, payload = _eth_split(frame)
    hdr = struct.pack("!HHIHBB", etype, 0, ifindex, 1, pkttype, 6) + src + b"\0\0"
    assert len(hdr) == 20
    return hdr + payload


def eth_to_raw(frame):
    _src, etype, payload = _eth_split(frame)
    if etype not in (ETH_IPV4, ETH_IPV6):
        raise ValueError(f"ethertype {etype:#06x} has no raw-IP form")
    return payload


def _bsd_family(etype, ipv6_family):
    if etype == ETH_IPV4:
        return 2
    if etype == ETH_IPV6:
        return ipv6_family
    raise ValueError(f"ethertype {etype:#06x} has no BSD loopback form")


def eth_to_null(frame, ipv6_family=24, endian="<"):
    """DLT_NULL: address family in the capturing host's byte order (little-endian by default)."""
    _src, etype, payload = _eth_split(frame)
    return struct.pack(endian + "I", _bsd_family(etype, ipv6_family)) + payload


def eth_to_loop(frame, ipv6_family=24):
    """DLT_LOOP: address family in network byte order."""
    _src, etype, payload = _eth_split(frame)
    return struct.pack("!I", _bsd_family(etype, ipv6_family)) + payload


CONVERTERS = {
    LINKTYPE_LINUX_SLL: eth_to_sll,
    LINKTYPE_LINUX_SLL2: eth_to_sll2,
    LINKTYPE_RAW: eth_to_raw,
    LINKTYPE_NULL: eth_to_null,
    LINKTYPE_LOOP: eth_to_loop,
}


def convert(cap: Capture, linktype, conv=None) -> Capture:
    """Converts an Ethernet capture to `linktype` (with `conv`, a frame converter, or the default
    one for that link type), keeping timestamps and original lengths."""
    if cap.linktype != LINKTYPE_ETHERNET:
        raise ValueError("only Ethernet captures can be converted")
    conv = conv or CONVERTERS[linktype]
    out = Capture(linktype=linktype, snaplen=cap.snaplen, nanosecond=cap.nanosecond)
    for r in cap.records:
        data = conv(r.data)
        out.records.append(Record(r.ts_sec, r.ts_frac, data,
                                  r.wire_len() - len(r.data) + len(data)))
    return out


# --------------------------------------------------------------------------------------------
# frame builders (no checksums: rstmon does not verify them)

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def eth(etype, payload, dst=MAC_B, src=MAC_A):
    return dst + src + struct.pack("!H", etype) + payload


def vlan_eth(tags, etype, payload, tpid=ETH_VLAN):
    """Ethernet frame with `tags` stacked 802.1Q tags (VLAN ids 10, 11, ...)."""
    body = b""
    types = [tpid] * tags + [etype]
    for i in range(tags):
        body += struct.pack("!HH", 10 + i, types[i + 1])
    return MAC_B + MAC_A + struct.pack("!H", types[0]) + body + payload


def ipv4(payload, proto=6, src="192.0.2.1", dst="192.0.2.2", ihl=5, total_len=None, flags_frag=0,
         ttl=64, options=b"", version=4):
    hdr_len = 20 + len(options)
    if total_len is None:
        total_len = hdr_len + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total_len, 1, flags_frag, ttl,
                      proto, 0, ipaddress.IPv4Address(src).packed,
                      ipaddress.IPv4Address(dst).packed)
    return hdr + options + payload


def ipv6(payload, nxt=6, src="2001:db8::1", dst="2001:db8::2", plen=None, hlim=64):
    if plen is None:
        plen = len(payload)
    return (struct.pack("!IHBB", 6 << 28, plen, nxt, hlim) + ipaddress.IPv6Address(src).packed +
            ipaddress.IPv6Address(dst).packed + payload)


TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp(sport=40000, dport=80, seq=1000, ack=0, flags=TCP_SYN, options=b"", payload=b"",
        doff=None, window=65535):
    if doff is None:
        doff = (20 + len(options)) // 4
    return (struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0) +
            options + payload)


def udp(sport=5353, dport=53, payload=b"hello"):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


ARP_REQUEST = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1) + MAC_A + bytes([192, 0, 2, 1]) + \
    b"\0" * 6 + bytes([192, 0, 2, 2])


# --------------------------------------------------------------------------------------------
# decoding


@dataclass
class TcpInfo:
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    ack: int


def decode_tcp(frame, linktype=LINKTYPE_ETHERNET) -> Optional[TcpInfo]:
    """Decodes a frame down to TCP; None if it is not a well-formed, unfragmented TCP segment."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        etype, off = struct.unpack("!H", frame[12:14])[0], 14
        while etype in (ETH_VLAN, ETH_QINQ) and len(frame) >= off + 4:
            etype, off = struct.unpack("!H", frame[off + 2:off + 4])[0], off + 4
        if etype not in (ETH_IPV4, ETH_IPV6):
            return None
        ip = frame[off:]
    elif linktype == LINKTYPE_RAW:
        ip = frame
    else:
        raise ValueError(f"cannot decode link type {linktype}")
    if len(ip) < 1:
        return None
    if ip[0] >> 4 == 4:
        if len(ip) < 20:
            return None
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6 or struct.unpack("!H", ip[6:8])[0] & 0x3FFF or ihl < 20:
            return None
        src, dst, l4 = (str(ipaddress.IPv4Address(ip[12:16])),
                        str(ipaddress.IPv4Address(ip[16:20])), ip[ihl:])
    elif ip[0] >> 4 == 6:
        if len(ip) < 40 or ip[6] != 6:
            return None
        src, dst, l4 = (str(ipaddress.IPv6Address(ip[8:24])),
                        str(ipaddress.IPv6Address(ip[24:40])), ip[40:])
    else:
        return None
    if len(l4) < 20:
        return None
    sport, dport, seq, ack, _doff, flags = struct.unpack("!HHIIBB", l4[:14])
    return TcpInfo(src, sport, dst, dport, flags, seq, ack)


# --------------------------------------------------------------------------------------------
# running rstmon


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    args: list

    def describe(self):
        return (f"command: {' '.join(self.args)}\nexit status: {self.returncode}\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}")


def run(args, timeout=120, cwd=None, env=None):
    """Runs a command to completion; kills its whole process group on timeout. `env`: variables
    added to this process's environment."""
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd,
                            start_new_session=True,
                            env=None if env is None else {**os.environ, **env})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout} s: {' '.join(map(str, args))}\n"
                             f"stderr: {err.decode(errors='replace')[-2000:]}")
    finally:
        if proc.poll() is None:
            kill_group(proc)
    return Result(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                  [str(a) for a in args])


def kill_group(proc):
    """SIGKILLs the process group of a process started with start_new_session=True."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def small_config(directory, extra=""):
    """Writes a config keeping the flow table small; returns its path."""
    path = os.path.join(directory, "rstmon-test.yaml")
    with open(path, "w") as f:
        f.write("flow_table:\n  size: 65536\n" + extra)
    return path


def take_script_args(argv):
    """Strips `rstmon_exe source_root` from argv; returns (exe, root, remaining argv)."""
    if len(argv) < 3:
        raise SystemExit(f"usage: {argv[0]} RSTMON_EXE SOURCE_ROOT [unittest args]")
    exe, root = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    return exe, root, [argv[0]] + argv[3:]
