#!/usr/bin/env python3
"""End to end, the real rstmon binary: the evidence in every RST event, forensic pcaps read back
with tshark (the expected packets at the frame numbers the event names), /top beside /metrics
and in the JSON report with exact counts on the bundled capture, payload bytes only when asked,
and live event files rotated by spdlog.

Usage: test_evidence_top.py RSTMON_EXE SOURCE_ROOT [unittest args]
Exits 77 (skip) when tshark is missing.
"""

import base64
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil as pu  # noqa: E402
from child import Child  # noqa: E402

RSTMON = None
ROOT = None
METRICS_LINE = re.compile(r"metrics at http://127\.0\.0\.1:(\d+)/metrics")
K = 4  # forensics.packets_before in these tests


def lab_pcap():
    return os.path.join(ROOT, "tests", "data", "rst-lab.pcap")


def tshark_frames(path):
    """Every TCP frame of a capture: dicts with number, time (µs, int), 4-tuple, flags, seq, len."""
    p = subprocess.run(
        ["tshark", "-n", "-r", path, "-o", "tcp.relative_sequence_numbers:FALSE", "-T", "fields",
         "-E", "separator=\t", "-e", "frame.number", "-e", "frame.time_epoch", "-e", "ip.src",
         "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e",
         "tcp.dstport", "-e", "tcp.flags", "-e", "tcp.seq", "-e", "tcp.len", "-e", "ip.ttl",
         "-e", "ipv6.hlim"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"tshark -r {path} failed: {p.stderr}")
    out = []
    for ln in p.stdout.splitlines():
        f = ln.split("\t")
        sec, _, frac = f[1].partition(".")
        out.append({"number": int(f[0]), "us": int(sec) * 1000000 + int((frac + "000000")[:6]),
                    "src": f[2] or f[3], "sport": int(f[4]), "dst": f[5] or f[6],
                    "dport": int(f[7]), "flags": int(f[8], 16), "seq": int(f[9]),
                    "len": int(f[10]), "ttl": int(f[11] or f[12])})
    return out


def flow_key(d):
    a, b = (d["src"], int(d["sport"])), (d["dst"], int(d["dport"]))
    return (a, b) if a <= b else (b, a)


def event_us(e):
    return int(round(e["ts"] * 1e6))


class Served(Child):
    """rstmon running in the background; stdout/stderr collected so they can be polled."""

    def poll_for(self, what, fn, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            got = fn()
            if got is not None:
                return got
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {what}\nstderr: {self.stderr[-3000:]}")
            time.sleep(0.02)

    def port(self):
        def find():
            m = METRICS_LINE.search(self.stderr)
            return int(m.group(1)) if m else None
        return self.poll_for("metrics port on stderr", find)

    def report(self):
        def parse():
            try:
                return json.loads(self.stdout)
            except ValueError:
                return None
        return self.poll_for("JSON report on stdout", parse)

    def stop(self):
        if self.proc.poll() is None:
            pu.kill_group(self.proc)
        self.close()


def get(port, path, auth=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Case(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rstmon-evidence-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def config(self, extra):
        path = os.path.join(self.tmp, "rstmon.yaml")
        with open(path, "w") as f:
            f.write("flow_table: {size: 4096}\nrx: {mbufs: 2047}\n" + extra)
        return path

    def replay(self, pcap, extra="", *args):
        ev = os.path.join(self.tmp, "events.jsonl")
        res = pu.run([RSTMON, "--config", self.config(extra), "--pcap", pcap, "--events", ev,
                      "--report", "json", *args], timeout=120)
        self.assertEqual(res.returncode, 0, res.describe())
        with open(ev) as f:
            events = [json.loads(ln) for ln in f]
        return json.loads(res.stdout), events


# ---------------------------------------------------------------------------------------------


class BundledCaptureEvidenceAndPcaps(Case):
    """rst-lab.pcap with forensics on for every cause: evidence and captures against tshark's
    own reading of the original capture."""

    def test_every_event_has_its_evidence_and_its_packets(self):
        fdir = os.path.join(self.tmp, "forensics")
        rep, events = self.replay(lab_pcap(), f"forensics: {{enabled: true, dir: {fdir}, "
                                              f"packets_before: {K}}}\n")
        self.assertEqual(len(events), 18)
        frames = tshark_frames(lab_pcap())
        by_flow = collections.defaultdict(list)
        for fr in frames:
            by_flow[flow_key(fr)].append(fr)
        files = {}
        for e in events:
            with self.subTest(event=(e["src"], e["sport"], e["dst"], e["dport"])):
                flow = by_flow[flow_key(e)]
                rst_i = next(i for i, fr in enumerate(flow)
                             if fr["us"] == event_us(e) and fr["flags"] & 4 and fr["src"] == e["src"])
                before = flow[:rst_i]
                # Evidence: TTLs and hop distances (one host pair, no router: delta 0). The
                # baseline is the sender's in this flow, else its TTL in earlier flows.
                self.assertEqual(e["hops"], 64 - e["ttl"])
                sender_pkts = [fr for fr in before if fr["src"] == e["src"]]
                earlier = [fr for fr in frames if fr["src"] == e["src"] and fr["us"] < event_us(e)]
                if sender_pkts:
                    self.assertEqual(e["flow_ttl"], sender_pkts[0]["ttl"])
                else:
                    self.assertNotIn("flow_ttl", e)
                if earlier:
                    self.assertEqual(e["hop_delta"], 0)
                    self.assertNotIn("missing", e)  # every flow seen from its SYN, roles known
                else:  # the server's very first packet in the capture: nothing to compare
                    self.assertNotIn("hop_delta", e)
                    self.assertEqual(e["missing"], ["sender_ttl"])
                self.assertEqual(e["rexmit_run"], 0)
                self.assertEqual(e["ka_probes"], 0)
                # Bytes each way: the payload tshark sees before the RST.
                self.assertEqual(e["src_bytes"], sum(fr["len"] for fr in sender_pkts))
                self.assertEqual(e["dst_bytes"],
                                 sum(fr["len"] for fr in before if fr["src"] == e["dst"]))
                self.assertNotIn("payload", e)
                # The capture: the flow's last K packets and the RST, at the named numbers.
                pc = e["pcap"]
                self.assertTrue(os.path.isfile(pc["file"]), pc)
                self.assertTrue(pc["file"].startswith(fdir + "/rstmon-"), pc)
                want = before[-K:] + [flow[rst_i]]
                self.assertEqual(pc["packets"], len(want))  # nothing follows these RSTs
                self.assertEqual(pc["rst_packet"], pc["first_packet"] + len(want) - 1)
                if pc["file"] not in files:
                    files[pc["file"]] = {fr["number"]: fr for fr in tshark_frames(pc["file"])}
                got = [files[pc["file"]][n]
                       for n in range(pc["first_packet"], pc["first_packet"] + pc["packets"])]
                strip = lambda fr: {k: v for k, v in fr.items() if k != "number"}  # noqa: E731
                self.assertEqual([strip(g) for g in got], [strip(w) for w in want])
                rst = files[pc["file"]][pc["rst_packet"]]
                self.assertTrue(rst["flags"] & 4)
                self.assertEqual((rst["src"], rst["seq"]), (e["src"], e["seq"]))
        # The captures are all there is in the files, back to back.
        self.assertEqual(sum(len(f) for f in files.values()), sum(e["pcap"]["packets"] for e in events))

    def test_only_the_configured_causes_are_captured(self):
        fdir = os.path.join(self.tmp, "forensics")
        _, events = self.replay(lab_pcap(), f"forensics: {{enabled: true, dir: {fdir}, "
                                            f"causes: [port_closed]}}\n")
        with_pcap = [e for e in events if "pcap" in e]
        self.assertEqual(sorted({e["cause"] for e in with_pcap}), ["port_closed"])
        self.assertEqual(len(with_pcap), 6)
        files = glob.glob(os.path.join(fdir, "rstmon-*.pcap"))
        self.assertEqual(len(files), 1, files)
        frames = tshark_frames(files[0])
        self.assertEqual(len(frames), 12)  # each: the client's SYN and the server's RST
        self.assertEqual([fr["flags"] & 0x06 for fr in frames], [0x02, 0x04] * 6)


class TopOnTheBundledCapture(Case):
    """/top (same server and port as /metrics) and the report's "top": exact counts."""

    SERVERS = ["10.99.0.2:9001", "10.99.0.2:9002", "10.99.0.2:9003",
               "[fd00:99::2]:9001", "[fd00:99::2]:9002", "[fd00:99::2]:9003"]

    def serve(self, extra=""):
        srv = Served([RSTMON, "--config", self.config(extra), "--pcap", lab_pcap(), "--report",
                      "json", "--serve", "--metrics", "127.0.0.1:0", "--duration", "60"])
        self.addCleanup(srv.stop)
        return srv, srv.port(), srv.report()

    def test_top_counts_and_report(self):
        srv, port, rep = self.serve()
        status, body = get(port, "/top")
        self.assertEqual(status, 200, body)
        top = json.loads(body)
        self.assertEqual(top, rep["top"])  # the report carries the same document
        self.assertEqual(top["dropped"], 0)
        entry = lambda k, n: {"key": k, "rst": n, "error": 0}  # noqa: E731
        self.assertEqual(top["all"], {
            "rst": 18,
            "servers": [entry(k, 3) for k in self.SERVERS],
            "clients": [entry("10.99.0.1", 9), entry("fd00:99::1", 9)],
            "server_prefixes": [entry("10.99.0.0/24", 9), entry("fd00:99::/64", 9)]})
        self.assertEqual(sorted(top["causes"]), ["linger_abort", "port_closed", "unread_data_close"])
        for cause, port_ in (("port_closed", 9001), ("linger_abort", 9002),
                             ("unread_data_close", 9003)):
            self.assertEqual(top["causes"][cause]["servers"],
                             [entry(f"10.99.0.2:{port_}", 3), entry(f"[fd00:99::2]:{port_}", 3)])
            self.assertEqual(top["causes"][cause]["rst"], 6)
        self.assertEqual(top["learned_idle_timeouts"], [])
        # One cause, one entry per list.
        status, body = get(port, "/top?cause=linger_abort&n=1")
        self.assertEqual(status, 200, body)
        one = json.loads(body)
        self.assertNotIn("all", one)
        self.assertEqual(one["causes"]["linger_abort"]["servers"], [entry("10.99.0.2:9002", 3)])
        for bad in ("/top?n=0", "/top?cause=nope", "/top?colour=red"):
            status, body = get(port, bad)
            self.assertEqual(status, 400, (bad, body))
            self.assertIn("error", json.loads(body))
        # /metrics is still served by the same server, with the learned-timeout family.
        status, body = get(port, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("# TYPE rstmon_learned_idle_timeout_seconds gauge", body)
        self.assertIn('rstmon_rst_total{appliance=', body)

    def test_top_is_behind_the_metrics_basic_auth(self):
        pw = os.path.join(self.tmp, "pw")
        with open(pw, "w") as f:
            f.write("hunter22\n")
        _, port, _ = self.serve(f"metrics: {{basic_auth: {{username: ops, password_file: {pw}}}}}\n")
        self.assertEqual(get(port, "/top")[0], 401)
        self.assertEqual(get(port, "/top", auth="ops:wrong")[0], 401)
        status, body = get(port, "/top", auth="ops:hunter22")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["all"]["rst"], 18)

    def test_top_off(self):
        rep, _ = self.replay(lab_pcap(), "top: {enabled: false}\n")
        self.assertNotIn("top", rep)


def write_capture(path, records):
    pu.write_pcap(path, pu.LINKTYPE_ETHERNET,
                  [pu.Record(1700000000 + i // 1000, (i % 1000) * 1000, r) for i, r in enumerate(records)])


class PayloadAndMissingEvidence(Case):

    def test_payload_only_with_include_payload(self):
        pcap = os.path.join(self.tmp, "payload.pcap")
        cli = dict(src="192.0.2.1", dst="192.0.2.2")
        srv = dict(src="192.0.2.2", dst="192.0.2.1")
        write_capture(pcap, [
            pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(40000, 80, 1000, 0, pu.TCP_SYN), **cli)),
            pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(80, 40000, 0, 1001, pu.TCP_RST | pu.TCP_ACK,
                                               payload=b"no thanks"), **srv))])
        _, events = self.replay(pcap)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["len"], 9)
        self.assertNotIn("payload", events[0])
        _, events = self.replay(pcap, "events: {include_payload: true}\n")
        self.assertEqual(events[0]["payload"], b"no thanks".hex())

    def test_midstream_flow_names_the_missing_handshake(self):
        pcap = os.path.join(self.tmp, "midstream.pcap")
        cli = dict(src="192.0.2.1", dst="192.0.2.2")
        srv = dict(src="192.0.2.2", dst="192.0.2.1", ttl=61)
        write_capture(pcap, [
            pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(40000, 80, 5000, 9000, pu.TCP_ACK | pu.TCP_PSH,
                                               payload=b"x" * 30), **cli)),
            pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(80, 40000, 9000, 5030, pu.TCP_ACK | pu.TCP_PSH,
                                               payload=b"y" * 700), **srv)),
            pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(80, 40000, 9700, 5030, pu.TCP_RST | pu.TCP_ACK), **srv)),
            # a lone RST of a flow never seen, from a host never seen
            pu.eth(pu.ETH_IPV4, pu.ipv4(pu.tcp(40001, 3306, 1, 0, pu.TCP_RST), src="192.0.2.9",
                                        dst="192.0.2.2"))])
        _, events = self.replay(pcap)
        self.assertEqual(len(events), 2)
        # (the lone RST is final at once, the other when its episode ends)
        mid = next(e for e in events if e["sport"] == 80)
        lone = next(e for e in events if e["sport"] == 40001)
        self.assertEqual(mid["cause"], "no_state")
        self.assertEqual(mid["missing"], ["handshake"])
        self.assertEqual((mid["src_bytes"], mid["dst_bytes"]), (700, 30))
        self.assertEqual((mid["flow_ttl"], mid["sender_hops"], mid["hop_delta"]), (61, 3, 0))
        self.assertEqual(lone["missing"], ["flow", "sender_ttl", "sequence"])
        self.assertNotIn("src_bytes", lone)


class LiveEventFilesRotate(Case):

    def test_live_events_go_through_the_rotating_sink(self):
        ev = os.path.join(self.tmp, "events.jsonl")
        cfg = self.config(
            f'ports: [{{name: p0, device: "net_pcap_evr0,rx_pcap={lab_pcap()}"}}]\n'
            f'metrics: {{listen: "127.0.0.1:0"}}\n'
            f"events: {{path: {ev}, max_file_size: 4096, max_files: 5}}\n")
        res = pu.run([RSTMON, "--config", cfg, "--duration", "4", "--report", "json"], timeout=120)
        self.assertEqual(res.returncode, 0, res.describe())
        files = sorted(glob.glob(os.path.join(self.tmp, "events*.jsonl")))
        self.assertIn(os.path.join(self.tmp, "events.1.jsonl"), files)
        lines = []
        for fn in files:
            self.assertLessEqual(os.path.getsize(fn), 4096, fn)
            with open(fn) as f:
                lines += [json.loads(ln) for ln in f]
        self.assertEqual(len(lines), 18)
        self.assertEqual(json.loads(res.stdout)["rst"], 18)


if __name__ == "__main__":
    RSTMON, ROOT, argv = pu.take_script_args(sys.argv)
    if shutil.which("tshark") is None:
        print("SKIP: tshark not installed")
        sys.exit(77)
    unittest.main(argv=argv, verbosity=2)
