#!/usr/bin/env python3
"""rstmon, Prometheus and the shipped rules and dashboards, end to end, all real.

The scenario suite's namespace lab (tests/scenarios/lab.py) carries traffic; rstmon reads its SPAN
live (net_af_packet); Debian's Prometheus scrapes rstmon every second on loopback and evaluates the
shipped rule files (deploy/prometheus/*.yml) every second. Then:

1. normal traffic (FIN-closed connections to a listening service): Prometheus sees rstmon up and
   the traffic, and no RST alert is pending or firing;
2. a burst of connections to a closed port: the per-cause rate is visible through the HTTP API and
   RstSpike{cause="port_closed"} reaches `firing`;
3. every query of every shipped dashboard (variables substituted) runs on that Prometheus: each
   must succeed, name only metrics rstmon exports (or the shipped recording rules make), and the
   main panels must return data;
4. the main panels are rendered to a PNG (deploy/grafana/render_png.py).

Needs root (namespaces), /usr/bin/prometheus; exits 77 (skip) without them.

Usage: test_prometheus_e2e.py RSTMON SOURCE_ROOT [--png OUT.png] [--keep DIR]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "scenarios"))
sys.path.insert(0, os.path.join(ROOT, "deploy", "grafana"))
import lab as labmod  # noqa: E402
import dashboard_queries as dq  # noqa: E402

SKIP = 77
APPLIANCE = "e2e"
OPEN_PORT, CLOSED_PORT = 8080, 9099
BURST_CONNECTS = 400       # refused connections in the burst
BURST_SECONDS = 20         # spread over this long: 20/s, far above RstSpike's 0.5/s floor
NORMAL_CONNECTS = 40
RST_ALERTS = ("RstSpike", "RstInjectedAppeared", "RstMiddleboxRejectAppeared",
              "RstIdleTimeoutSurge", "RstPortClosedStorm")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(what, fn, timeout, step=0.25):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


class Child:
    """A background process with its output in a file."""

    def __init__(self, name, args, workdir):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(a) for a in args], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


class PromApi:
    def __init__(self, base):
        self.base = base

    def get(self, path, **params):
        url = self.base + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        return body

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = at
        return self.get("/api/v1/query", **params)

    def value(self, expr):
        """Sum of an instant vector's values (None when empty or failed)."""
        r = self.query(expr)
        if r.get("status") != "success" or not r["data"]["result"]:
            return None
        return sum(float(s["value"][1]) for s in r["data"]["result"])

    def alerts(self):
        return self.get("/api/v1/alerts")["data"]["alerts"]


class Failures:
    def __init__(self):
        self.items = []

    def check(self, ok, msg):
        if not ok:
            self.items.append(msg)
            log("FAIL: " + msg)
        return ok


def serve_forever(lab, stop):
    """Server in the lab's server namespace: accepts, reads to EOF, closes (a FIN close)."""
    srv = lab.srv.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((labmod.SRV4, OPEN_PORT))
    srv.listen(128)
    srv.settimeout(0.2)

    def handle(c):
        with c:
            c.settimeout(5)
            try:
                while c.recv(4096):
                    pass
                c.sendall(b"bye\n")
            except OSError:
                pass

    while not stop.is_set():
        try:
            c, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(c,), daemon=True).start()
    srv.close()


def normal_connection(lab):
    c = lab.cli.socket()
    with c:
        c.settimeout(5)
        c.connect((labmod.SRV4, OPEN_PORT))
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        c.shutdown(socket.SHUT_WR)
        while c.recv(4096):
            pass


def refused_connection(lab):
    c = lab.cli.socket()
    with c:
        c.settimeout(5)
        try:
            c.connect((labmod.SRV4, CLOSED_PORT))
        except ConnectionRefusedError:
            return True
    return False


def write_prometheus_config(path, rstmon_port, rule_files):
    rules = "\n".join(f"  - {f}" for f in rule_files)
    with open(path, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
{rules}
scrape_configs:
  - job_name: rstmon
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:{rstmon_port}']
""")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rstmon")
    ap.add_argument("srcroot")
    ap.add_argument("--png", help="also write the rendered dashboard here (README picture)")
    ap.add_argument("--keep", help="directory for logs, config and the PNG (kept)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("SKIP: needs root for network namespaces")
        return SKIP
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.access(prometheus, os.X_OK):
        print("SKIP: no prometheus binary (Debian package prometheus)")
        return SKIP
    srcroot = os.path.abspath(args.srcroot)
    rule_files = sorted(os.path.join(srcroot, "deploy", "prometheus", f)
                        for f in os.listdir(os.path.join(args.srcroot, "deploy", "prometheus"))
                        if f.startswith("rstmon-") and f.endswith(".yml"))
    work = args.keep or tempfile.mkdtemp(prefix="rstmon-prom-e2e-")
    os.makedirs(work, exist_ok=True)
    shutil.rmtree(os.path.join(work, "tsdb"), ignore_errors=True)  # no series from an earlier run
    fails = Failures()
    lab = labmod.Lab("e%d" % (os.getpid() % 100000), log)
    children = []
    stop = threading.Event()
    try:
        lab.up()
        rstmon_port, prom_port = free_port(), free_port()
        cfg = os.path.join(work, "rstmon.yaml")
        with open(cfg, "w") as f:
            f.write(f"""appliance: {APPLIANCE}
ports:
  - {{name: span, device: "net_af_packet0,iface={lab.span}"}}
# closed connections end (and count in rstmon_connections_total) 5 s after their FIN/RST
flow_table: {{size: 65536, closing_timeout: 5s}}
metrics: {{listen: "127.0.0.1:{rstmon_port}"}}
services:
  - {{name: web, ports: [{OPEN_PORT}]}}
  - {{name: billing, ports: [{CLOSED_PORT}]}}
""")
        rstmon = Child("rstmon", [args.rstmon, "--config", cfg], work)
        children.append(rstmon)
        poll("rstmon's metrics endpoint", lambda: "metrics at http://" in rstmon.output()
             or not rstmon.alive(), 60)
        if not rstmon.alive():
            raise AssertionError("rstmon exited:\n" + rstmon.output())
        pcfg = os.path.join(work, "prometheus.yml")
        write_prometheus_config(pcfg, rstmon_port, rule_files)
        prom = Child("prometheus", [prometheus, "--config.file=" + pcfg,
                                    "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
                                    "--web.listen-address=127.0.0.1:%d" % prom_port,
                                    "--log.level=warn"], work)
        children.append(prom)
        api = PromApi("http://127.0.0.1:%d" % prom_port)

        def up():
            try:
                return api.value('up{job="rstmon"}') == 1
            except OSError:
                return not prom.alive() and (_ for _ in ()).throw(
                    AssertionError("prometheus exited:\n" + prom.output()))
        poll("Prometheus scraping rstmon (up == 1)", up, 60)
        r = api.get("/api/v1/rules")
        groups = r["data"]["groups"]
        fails.check(groups and all(g["rules"] for g in groups),
                    f"rule files not loaded: {r}")
        log(f"prometheus up, {sum(len(g['rules']) for g in groups)} rules from "
            f"{len(rule_files)} files")
        t_start = time.time()

        # 1. normal traffic
        threading.Thread(target=serve_forever, args=(lab, stop), daemon=True).start()
        time.sleep(0.3)  # listener bind in its thread; connects below retry anyway
        for i in range(NORMAL_CONNECTS):
            for attempt in range(20):
                try:
                    normal_connection(lab)
                    break
                except ConnectionRefusedError:
                    time.sleep(0.05)
            time.sleep(0.15)
        fins = poll("FIN-closed connections in Prometheus",
                    lambda: (v := api.value('rstmon_connections_total{outcome="fin"}')) and
                    v >= NORMAL_CONNECTS * 0.9 and v, 60)
        log(f"normal phase: {fins:.0f} FIN-closed connections seen by Prometheus")
        rst_now = api.value("sum(rstmon_rst_total)") or 0
        fails.check(rst_now == 0, f"normal traffic produced {rst_now} RSTs")
        rst_alerts = [a for a in api.alerts() if a["labels"]["alertname"] in RST_ALERTS]
        fails.check(not rst_alerts, f"RST alerts on normal traffic: {rst_alerts}")
        any_alerts = [a["labels"]["alertname"] for a in api.alerts()]
        fails.check(not any_alerts, f"alerts pending/firing on normal traffic: {any_alerts}")

        # 2. the burst
        t_burst = time.time()
        refused = 0
        for i in range(BURST_CONNECTS):
            refused += refused_connection(lab)
            time.sleep(BURST_SECONDS / BURST_CONNECTS)
        log(f"burst: {refused}/{BURST_CONNECTS} connections refused in "
            f"{time.time() - t_burst:.1f} s")
        fails.check(refused == BURST_CONNECTS, f"only {refused} connections refused")
        rate_q = ('sum by (cause, service) (rate(rstmon_rst_total{appliance="%s",'
                  'cause="port_closed"}[1m]))' % APPLIANCE)
        rate = poll("per-cause RST rate in Prometheus", lambda: api.value(rate_q), 30)
        log(f"rate(rstmon_rst_total{{cause=\"port_closed\"}}[1m]) = {rate:.2f}/s")
        total = poll("all burst RSTs counted",
                     lambda: (v := api.value('sum(rstmon_rst_total{cause="port_closed",'
                                             'service="billing"})')) and v >= refused and v, 30)
        fails.check(total == refused, f"port_closed RSTs {total} != refused connects {refused}")
        other = api.value('sum(rstmon_rst_total{cause!="port_closed"})') or 0
        fails.check(other == 0, f"{other} RSTs with another cause")

        def spike_firing():
            for a in api.alerts():
                if (a["labels"]["alertname"] == "RstSpike" and a["state"] == "firing"
                        and a["labels"].get("cause") == "port_closed"):
                    return a
            return None
        alert = poll("RstSpike{cause=port_closed} firing", spike_firing, 150, step=1)
        log("ALERT FIRING: " + json.dumps({"labels": alert["labels"],
                                           "annotations": alert["annotations"],
                                           "activeAt": alert["activeAt"],
                                           "value": alert["value"]}, indent=1))
        fails.check(alert["labels"].get("service") == "billing" and
                    alert["labels"].get("appliance") == APPLIANCE and
                    alert["labels"].get("severity") == "page", f"labels {alert['labels']}")
        fails.check("port_closed" in alert["annotations"].get("summary", ""),
                    f"summary {alert['annotations']}")
        others = sorted({a["labels"]["alertname"] for a in api.alerts()} - {"RstSpike"})
        log(f"other alerts pending/firing: {others}")
        fails.check(not [n for n in others if n.startswith("Rstmon")],
                    f"capture-health alerts during a clean burst: {others}")
        t_end = time.time()

        # 3. every dashboard query
        exported = set(api.get("/api/v1/label/__name__/values")["data"])
        recorded = set()
        for g in groups:
            for rule in g["rules"]:
                if rule["type"] == "recording":
                    recorded.add(rule["name"])
        allowed = exported | recorded | {"ALERTS", "ALERTS_FOR_STATE"}
        variables = {"appliance": APPLIANCE, "service": "All", "cause": "All",
                     "datasource": "prometheus"}
        rng = int(t_end - t_start) + 1
        variables.update({"__range": f"{rng}s", "__interval": "1s", "__rate_interval": "1m"})
        checked = 0
        report = []
        for path, dash in dq.load_dashboards(os.path.join(args.srcroot, "deploy", "grafana",
                                                          "dashboards")):
            for q in dq.panel_queries(dash, variables):
                checked += 1
                label = f"{q['dashboard']} / {q['panel']} / {q['ref_id']}"
                names = dq.metric_names(q["expr"])
                unknown = sorted(n for n in names if n not in allowed)
                fails.check(not unknown, f"{label}: names metrics rstmon does not export: "
                                         f"{unknown} in {q['expr']}")
                if "$" in q["expr"]:
                    fails.check(False, f"{label}: unsubstituted variable in {q['expr']}")
                    continue
                if q.get("kind") == "variable" and q.get("series_match"):
                    r = api.get("/api/v1/series", **{"match[]": q["series_match"],
                                                     "start": t_start, "end": t_end})
                    n = len(r.get("data") or [])
                else:
                    r = api.query(q["expr"], at=t_end)
                    n = len(r["data"]["result"]) if r.get("status") == "success" else 0
                ok = fails.check(r.get("status") == "success",
                                 f"{label}: query failed: {r.get('error')} :: {q['expr']}")
                if ok and q["main"]:
                    fails.check(n > 0, f"{label}: main panel returned no data :: {q['expr']}")
                report.append(f"{'ok ' if ok else 'ERR'} {n:3d} series  {label}: {q['expr']}")
        with open(os.path.join(work, "dashboard-queries.txt"), "w") as f:
            f.write("\n".join(report) + "\n")
        log(f"dashboard queries checked: {checked} (list in {work}/dashboard-queries.txt)")
        fails.check(checked >= 20, f"only {checked} dashboard queries found")

        # 4. the picture
        png = args.png or os.path.join(work, "rstmon-overview.png")
        res = subprocess.run(["/usr/bin/python3",
                              os.path.join(args.srcroot, "deploy", "grafana", "render_png.py"),
                              "--prometheus", api.base, "--start", str(int(t_start) - 5),
                              "--end", str(int(t_end) + 1), "--step", "1",
                              "--scrape-interval", "1s", "--appliance", APPLIANCE,
                              "--out", png, "--fail-empty"],
                             capture_output=True, text=True, timeout=300)
        fails.check(res.returncode == 0 and os.path.getsize(png) > 10000,
                    f"render_png failed ({res.returncode}): {res.stdout}{res.stderr}")
        log(f"dashboard rendered to {png}")
    except (AssertionError, labmod.LabError, OSError) as e:
        fails.check(False, f"{type(e).__name__}: {e}")
    finally:
        stop.set()
        for c in reversed(children):
            c.stop()
        lab.down()
        for c in children:
            if fails.items:
                print(f"--- {c.name} output (last 3000 chars) ---\n{c.output()[-3000:]}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if fails.items:
        print(f"{len(fails.items)} failed checks:\n  " + "\n  ".join(fails.items))
        return 1
    print("prometheus-e2e: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
