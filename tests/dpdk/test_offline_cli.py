#!/usr/bin/env python3
"""End-to-end tests of `rstmon --pcap`: the real binary, DPDK net_pcap, report, events, errors.

Usage: test_offline_cli.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import collections
import csv
import glob
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil as pu  # noqa: E402

RSTMON = None  # set in __main__
ROOT = None

EVENT_KEYS = {"ts", "src", "sport", "dst", "dport", "cause", "stage", "sender", "validity",
              "service", "first", "seq", "ack", "flags", "ttl", "len", "idle_s", "flow_age_s",
              "port"}
# Evidence (README "Event stream"), present when there is something to say; and the fields
# services/triggers/tunnels add.
EVIDENCE_KEYS = {"hops", "flow_ttl", "host_ttl", "sender_hops", "hop_delta", "rexmit_run",
                 "peer_rexmit_run", "ka_probes", "src_bytes", "dst_bytes", "missing", "payload",
                 "pcap"}
OPTIONAL_KEYS = EVIDENCE_KEYS | {"vlan", "sni", "host", "trigger"}


def lab_pcap():
    return os.path.join(ROOT, "tests", "data", "rst-lab.pcap")


def lab_truth():
    with open(os.path.join(ROOT, "tests", "data", "rst-lab.truth.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        r["sport"], r["dport"] = int(r["sport"]), int(r["dport"])
    return rows


def tuple_of(d):
    return (d["src"], int(d["sport"]), d["dst"], int(d["dport"]))


class RstmonCase(unittest.TestCase):
    """Per-class temp dir and a config that keeps the flow table small."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-offline-")
        cls.config = pu.small_config(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def rstmon(self, *args, config=True, timeout=90):
        cmd = [RSTMON] + (["--config", self.config] if config else []) + list(args)
        return pu.run(cmd, timeout=timeout)

    def report(self, pcap, *args):
        """Runs a replay with --report json; asserts exit 0 and returns (report, result)."""
        res = self.rstmon("--pcap", pcap, "--report", "json", *args)
        self.assertEqual(res.returncode, 0, res.describe())
        self.assertNotIn("flow table was full", res.stderr)
        try:
            rep = json.loads(res.stdout)
        except ValueError as e:
            self.fail(f"stdout is not one JSON object ({e})\n{res.describe()}")
        self.assertIsInstance(rep, dict)
        return rep, res

    def read_events(self, path):
        with open(path) as f:
            lines = [ln for ln in f.read().splitlines()]
        events = []
        for i, ln in enumerate(lines):
            try:
                events.append(json.loads(ln))
            except ValueError as e:
                self.fail(f"{path}:{i + 1}: not JSON ({e}): {ln!r}")
        return events

    def assert_usage_error(self, res, *fragments):
        """Exit status 2, exactly one stderr line starting with 'rstmon: ', containing fragments."""
        self.assertEqual(res.returncode, 2, res.describe())
        lines = res.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"expected exactly one stderr line\n{res.describe()}")
        self.assertTrue(lines[0].startswith("rstmon: "), res.describe())
        for frag in fragments:
            self.assertIn(frag, lines[0], res.describe())
        self.assertEqual(res.stdout, "", "nothing belongs on stdout after an error")
        return lines[0]


class UnlockedCaptureReads(RstmonCase):
    """net_pcap opens the capture through rstmon's own pcap_open_offline (or its nanosecond
    sibling; app/pcap_unlocked_reads.cpp), which lifts glibc's per-fread lock: the dynamic
    linker's record of the driver's binding shows it, and the replay's result is the usual one."""

    def test_net_pcap_binds_to_rstmon_and_the_replay_is_whole(self):
        log = self.path("ld-bindings")
        res = pu.run([RSTMON, "--config", self.config, "--pcap", lab_pcap(), "--report", "json"],
                     timeout=90, env={"LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": log})
        self.assertEqual(res.returncode, 0, res.describe())
        bindings = []
        for name in glob.glob(log + ".*"):
            with open(name, errors="replace") as f:
                bindings += [ln for ln in f if "`pcap_open_offline'" in ln or
                             "`pcap_open_offline_with_tstamp_precision'" in ln]
        from_driver = [ln for ln in bindings if "librte_net_pcap" in ln.split(" to ")[0]]
        self.assertTrue(from_driver, "net_pcap never looked the open function up:\n" +
                        "".join(bindings))
        for ln in from_driver:
            target = ln.split(" to ")[1].split(":")[0]
            self.assertNotIn("libpcap", target, f"net_pcap bound to libpcap itself: {ln}")
            self.assertIn("rstmon", os.path.basename(target.split(" ")[0]), ln)
        rep = json.loads(res.stdout)
        self.assertEqual(rep["rst"], len(lab_truth()), res.describe())


# ---------------------------------------------------------------------------------------------
# 1. the bundled capture against its truth file


class BundledCapture(RstmonCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.events_path = os.path.join(cls.tmp, "events.jsonl")
        res = pu.run([RSTMON, "--config", cls.config, "--pcap", lab_pcap(), "--report", "json",
                      "--events", cls.events_path], timeout=90)
        cls.result = res
        cls.rep = json.loads(res.stdout) if res.returncode == 0 else None

    def setUp(self):
        self.assertEqual(self.result.returncode, 0, self.result.describe())
        self.truth = lab_truth()
        self.events = self.read_events(self.events_path)

    def test_every_event_matches_a_truth_row(self):
        by_tuple = {tuple_of(r): r for r in self.truth}
        self.assertEqual(len(by_tuple), len(self.truth), "truth 4-tuples are not unique")
        seen = set()
        for ev in self.events:
            self.assertLessEqual(EVENT_KEYS, set(ev), f"event keys: {ev}")
            self.assertLessEqual(set(ev), EVENT_KEYS | OPTIONAL_KEYS, f"unknown event keys: {ev}")
            t = tuple_of(ev)
            self.assertIn(t, by_tuple, f"event without truth row: {ev}")
            self.assertNotIn(t, seen, f"two events for one RST 4-tuple: {ev}")
            seen.add(t)
            self.assertEqual(ev["cause"], by_tuple[t]["cause"], f"wrong cause: {ev}")
            self.assertEqual(ev["sender"], "server", f"wrong sender: {ev}")
            self.assertIn("R", ev["flags"], f"event for a segment without RST: {ev}")
            self.assertEqual(ev["port"], "pcap0")
        self.assertEqual(seen, set(by_tuple), "truth rows without an event")

    def test_counts_agree(self):
        self.assertEqual(len(self.events), len(self.truth))
        self.assertEqual(self.rep["rst"], len(self.truth))
        self.assertEqual(self.rep["packets"], len(pu.read_pcap(lab_pcap()).records))

    def test_report_causes_equal_truth(self):
        want = collections.Counter(r["cause"] for r in self.truth)
        self.assertTrue(set(want) <= set(self.rep["causes"]),
                        f"truth causes missing from the report: {set(want) - set(self.rep['causes'])}")
        got = {c: n for c, n in self.rep["causes"].items()}
        self.assertEqual(got, {c: want.get(c, 0) for c in got})
        self.assertEqual(self.rep["senders"], {"client": 0, "server": len(self.truth), "unknown": 0})
        for key in ("stages", "validity"):
            self.assertEqual(sum(self.rep[key].values()), len(self.truth), key)

    def test_no_event_on_fin_closed_port(self):
        on_8080 = [ev for ev in self.events if 8080 in (ev["sport"], ev["dport"])]
        self.assertEqual(on_8080, [])

    def test_event_ts_is_the_capture_time(self):
        cap = pu.read_pcap(lab_pcap())
        rst_times = collections.defaultdict(list)
        for i, r in enumerate(cap.records):
            t = pu.decode_tcp(r.data, cap.linktype)
            if t is not None and t.flags & pu.TCP_RST:
                rst_times[(t.src, t.sport, t.dst, t.dport)].append(cap.timestamp_us(i))
        self.assertEqual(sum(map(len, rst_times.values())), len(self.truth),
                         "RST packets in the pcap vs truth rows")
        for ev in self.events:
            self.assertIsInstance(ev["ts"], (int, float))
            got_us = round(ev["ts"] * 1e6)
            want = rst_times.get(tuple_of(ev), [])
            self.assertIn(got_us, want,
                          f"event ts {ev['ts']!r} is not the pcap time of the RST {want}: {ev}")


# ---------------------------------------------------------------------------------------------
# 2. other link types and pcapng give the same answers


def _variants():
    # name -> (builder(Capture) -> (Capture, writer), expected report link_type)
    def classic(cap, endian="<"):
        return lambda path: pu.write_capture(path, cap, endian)

    def conv(linktype, fn=None):
        return lambda eth: classic(pu.convert(eth, linktype, fn))

    return {
        "sll": (conv(pu.LINKTYPE_LINUX_SLL), "linux_sll"),
        "sll2": (conv(pu.LINKTYPE_LINUX_SLL2), "linux_sll2"),
        "raw": (conv(pu.LINKTYPE_RAW), "raw_ip"),
        "null-le-af24": (conv(pu.LINKTYPE_NULL), "bsd_loopback"),
        "null-le-af30": (conv(pu.LINKTYPE_NULL, lambda f: pu.eth_to_null(f, 30)), "bsd_loopback"),
        "null-be-af28": (conv(pu.LINKTYPE_NULL, lambda f: pu.eth_to_null(f, 28, ">")),
                         "bsd_loopback"),
        "loop": (conv(pu.LINKTYPE_LOOP), "bsd_loopback"),
        "pcapng": (lambda eth: (lambda path: pu.write_pcapng(path, eth)), "ethernet"),
        "pcap-big-endian": (lambda eth: classic(eth, ">"), "ethernet"),
        "pcap-nanosecond": (lambda eth: classic(pu.to_nanosecond(eth)), "ethernet"),
    }


class LinkTypes(RstmonCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.eth = pu.read_pcap(lab_pcap())
        ev = os.path.join(cls.tmp, "eth.jsonl")
        res = pu.run([RSTMON, "--config", cls.config, "--pcap", lab_pcap(), "--report", "json",
                      "--events", ev], timeout=90)
        cls.base_result = res
        cls.base = json.loads(res.stdout) if res.returncode == 0 else None
        cls.base_events = ev

    @staticmethod
    def summary(events):
        return sorted((tuple_of(e), e["cause"], e["stage"], e["sender"], e["validity"],
                       round(e["ts"] * 1e6), e["seq"], e["ack"], e["flags"]) for e in events)

    def test_same_results_for_every_link_type(self):
        self.assertEqual(self.base_result.returncode, 0, self.base_result.describe())
        self.assertEqual(self.base["rst"], len(lab_truth()))
        base_events = self.summary(self.read_events(self.base_events))
        for name, (build, link_name) in _variants().items():
            with self.subTest(variant=name):
                path = self.path(f"lab-{name}.{'pcapng' if name == 'pcapng' else 'pcap'}")
                build(self.eth)(path)
                ev = self.path(f"lab-{name}.jsonl")
                rep, res = self.report(path, "--events", ev)
                self.assertEqual(rep["link_type"], link_name)
                for key in ("packets", "tcp_packets", "rst", "causes", "stages", "senders",
                            "validity", "malformed", "ignored", "flows_created"):
                    self.assertEqual(rep[key], self.base[key], f"{name}: report[{key!r}]")
                self.assertEqual(self.summary(self.read_events(ev)), base_events,
                                 f"{name}: events differ from the Ethernet original")


# ---------------------------------------------------------------------------------------------
# 3. bad input files


class BadInput(RstmonCase):

    def test_nonexistent_capture(self):
        missing = self.path("does-not-exist.pcap")
        self.assert_usage_error(self.rstmon("--pcap", missing, "--report", "json"), missing)

    def test_empty_file(self):
        p = self.path("empty.pcap")
        open(p, "wb").close()
        self.assert_usage_error(self.rstmon("--pcap", p, "--report", "json"), p)

    def test_text_file(self):
        p = self.path("notes.txt")
        with open(p, "w") as f:
            f.write("this is not a capture\n" * 20)
        self.assert_usage_error(self.rstmon("--pcap", p, "--report", "json"), p)

    def test_directory(self):
        d = self.path("a-directory")
        os.mkdir(d)
        self.assert_usage_error(self.rstmon("--pcap", d, "--report", "json"), d)

    def test_unsupported_link_type(self):
        p = self.path("wifi.pcap")
        frame = bytes.fromhex("08020000") + b"\xff" * 6 + pu.MAC_A + pu.MAC_B + b"\0" * 30
        pu.write_pcap(p, pu.LINKTYPE_IEEE802_11, [frame])
        self.assert_usage_error(self.rstmon("--pcap", p, "--report", "json"), p, "105")

    def test_truncated_first_record(self):
        p = self.path("cut.pcap")
        pu.write_pcap(p, pu.LINKTYPE_ETHERNET, [])
        with open(p, "ab") as f:
            f.write(b"\x01\x02\x03\x04\x05")  # 5 of the 16 bytes of a record header
        self.assert_usage_error(self.rstmon("--pcap", p, "--report", "json"), p)

    def test_header_only_is_valid(self):
        p = self.path("header-only.pcap")
        pu.write_pcap(p, pu.LINKTYPE_ETHERNET, [])
        rep, _ = self.report(p)
        self.assertEqual(rep["packets"], 0)
        self.assertEqual(rep["rst"], 0)
        self.assertEqual(rep["tcp_packets"], 0)

    def test_capture_cut_after_some_frames_is_replayed(self):
        cap = pu.read_pcap(lab_pcap())
        p = self.path("cut-later.pcap")
        pu.write_pcap(p, cap.linktype, cap.records[:20])
        with open(p, "ab") as f:
            f.write(struct.pack("<IIII", 1, 0, 100, 100) + b"\0" * 10)  # record cut short
        # The whole frames are replayed and reported; the cut is said, and fails the run (2).
        res = self.rstmon("--pcap", p, "--report", "json")
        self.assertEqual(res.returncode, 2, res.describe())
        self.assertEqual(json.loads(res.stdout)["packets"], 20)
        self.assertIn("is cut short after 20 whole frames", res.stderr)


# ---------------------------------------------------------------------------------------------
# 4. malformed and ignored frames


def _frames():
    """(description, frame, kind, reason); kind is 'tcp', 'malformed' or 'ignored'."""
    E, V4, V6 = pu.eth, pu.ETH_IPV4, pu.ETH_IPV6
    syn = pu.tcp()
    rst = dict(flags=pu.TCP_RST | pu.TCP_ACK, seq=5, ack=9)
    F = []

    def add(desc, frame, kind, reason=None):
        F.append((desc, frame, kind, reason))

    # well-formed TCP, as a control
    add("IPv4 SYN", E(V4, pu.ipv4(syn)), "tcp")
    add("IPv6 SYN", E(V6, pu.ipv6(pu.tcp(sport=40001))), "tcp")
    add("IPv4 SYN with DF", E(V4, pu.ipv4(pu.tcp(sport=40002), flags_frag=0x4000)), "tcp")
    add("4 stacked VLAN tags", pu.vlan_eth(4, V4, pu.ipv4(pu.tcp(sport=40003))), "tcp")
    add("IPv6 atomic fragment", E(V6, pu.ipv6(struct.pack("!BBHI", 6, 0, 0, 7) +
                                              pu.tcp(sport=40004), nxt=44)), "tcp")
    # malformed
    add("10-byte frame", E(V4, b"")[:10], "malformed", "truncated_l2")
    add("VLAN tag cut short", E(pu.ETH_VLAN, b"\x00\x0a"), "malformed", "truncated_l2")
    add("5 stacked VLAN tags", pu.vlan_eth(5, V4, pu.ipv4(syn)), "malformed",
        "vlan_stack_too_deep")
    add("5 stacked QinQ tags", pu.vlan_eth(5, V4, pu.ipv4(syn), tpid=pu.ETH_QINQ), "malformed",
        "vlan_stack_too_deep")
    add("IPv4 header cut at 10 bytes", E(V4, pu.ipv4(syn)[:10]), "malformed", "truncated_ip")
    add("IPv6 header cut at 30 bytes", E(V6, pu.ipv6(syn)[:30]), "malformed", "truncated_ip")
    add("ethertype IPv4, version 6", E(V4, pu.ipv4(syn, version=6)), "malformed",
        "bad_ip_version")
    add("ethertype IPv6, version 4", E(V6, pu.ipv4(syn + b"\0" * 20)), "malformed",
        "bad_ip_version")
    add("IPv4 IHL 4", E(V4, pu.ipv4(syn, ihl=4)), "malformed", "bad_ipv4_ihl")
    add("IPv4 IHL 15 beyond the frame", E(V4, pu.ipv4(b"\0" * 10, ihl=15)), "malformed",
        "bad_ipv4_ihl")
    add("IPv4 total length 10 < IHL", E(V4, pu.ipv4(syn, total_len=10)), "malformed",
        "bad_ip_length")
    add("IPv6 hop-by-hop header overruns the payload",
        E(V6, pu.ipv6(bytes([6, 10]) + b"\0" * 6, nxt=0)), "malformed", "bad_ipv6_ext_header")
    chain = b"".join(bytes([60, 0]) + b"\0" * 6 for _ in range(9))
    add("IPv6 chain of 9 destination-options headers",
        E(V6, pu.ipv6(chain + syn, nxt=60)), "malformed", "bad_ipv6_ext_header")
    add("IPv6 ext header cut by the frame",
        E(V6, pu.ipv6(bytes([6, 0, 0, 0]), nxt=0, plen=8 + 20)), "malformed",
        "bad_ipv6_ext_header")
    add("IPv4 frame cut inside the TCP header",
        E(V4, pu.ipv4(syn, total_len=40)[:30]), "malformed", "truncated_tcp")
    add("IPv6 frame cut inside the TCP header",
        E(V6, pu.ipv6(syn, plen=20)[:50]), "malformed", "truncated_tcp")
    add("frame cut inside TCP options",
        E(V4, pu.ipv4(pu.tcp(options=b"\x02\x04\x05\xb4" * 3), total_len=52)[:44]), "malformed",
        "truncated_tcp")
    add("TCP data offset 4", E(V4, pu.ipv4(pu.tcp(doff=4, **rst))), "malformed",
        "bad_tcp_offset")
    add("TCP data offset 15 beyond the IP payload", E(V4, pu.ipv4(pu.tcp(doff=15, **rst))),
        "malformed", "bad_tcp_offset")
    add("MSS option of length 10 in 4 option bytes",
        E(V4, pu.ipv4(pu.tcp(options=b"\x02\x0a\x05\xb4", **rst))), "malformed",
        "bad_tcp_option")
    add("option kind without its length byte",
        E(V4, pu.ipv4(pu.tcp(options=b"\x01\x01\x01\x08", **rst))), "malformed",
        "bad_tcp_option")
    add("option length 1", E(V4, pu.ipv4(pu.tcp(options=b"\x08\x01\x00\x00", **rst))),
        "malformed", "bad_tcp_option")
    # fine, but not ours
    add("ARP", E(pu.ETH_ARP, pu.ARP_REQUEST), "ignored", "not_ip")
    add("VLAN-tagged ARP", pu.vlan_eth(1, pu.ETH_ARP, pu.ARP_REQUEST), "ignored", "not_ip")
    add("LLDP", E(0x88CC, b"\x02\x07\x04" + pu.MAC_A + b"\0\0"), "ignored", "not_ip")
    add("IPv4 UDP", E(V4, pu.ipv4(pu.udp(), proto=17)), "ignored", "not_tcp")
    add("IPv4 ICMP", E(V4, pu.ipv4(b"\x08\0\0\0\0\1\0\1", proto=1)), "ignored", "not_tcp")
    add("IPv6 UDP", E(V6, pu.ipv6(pu.udp(), nxt=17)), "ignored", "not_tcp")
    add("IPv6 ICMPv6 after hop-by-hop", E(V6, pu.ipv6(bytes([58, 0]) + b"\0" * 6 +
                                                      b"\x80\0\0\0\0\1\0\1", nxt=0)),
        "ignored", "not_tcp")
    add("IPv4 first fragment (MF) of TCP",
        E(V4, pu.ipv4(pu.tcp(**rst), flags_frag=0x2000)), "ignored", "ip_fragment")
    add("IPv4 later fragment of TCP", E(V4, pu.ipv4(b"\0" * 16, flags_frag=0x0003)), "ignored",
        "ip_fragment")
    add("IPv6 fragment header, offset 8", E(V6, pu.ipv6(struct.pack("!BBHI", 6, 0, 8, 7) +
                                                        b"\0" * 16, nxt=44)),
        "ignored", "ip_fragment")
    return F


class MalformedFrames(RstmonCase):

    def run_frames(self, frames, name):
        p = self.path(name)
        pu.write_pcap(p, pu.LINKTYPE_ETHERNET, [f for _, f, _, _ in frames])
        return self.report(p)[0]

    def test_counters_by_reason(self):
        frames = _frames()
        rep = self.run_frames(frames, "malformed.pcap")
        want_mal = collections.Counter(r for _, _, k, r in frames if k == "malformed")
        want_ign = collections.Counter(r for _, _, k, r in frames if k == "ignored")
        self.assertEqual(rep["packets"], len(frames))
        self.assertEqual(rep["tcp_packets"], sum(1 for f in frames if f[2] == "tcp"))
        self.assertEqual(rep["rst"], 0, "RST flags inside malformed segments must not count")
        self.assertTrue(set(want_mal) <= set(rep["malformed"]), rep["malformed"])
        self.assertTrue(set(want_ign) <= set(rep["ignored"]), rep["ignored"])
        self.assertEqual(rep["malformed"], {k: want_mal.get(k, 0) for k in rep["malformed"]})
        self.assertEqual(rep["ignored"], {k: want_ign.get(k, 0) for k in rep["ignored"]})

    def test_each_frame_alone(self):
        """One capture per frame, so a wrong counter names the frame that caused it."""
        for i, (desc, frame, kind, reason) in enumerate(_frames()):
            with self.subTest(frame=desc):
                rep = self.run_frames([(desc, frame, kind, reason)], f"frame-{i}.pcap")
                got_mal = {k: v for k, v in rep["malformed"].items() if v}
                got_ign = {k: v for k, v in rep["ignored"].items() if v}
                self.assertEqual(rep["packets"], 1)
                self.assertEqual(got_mal, {reason: 1} if kind == "malformed" else {})
                self.assertEqual(got_ign, {reason: 1} if kind == "ignored" else {})
                self.assertEqual(rep["tcp_packets"], 1 if kind == "tcp" else 0)

    def test_ipv4_length_shorter_than_tcp_header(self):
        # The frame holds a whole TCP header but the IPv4 total length covers only 10 bytes of
        # it: the IP length lies (bad_ip_length), the frame is not cut short (truncated_tcp).
        frame = pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(), total_len=30))
        rep = self.run_frames([("short IP length", frame, "malformed", "bad_ip_length")],
                              "short-iplen.pcap")
        self.assertEqual({k: v for k, v in rep["malformed"].items() if v}, {"bad_ip_length": 1})


# ---------------------------------------------------------------------------------------------
# 5. configuration errors


class ConfigErrors(RstmonCase):

    def config_error(self, yaml_text, *fragments):
        p = self.path(f"bad-{self._testMethodName}.yaml")
        with open(p, "w") as f:
            f.write(yaml_text)
        res = pu.run([RSTMON, "--config", p, "--pcap", lab_pcap(), "--report", "json"],
                     timeout=60)
        line = self.assert_usage_error(res, "rstmon: config: ", p + ": ", *fragments)
        return line

    def test_unknown_top_level_key(self):
        self.config_error("flow_table: {size: 65536}\nflow_tablee: {size: 2048}\n",
                          "flow_tablee: unknown key")

    def test_unknown_nested_key(self):
        self.config_error("flow_table: {size: 65536, sizee: 5}\n", "flow_table.sizee: unknown key")

    def test_unknown_key_in_list_item(self):
        self.config_error("flow_table: {size: 65536}\nports:\n  - {name: a, device: x, speed: 1}\n",
                          "ports[0].speed: unknown key")

    def test_wrong_type_integer(self):
        self.config_error("flow_table: {size: 65536}\nworkers: abc\n",
                          "workers: expected an integer, got 'abc'")

    def test_wrong_type_boolean(self):
        self.config_error("flow_table: {size: 65536}\nmetrics: {enabled: maybe}\n",
                          "metrics.enabled: expected true or false, got 'maybe'")

    def test_wrong_type_mapping(self):
        self.config_error("flow_table: 5\n", "flow_table: expected a mapping, got '5'")

    def test_wrong_type_list(self):
        self.config_error("flow_table: {size: 65536}\neal_args: --no-pci\n", "eal_args: ")

    def test_out_of_range(self):
        self.config_error("flow_table: {size: 5}\n",
                          "flow_table.size: 5 is out of range [1024, 1073741824]")

    def test_out_of_range_workers(self):
        self.config_error("flow_table: {size: 65536}\nworkers: 65\n",
                          "workers: 65 is out of range [1, 64]")

    def test_duration_out_of_range(self):
        self.config_error("flow_table: {size: 65536}\nthresholds: {idle_threshold: 50ms}\n",
                          "thresholds.idle_threshold: 50ms is out of range")

    def test_bad_duration_unit(self):
        self.config_error(
            "flow_table: {size: 65536}\nthresholds: {idle_threshold: 5parsecs}\n",
            "thresholds.idle_threshold: unknown duration unit 'parsecs' in '5parsecs' "
            "(use ms, s, m, h)")

    def test_not_a_duration(self):
        self.config_error("flow_table: {size: 65536, closing_timeout: soon}\n",
                          "flow_table.closing_timeout: ")

    def test_bad_listen_address(self):
        self.config_error("flow_table: {size: 65536}\nmetrics: {listen: nohost}\n",
                          "metrics.listen: 'nohost' is not host:port")

    def test_bad_listen_port(self):
        self.config_error("flow_table: {size: 65536}\nmetrics: {listen: '127.0.0.1:70000'}\n",
                          "metrics.listen: '127.0.0.1:70000'")

    def test_bad_listen_on_command_line(self):
        res = self.rstmon("--pcap", lab_pcap(), "--metrics", "nohost", "--report", "json")
        self.assert_usage_error(res, "metrics.listen: 'nohost' is not host:port")

    def test_invalid_service_name(self):
        self.config_error("flow_table: {size: 65536}\nservices:\n  - {name: Bad Name, ports: [80]}\n",
                          "services[0].name: 'Bad Name' must be 1-32 characters of a-z 0-9 _ - "
                          "and not 'other'")

    def test_reserved_service_name(self):
        self.config_error("flow_table: {size: 65536}\nservices:\n  - {name: other, ports: [80]}\n",
                          "services[0].name: 'other'")

    def test_duplicate_service_port(self):
        self.config_error("flow_table: {size: 65536}\nservices:\n  - {name: web, ports: [80]}\n"
                          "  - {name: alt, ports: [81, 80]}\n",
                          "services[1].ports: port 80 already belongs to another service")

    def test_service_port_out_of_range(self):
        self.config_error("flow_table: {size: 65536}\nservices:\n  - {name: web, ports: [0]}\n",
                          "services[0].ports[0]: 0 is out of range [1, 65535]")

    def test_ring_size_not_power_of_two(self):
        self.config_error("flow_table: {size: 65536}\nevents: {ring_size: 1000}\n",
                          "events.ring_size: 1000 is not a power of two")

    def test_ring_size_out_of_range(self):
        self.config_error("flow_table: {size: 65536}\nevents: {ring_size: 32}\n",
                          "events.ring_size: 32 is out of range [64, 1048576]")

    def test_invalid_yaml(self):
        self.config_error("flow_table: {size: 65536\n", "not valid YAML")

    def test_top_level_not_a_mapping(self):
        self.config_error("- a\n- b\n", "top level: expected a mapping")

    def test_nonexistent_config_file(self):
        p = self.path("no-such-config.yaml")
        res = pu.run([RSTMON, "--config", p, "--pcap", lab_pcap(), "--report", "json"], timeout=60)
        self.assert_usage_error(res, "rstmon: config: ", f"cannot read config file '{p}'")

    def test_config_path_is_a_directory(self):
        # std::ifstream opens a directory and reads "", which would parse as an empty config.
        # (Root ignores file modes: a directory is the unreadable path a root test can build.)
        d = self.path("config-dir")
        os.makedirs(d, exist_ok=True)
        res = pu.run([RSTMON, "--config", d, "--pcap", lab_pcap(), "--report", "none"],
                     timeout=60)
        self.assert_usage_error(res, "rstmon: config: ", d)

    def test_repository_config_loads(self):
        p = os.path.join(ROOT, "config", "rstmon.yaml")
        if not os.path.exists(p):
            self.skipTest("config/rstmon.yaml does not exist yet")
        res = pu.run([RSTMON, "--config", p, "--pcap", lab_pcap(), "--report", "json"],
                     timeout=120)
        self.assertEqual(res.returncode, 0, res.describe())
        rep = json.loads(res.stdout)
        self.assertEqual(rep["rst"], len(lab_truth()))


# ---------------------------------------------------------------------------------------------
# 6. the shared corpus of real captures


class WildCorpus(RstmonCase):

    def corpus_files(self):
        base = os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus"))
        if not (os.path.isdir(base) and os.path.isdir(os.path.join(base, "wild"))):
            self.skipTest(f"{base} (with wild/) is not present")
        files = []
        for sub in ("", "wild", "crafted"):
            files += sorted(glob.glob(os.path.join(base, sub, "*.pcap")))
        if not files:
            self.skipTest(f"no *.pcap under {base}")
        return files

    def test_every_capture_replays(self):
        for path in self.corpus_files():
            name = os.path.relpath(path, os.path.join(ROOT, ".."))
            with self.subTest(capture=name):
                ev = self.path(os.path.basename(path) + ".jsonl")
                res = self.rstmon("--pcap", path, "--report", "json", "--events", ev, timeout=120)
                self.assertEqual(res.returncode, 0, res.describe())
                try:
                    rep = json.loads(res.stdout)
                except ValueError as e:
                    self.fail(f"report is not JSON ({e})\n{res.describe()}")
                try:
                    frames = len(pu.read_pcap(path).records)
                except pu.PcapError:
                    frames = None
                if frames is not None:
                    self.assertEqual(rep["packets"], frames, "frames replayed vs frames in file")
                # Every frame is exactly one of: TCP, a SPAN copy of one, malformed, ignored.
                self.assertEqual(rep["tcp_packets"] + rep["duplicates"] +
                                 sum(rep["malformed"].values()) + sum(rep["ignored"].values()),
                                 rep["packets"])
                for key in ("causes", "stages", "senders", "validity"):
                    self.assertEqual(sum(rep[key].values()), rep["rst"], f"sum of {key}")
                events = self.read_events(ev)
                self.assertEqual(len(events), rep["rst"], "an offline replay loses no event")
                for e in events:
                    self.assertIn(e["cause"], rep["causes"])
                    self.assertIn(e["stage"], rep["stages"])
                    self.assertIn(e["sender"], rep["senders"])


if __name__ == "__main__":
    RSTMON, ROOT, rest = pu.take_script_args(sys.argv)
    unittest.main(argv=rest)
