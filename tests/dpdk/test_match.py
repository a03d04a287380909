#!/usr/bin/env python3
"""Services by SNI/Host and payload triggers, end to end on real traffic: rstmon replays
tests/data/tls-http.pcap (openssl s_client, curl and servers that reset their connections, in
network namespaces; tests/data/make-tls-http.sh) and its events, report and metrics must name
what an independent oracle here derives from the truth file and the capture's own bytes:

  service  first service in config order whose sni/host pattern matches the whole name
           (Python's re, case-insensitive), else the server port's, else "other";
  trigger  first trigger in config order found in the first match.window payload bytes of
           either direction (Python's re on the reassembled bytes).

Usage: test_match.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import collections
import csv
import ipaddress
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil as pu  # noqa: E402
import test_metrics as tm  # noqa: E402

WINDOW = 4096
# One source for the config and the oracle. Patterns are written with capitals on purpose:
# matching is case-insensitive.
SERVICES = [
    ("api", {"sni": [r"API\.Example\.com"], "ports": [8443]}),
    ("split", {"sni": [r"split\.example\.com"]}),
    ("web", {"host": [r"(www\.)?example\.ORG"]}),
    ("alt", {"ports": [8080, 8081, 8082, 8444]}),
]
TRIGGERS = [
    ("blocked_word", "forbidden-word"),
    ("curl_agent", "User-Agent: curl/"),
    ("long_alpn", "rstmon-test-protocol-0[1-8]"),
]


def config_text(services=SERVICES, triggers=TRIGGERS, extra=""):
    lines = ["appliance: match-test", "flow_table: {size: 65536}", "services:"]
    for name, spec in services:
        parts = [f"name: {name}"]
        for key in ("sni", "host"):
            if key in spec:
                parts.append(f"{key}: [" + ", ".join(f"'{p}'" for p in spec[key]) + "]")
        if "ports" in spec:
            parts.append("ports: [" + ", ".join(map(str, spec["ports"])) + "]")
        lines.append("  - {" + ", ".join(parts) + "}")
    lines.append("triggers:")
    for name, pattern in triggers:
        lines.append(f"  - {{name: {name}, pattern: '{pattern}'}}")
    lines.append(f"match: {{window: {WINDOW}}}")
    return "\n".join(lines) + "\n" + extra


def pcap_path():
    return os.path.join(tm.ROOT, "tests", "data", "tls-http.pcap")


def truth_rows():
    with open(os.path.join(tm.ROOT, "tests", "data", "tls-http.truth.tsv"), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


# ---- the oracle ---------------------------------------------------------------------------------

def tcp_segments(cap):
    """(src, sport, dst, dport, flags, seq, payload) of each TCP frame (Ethernet, IPv4/IPv6)."""
    for rec in cap.records:
        f = rec.data
        etype = struct.unpack("!H", f[12:14])[0]
        ip = f[14:]
        if etype == pu.ETH_IPV4:
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            src, dst, l4 = ip[12:16], ip[16:20], ip[ihl:total]
        elif etype == pu.ETH_IPV6:
            plen = struct.unpack("!H", ip[4:6])[0]
            src, dst, l4 = ip[8:24], ip[24:40], ip[40:40 + plen]
        else:
            continue
        sport, dport, seq, _ack, off, flags = struct.unpack("!HHIIBB", l4[:14])
        yield (str(ipaddress.ip_address(bytes(src))), sport, str(ipaddress.ip_address(bytes(dst))),
               dport, flags, seq, bytes(l4[(off >> 4) * 4:]))


class Flow:
    def __init__(self, client, server):
        self.client, self.server = client, server  # (address, port)
        self.isn = {}
        self.data = {client: {}, server: {}}  # side -> {offset: bytes}

    def first_bytes(self, side):
        chunks, out = self.data[side], b""
        while len(out) in chunks and len(out) < WINDOW:
            out += chunks[len(out)]
        return out[:WINDOW]


def flows_in_order(path):
    """Connections in SYN order, with each side's first payload bytes by sequence offset."""
    flows, index = [], {}
    for src, sport, dst, dport, flags, seq, payload in tcp_segments(pu.read_pcap(path)):
        a, b = (src, sport), (dst, dport)
        if flags & pu.TCP_SYN and not flags & pu.TCP_ACK and (a, b) not in index:
            flows.append(Flow(a, b))
            index[(a, b)] = index[(b, a)] = flows[-1]
        fl = index.get((a, b))
        if fl is None:
            continue
        if flags & pu.TCP_SYN:
            fl.isn.setdefault(a, seq)
        elif payload and a in fl.isn:
            fl.data[a].setdefault((seq - fl.isn[a] - 1) % (1 << 32), payload)
    return flows


def expected_service(row):
    """(service, method, name that decided it or None)."""
    if row["result"] == "found":
        for name, spec in SERVICES:
            if any(re.fullmatch(p, row["name"], re.IGNORECASE) for p in spec.get(row["kind"], [])):
                return name, row["kind"], row["name"]
    for name, spec in SERVICES:
        if int(row["port"]) in spec.get("ports", []):
            return name, "port", None
    return "other", "none", None


def expected_trigger(flow):
    both = [flow.first_bytes(flow.client), flow.first_bytes(flow.server)]
    for name, pattern in TRIGGERS:
        if any(re.search(pattern.encode(), b, re.DOTALL) for b in both):
            return name
    return None


# ---- the tests ----------------------------------------------------------------------------------

class MatchCase(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-match-")
        cls.rows = truth_rows()
        cls.flows = flows_in_order(pcap_path())
        assert len(cls.flows) == len(cls.rows), (len(cls.flows), len(cls.rows))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def write_config(self, text, name="rstmon.yaml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def replay(self, config_text_, *extra):
        events = os.path.join(self.tmp, "events.jsonl")
        res = pu.run([tm.RSTMON, "--config", self.write_config(config_text_), "--pcap",
                      pcap_path(), "--events", events, "--report", "json", *extra], timeout=120)
        self.assertEqual(res.returncode, 0, res.describe())
        with open(events) as f:
            return json.loads(res.stdout), [json.loads(line) for line in f]

    def reset_flows(self):
        """(truth row, flow) of each connection the server reset, in capture order."""
        return [(r, f) for r, f in zip(self.rows, self.flows) if r["reset"] == "yes"]


class OfflineEvents(MatchCase):
    def test_each_rst_event_names_its_service_name_and_trigger(self):
        _, events = self.replay(config_text())
        resets = self.reset_flows()
        self.assertEqual(len(resets), 6)
        self.assertEqual(len(events), len(resets), events)
        triggers_seen = set()
        for (row, flow), ev in zip(resets, events):
            with self.subTest(server=row["server"], port=row["port"], name=row["name"]):
                self.assertEqual((ev["src"], ev["sport"]), (row["server"], int(row["port"])))
                self.assertEqual((ev["dst"], ev["dport"]), flow.client)
                service, method, name = expected_service(row)
                self.assertEqual(ev["service"], service)
                if method in ("sni", "host"):
                    self.assertEqual(ev.get(method), name)
                    self.assertNotIn("host" if method == "sni" else "sni", ev)
                else:  # the port decided: no name on the event
                    self.assertNotIn("sni", ev)
                    self.assertNotIn("host", ev)
                self.assertEqual(ev.get("trigger"), expected_trigger(flow))
                triggers_seen.add(ev.get("trigger"))
        # The capture exercises every path: names by SNI and Host, the port, each trigger
        # (one of them only in the server's reply), and none.
        self.assertEqual({expected_service(r)[1] for r, _ in resets}, {"sni", "host", "port"})
        self.assertEqual(triggers_seen, {None, "blocked_word", "curl_agent", "long_alpn"})

    def test_names_are_matched_case_insensitively(self):
        with open(pcap_path(), "rb") as f:
            raw = f.read()
        # What the clients put on the wire, and what the events say.
        self.assertIn(b"API.Example.COM", raw)
        self.assertIn(b"Host: WWW.EXAMPLE.ORG", raw)
        _, events = self.replay(config_text())
        api = [e for e in events if e.get("sni") == "api.example.com"]
        self.assertEqual([e["service"] for e in api], ["api"])
        www = [e for e in events if e.get("host") == "www.example.org"]
        self.assertEqual([e["service"] for e in www], ["web", "web"])

    def test_trigger_only_in_the_servers_reply_is_found(self):
        resets = self.reset_flows()
        reply = [(r, f) for r, f in resets if r["port"] == "8082"]
        self.assertEqual(len(reply), 1)
        row, flow = reply[0]
        self.assertNotIn(b"forbidden-word", flow.first_bytes(flow.client))
        self.assertIn(b"forbidden-word", flow.first_bytes(flow.server))
        _, events = self.replay(config_text())
        ev = [e for e in events if e["sport"] == 8082]
        self.assertEqual([e.get("trigger") for e in ev], ["blocked_word"])

    def test_no_reassembly_buffer_decides_split_hellos_by_port(self):
        report, events = self.replay(config_text().replace(
            f"match: {{window: {WINDOW}}}", f"match: {{window: {WINDOW}, pending_flows: 0}}"))
        split = [e for e in events if e["src"] == "10.98.0.3"]
        self.assertEqual(len(split), 1)
        self.assertEqual(split[0]["service"], "alt")  # port 8444, not split.example.com
        self.assertNotIn("sni", split[0])
        self.assertEqual(report["service_identified"]["sni"],
                         sum(1 for r in self.rows if expected_service(r)[1] == "sni") - 2)

    def test_a_pattern_that_does_not_compile_stops_rstmon_with_one_line(self):
        bad = [("api", {"sni": [r"ok\.example\.com", "(unclosed"], "ports": [8443]})]
        res = pu.run([tm.RSTMON, "--config", self.write_config(config_text(bad, []), "bad.yaml"),
                      "--pcap", pcap_path(), "--report", "none"], timeout=60)
        self.assertEqual(res.returncode, 2, res.describe())
        lines = [l for l in res.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertIn("services[0].sni[1]", lines[0])
        self.assertIn("'(unclosed'", lines[0])


class OfflineMetrics(MatchCase):
    def test_metrics_and_report_count_services_triggers_and_identification(self):
        s = tm.Served([tm.RSTMON, "--config", self.write_config(config_text()), "--pcap",
                       pcap_path(), "--events", os.path.join(self.tmp, "ev.jsonl"), "--serve",
                       "--metrics", "127.0.0.1:0", "--duration", "60", "--report", "json"])
        try:
            port = s.port()
            report = s.report()
            fams = tm.parse_exposition(self, tm.scrape(port)[2])
        finally:
            s.kill()
        with open(os.path.join(self.tmp, "ev.jsonl")) as f:
            events = [json.loads(line) for line in f]
        resets = self.reset_flows()

        # rstmon_rst_by_trigger_total: exactly the oracle's trigger per reset flow, under the
        # cause rstmon gave that RST.
        want = collections.Counter()
        for (row, flow), ev in zip(resets, events):
            if expected_trigger(flow):
                want[(ev["cause"], expected_trigger(flow))] += 1
        got = {(x.labels["cause"], x.labels["trigger"]): x.value
               for x in tm.samples(fams, "rstmon_rst_by_trigger_total")}
        self.assertEqual(got, dict(want))
        self.assertEqual(sum(got.values()), 5)

        # RSTs per service, in the metrics and the report.
        by_service = collections.Counter(expected_service(r)[0] for r, _ in resets)
        self.assertEqual(tm.sum_by(fams, "rstmon_rst_total", "service"), dict(by_service))
        self.assertEqual({k: v for k, v in report["services"].items() if v}, dict(by_service))
        self.assertEqual({k: v for k, v in report["triggers"].items() if v},
                         dict(collections.Counter(t for _, t in want.elements())))

        # How every connection's service was decided, and what the extractors found.
        methods = collections.Counter(expected_service(r)[1] for r in self.rows)
        ident = tm.sum_by(fams, "rstmon_service_identified_total", "method")
        self.assertEqual(ident, {m: methods.get(m, 0) for m in ("sni", "host", "port", "none")})
        self.assertEqual(report["service_identified"], ident)
        names = {(x.labels["kind"], x.labels["result"]): x.value
                 for x in tm.samples(fams, "rstmon_first_payload_names_total")}
        want_names = collections.Counter((r["kind"], r["result"]) for r in self.rows)
        self.assertEqual({k: v for k, v in names.items() if v}, dict(want_names))
        for name in ("rstmon_match_pool_exhausted_total", "rstmon_match_names_evicted_total",
                     "rstmon_match_scan_errors_total", "rstmon_match_buffers_in_use"):
            self.assertEqual([x.value for x in tm.samples(fams, name)], [0.0], name)


if __name__ == "__main__":
    tm.RSTMON, tm.ROOT, argv = pu.take_script_args(sys.argv)
    unittest.main(argv=argv, verbosity=2)
