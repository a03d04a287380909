#!/usr/bin/env python3
"""The metrics endpoint as operators deploy it: basic auth and TLS (checked with curl), config
reload on SIGHUP (counted, a bad file keeps the old config), and `promtool check metrics` on a real
scrape.

Usage: test_metrics_endpoint.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil as pu  # noqa: E402
import test_metrics as tm  # noqa: E402

PASSWORD = "s3cret-scrape"
HTTPS_LINE = re.compile(r"metrics at https://127\.0\.0\.1:(\d+)/metrics")


def curl(*args):
    """curl's HTTP status (000 when no HTTP answer) and body."""
    res = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10",
                          *args], capture_output=True, text=True, timeout=30)
    body, _, code = res.stdout.rpartition("\n")
    return code.strip(), body, res.stderr


class EndpointCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        if shutil.which("curl") is None:
            self.skipTest("curl not installed")
        self.tmp = tempfile.mkdtemp(prefix="rstmon-endpoint-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def serve(self, config_text, *extra):
        config = self.write("rstmon.yaml", config_text)
        s = tm.Served([tm.RSTMON, "--config", config, "--pcap", tm.lab_pcap(), "--serve",
                       "--metrics", "127.0.0.1:0", "--duration", "60", "--report", "json", *extra])
        self.servers.append(s)
        return s, config


class BasicAuth(EndpointCase):
    def test_401_without_or_with_wrong_credentials_200_with(self):
        pw = self.write("password", PASSWORD + "\n")
        s, _ = self.serve(f"metrics: {{basic_auth: {{username: prom, password_file: {pw}}}}}\n")
        port = s.port()
        s.report()
        url = f"http://127.0.0.1:{port}/metrics"
        self.assertEqual(curl(url)[0], "401")
        self.assertEqual(curl("-u", "prom:wrong", url)[0], "401")
        self.assertEqual(curl("-u", "other:" + PASSWORD, url)[0], "401")
        self.assertEqual(curl("-u", "prom:" + PASSWORD[:-1], url)[0], "401")
        code, body, err = curl("-u", "prom:" + PASSWORD, url)
        self.assertEqual(code, "200", err)
        self.assertIn("rstmon_rst_total{", body)
        self.assertIn("basic auth", s.stderr)

    def test_unreadable_password_file_is_a_config_error(self):
        missing = os.path.join(self.tmp, "absent")
        config = self.write("bad.yaml",
                            f"metrics: {{basic_auth: {{username: prom, password_file: {missing}}}}}\n")
        res = pu.run([tm.RSTMON, "--config", config, "--pcap", tm.lab_pcap(), "--serve",
                      "--metrics", "127.0.0.1:0", "--duration", "5"], timeout=60)
        self.assertEqual(res.returncode, 2, res.describe())
        lines = res.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertIn("metrics.basic_auth.password_file", lines[0])

    def test_username_without_password_file_is_rejected(self):
        config = self.write("bad.yaml", "metrics: {basic_auth: {username: prom}}\n")
        res = pu.run([tm.RSTMON, "--config", config, "--pcap", tm.lab_pcap()], timeout=60)
        self.assertEqual(res.returncode, 2, res.describe())
        self.assertIn("metrics.basic_auth", res.stderr)


class Tls(EndpointCase):
    def make_cert(self):
        if shutil.which("openssl") is None:
            self.skipTest("openssl not installed")
        key, crt = os.path.join(self.tmp, "key.pem"), os.path.join(self.tmp, "crt.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", crt], check=True, capture_output=True, timeout=60)
        with open(key) as k, open(crt) as c:
            pem = self.write("rstmon.pem", k.read() + c.read())
        return pem, crt

    def test_tls_handshake_and_scrape(self):
        pem, crt = self.make_cert()
        pw = self.write("password", PASSWORD + "\n")
        s, _ = self.serve(f"metrics: {{tls: {{cert_file: {pem}}}, "
                          f"basic_auth: {{username: prom, password_file: {pw}}}}}\n")
        port = int(s.poll_for("https metrics line",
                              lambda: (m := HTTPS_LINE.search(s.stderr)) and m.group(1), 30))
        s.report()
        url = f"https://127.0.0.1:{port}/metrics"
        code, body, err = curl("--cacert", crt, "-u", "prom:" + PASSWORD, url)
        self.assertEqual(code, "200", err + s.describe())
        self.assertIn("rstmon_rst_total{", body)
        self.assertEqual(curl("--cacert", crt, url)[0], "401")
        # Without the CA the handshake must fail verification: the certificate is really served.
        code, _, err = curl(url)
        self.assertEqual(code, "000")
        self.assertRegex(err, r"(?i)certificate")
        # Plain HTTP to the TLS port gets no metrics.
        code, body, _ = curl(f"http://127.0.0.1:{port}/metrics")
        self.assertNotEqual(code, "200")
        self.assertNotIn("rstmon_rst_total", body)

    def test_missing_certificate_is_a_config_error(self):
        config = self.write("bad.yaml", f"metrics: {{tls: {{cert_file: {self.tmp}/none.pem}}}}\n")
        res = pu.run([tm.RSTMON, "--config", config, "--pcap", tm.lab_pcap(), "--serve",
                      "--metrics", "127.0.0.1:0", "--duration", "5"], timeout=60)
        self.assertEqual(res.returncode, 2, res.describe())
        self.assertIn("metrics.tls.cert_file", res.stderr)


class Reload(EndpointCase):
    def reloads(self, port):
        fams = tm.parse_exposition(self, tm.scrape(port)[2])
        counts = tm.sum_by(fams, "rstmon_config_reloads_total", "result")
        ok = tm.samples(fams, "rstmon_config_last_reload_successful")[0].value
        when = tm.samples(fams, "rstmon_config_last_reload_success_timestamp_seconds")[0].value
        return counts.get("success", 0), counts.get("failure", 0), ok, when

    def test_sighup_counts_success_and_failure_and_keeps_running(self):
        good = "appliance: reload-test\nflow_table: {size: 65536}\n"
        s, config = self.serve(good)
        port = s.port()
        s.report()
        self.assertEqual(self.reloads(port)[:3], (0, 0, 1))
        t0 = self.reloads(port)[3]

        def after_hup(want_success, want_failure):
            s.proc.send_signal(signal.SIGHUP)
            return s.poll_for(f"reload counters {want_success}/{want_failure}",
                              lambda: (r := self.reloads(port))[:2] == (want_success, want_failure)
                              and r or None, 30)

        _, _, ok, t1 = after_hup(1, 0)
        self.assertEqual(ok, 1)
        self.assertGreaterEqual(t1, t0)
        with open(config, "w") as f:
            f.write("flow_table: {size: many}\n")
        _, _, ok, t2 = after_hup(1, 1)
        self.assertEqual(ok, 0)
        self.assertEqual(t2, t1)  # the last *successful* reload did not move
        self.assertIn("config reload failed", s.stderr)
        self.assertIn("flow_table.size", s.stderr)
        self.assertIsNone(s.proc.poll(), "a failed reload must not stop rstmon")
        with open(config, "w") as f:
            f.write(good)
        _, _, ok, _ = after_hup(2, 1)
        self.assertEqual(ok, 1)


class PromtoolCheckMetrics(EndpointCase):
    def test_promtool_check_metrics_is_clean(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not installed (Debian package prometheus)")
        s, _ = self.serve("appliance: lint\nflow_table: {size: 65536}\n")
        port = s.port()
        s.report()
        body = tm.scrape(port)[2]
        res = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                             text=True, timeout=60)
        # promtool prints one line per finding and exits 1 when there are any.
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(res.stdout.strip() + res.stderr.strip(), "")


if __name__ == "__main__":
    tm.RSTMON, tm.ROOT, rest = pu.take_script_args(sys.argv)
    unittest.main(argv=rest)
