#!/usr/bin/python3
"""rstmon's Grafana dashboards, checked without Grafana or Prometheus.

Structure (valid JSON model, unique ids, non-overlapping grid, `${datasource}` everywhere,
variables, legends), every query's metrics against the metrics rstmon exports, the extractor
(dashboard_queries.py: variable substitution, metric_names) on tricky expressions, the
provisioning files, and the pure parts of render_png.py. Where promtool is installed every
resolved query is also parsed by it. Run: /usr/bin/python3 tests/deploy/test_dashboards.py
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRAFANA = os.path.join(ROOT, "deploy", "grafana")
sys.path.insert(0, GRAFANA)
import dashboard_queries as dq  # noqa: E402
import render_png  # noqa: E402

try:
    import yaml
except ImportError:  # python3-yaml; only the provisioning tests need it
    yaml = None

# What rstmon exports (the project's metric list). A dashboard naming anything else fails.
EXPORTED = {
    "rstmon_rst_total", "rstmon_rst_validity_total", "rstmon_packets_total",
    "rstmon_bytes_total", "rstmon_malformed_packets_total", "rstmon_ignored_packets_total",
    "rstmon_tcp_packets_total", "rstmon_sliced_packets_total", "rstmon_flows_active",
    "rstmon_flows_created_total", "rstmon_flows_expired_total", "rstmon_flow_table_full_total",
    "rstmon_untracked_packets_total", "rstmon_events_dropped_total",
    "rstmon_rst_finalized_early_total", "rstmon_connections_total",
    "rstmon_flow_evictions_total", "rstmon_lcore_busy_ratio", "rstmon_dispatch_dropped_total",
    "rstmon_tx_packets_total", "rstmon_tx_dropped_total", "rstmon_nic_missed_packets_total",
    "rstmon_nic_errors_total", "rstmon_nic_rx_nombuf_total", "rstmon_build_info",
    "rstmon_flow_table_fill_ratio", "rstmon_flow_table_capacity",
    "rstmon_config_reloads_total", "rstmon_config_last_reload_successful",
    "rstmon_config_last_reload_success_timestamp_seconds", "process_start_time_seconds",
}
HISTOGRAMS = {"rstmon_rst_idle_seconds", "rstmon_rst_flow_age_seconds"}
KNOWN_METRICS = (EXPORTED | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
                 | {"up"})
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
OVERVIEW_MAIN = {
    "RST rate by cause", "RST rate by service", "RST rate by stage", "RST rate by sender",
    "Top RST causes", "RSTs per 1000 connections", "Packets/s per port", "Lcore busy ratio",
    "Flow table fill per lcore", "Idle time before RST", "Flow age at RST", "Connection outcomes",
}

DASHBOARDS = dq.load_dashboards()


def by_uid(uid):
    return next(d for _, d in DASHBOARDS if d.get("uid") == uid)


def all_panels_with_rows(panels):
    for p in panels:
        yield p
        yield from all_panels_with_rows(p.get("panels", []))


def datasource_refs(node):
    """Every `datasource` object anywhere in a dashboard (panels, targets, variables)."""
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for v in node.values():
            yield from datasource_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from datasource_refs(v)


def panel_by_title(dash, title):
    found = [p for p in dq.iter_panels(dash) if p.get("title") == title]
    assert len(found) == 1, f"{len(found)} panels titled {title!r}"
    return found[0]


class DashboardStructure(unittest.TestCase):
    def test_dashboards_present(self):
        uids = {d.get("uid") for _, d in DASHBOARDS}
        self.assertEqual(uids, {"rstmon-overview", "rstmon-fleet"})
        for path, d in DASHBOARDS:
            with self.subTest(path=path):
                self.assertEqual(os.path.basename(path), d["uid"] + ".json")
                self.assertGreaterEqual(d["schemaVersion"], 36)
                self.assertTrue(d.get("title"))
                self.assertIsNone(d.get("id"), "provisioned dashboards must not pin a db id")

    def test_generator_and_json_agree(self):
        r = subprocess.run([sys.executable, os.path.join(GRAFANA, "make_dashboards.py"),
                            "--check"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_panel_ids_unique(self):
        for path, d in DASHBOARDS:
            ids = [p.get("id") for p in all_panels_with_rows(d["panels"])]
            with self.subTest(path=path):
                self.assertNotIn(None, ids)
                self.assertEqual(len(ids), len(set(ids)), f"duplicate ids in {ids}")

    def test_panel_titles_unique(self):
        # MAIN_PANELS names panels by title, so a title must identify one panel.
        for path, d in DASHBOARDS:
            titles = [p.get("title") for p in dq.iter_panels(d)]
            with self.subTest(path=path):
                self.assertEqual(len(titles), len(set(titles)))
                self.assertNotIn("", titles)

    def _check_grid(self, panels, where):
        cells = {}
        for p in panels:
            g = p.get("gridPos")
            self.assertIsInstance(g, dict, f"{where}: {p.get('title')} has no gridPos")
            for k in ("x", "y", "w", "h"):
                self.assertIsInstance(g.get(k), int, f"{where}: {p.get('title')} gridPos.{k}")
            self.assertGreater(g["w"], 0)
            self.assertGreater(g["h"], 0)
            self.assertGreaterEqual(g["x"], 0)
            self.assertLessEqual(g["x"] + g["w"], 24, f"{p.get('title')} leaves the 24 columns")
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    other = cells.setdefault((x, y), p.get("title"))
                    self.assertEqual(other, p.get("title"),
                                     f"{where}: {p.get('title')!r} overlaps {other!r} at {x},{y}")

    def test_grid_positions_do_not_overlap(self):
        for path, d in DASHBOARDS:
            with self.subTest(path=path):
                self._check_grid(d["panels"], path)
                for row in d["panels"]:
                    if row.get("type") == "row" and row.get("panels"):
                        self._check_grid(row["panels"], f"{path} row {row['title']}")

    def test_datasource_is_the_variable_everywhere(self):
        for path, d in DASHBOARDS:
            for p in dq.iter_panels(d):
                with self.subTest(path=path, panel=p.get("title")):
                    self.assertEqual(p.get("datasource"), DS_REF)
                    for t in p.get("targets", []):
                        self.assertEqual(t.get("datasource"), DS_REF)
            for v in d["templating"]["list"]:
                if v["type"] == "query":
                    self.assertEqual(v.get("datasource"), DS_REF, v["name"])
            for ref in datasource_refs(d):
                self.assertEqual(ref, DS_REF if ref.get("type") == "prometheus" else ref)
            self.assertGreater(len(list(datasource_refs(d))), 10)

    def test_every_target_has_an_expression(self):
        for path, d in DASHBOARDS:
            for p in dq.iter_panels(d):
                with self.subTest(path=path, panel=p.get("title")):
                    self.assertTrue(p.get("targets"), "panel without a query")
                    refs = [t.get("refId") for t in p["targets"]]
                    self.assertEqual(len(refs), len(set(refs)))
                    for t in p["targets"]:
                        self.assertTrue(t.get("expr", "").strip(), t.get("refId"))

    def test_variables(self):
        want = {
            "rstmon-overview": {
                "appliance": "label_values(rstmon_build_info, appliance)",
                "service": 'label_values(rstmon_rst_total{appliance=~"$appliance"}, service)',
                "cause": "label_values(rstmon_rst_total, cause)"},
            "rstmon-fleet": {
                "appliance": "label_values(rstmon_build_info, appliance)",
                "cause": "label_values(rstmon_rst_total, cause)"},
        }
        for uid, queries in want.items():
            tv = dq.template_vars(by_uid(uid))
            with self.subTest(uid=uid):
                self.assertEqual(tv["datasource"]["type"], "datasource")
                self.assertEqual(tv["datasource"]["query"], "prometheus")
                self.assertEqual(set(tv), {"datasource"} | set(queries))
                for name, query in queries.items():
                    v = tv[name]
                    self.assertEqual(v["type"], "query")
                    self.assertEqual(v["query"]["query"], query)
                    self.assertEqual(v["definition"], query)
                    self.assertTrue(v["multi"])
                    self.assertTrue(v["includeAll"])
                    self.assertEqual(v["allValue"], ".*")

    def test_filters_use_the_variables(self):
        # Every rstmon selector filters by appliance, and every RST family by cause too.
        for path, d in DASHBOARDS:
            for p in dq.iter_panels(d):
                for t in p["targets"]:
                    with self.subTest(panel=p["title"], ref=t["refId"]):
                        for sel in re.findall(r"(rstmon_\w+)(\{[^}]*\})?", t["expr"]):
                            self.assertIn('appliance=~"$appliance"', sel[1], sel[0])
                            if re.match(r"rstmon_rst_(total|validity_total|idle_seconds_"
                                        r"bucket|flow_age_seconds_bucket)$", sel[0]):
                                self.assertIn('cause=~"$cause"', sel[1], sel[0])

    def test_by_cause_legends_are_the_cause(self):
        checked = 0
        for path, d in DASHBOARDS:
            for p in dq.iter_panels(d):
                for t in p["targets"]:
                    if p["type"] == "timeseries" and re.search(r"\bby \(cause\)", t["expr"]):
                        checked += 1
                        with self.subTest(panel=p["title"]):
                            self.assertEqual(t["legendFormat"], "{{cause}}")
        self.assertGreaterEqual(checked, 3)
        self.assertEqual(panel_by_title(by_uid("rstmon-overview"), "RST rate by cause")
                         ["targets"][0]["legendFormat"], "{{cause}}")

    def test_rst_by_cause_is_stacked(self):
        for uid, title in (("rstmon-overview", "RST rate by cause"),
                           ("rstmon-fleet", "RST rate by cause, all appliances")):
            p = panel_by_title(by_uid(uid), title)
            self.assertEqual(p["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"], "normal")

    def test_heatmaps_read_buckets(self):
        d = by_uid("rstmon-overview")
        for title, metric in (("Idle time before RST", "rstmon_rst_idle_seconds_bucket"),
                              ("Flow age at RST", "rstmon_rst_flow_age_seconds_bucket")):
            p = panel_by_title(d, title)
            with self.subTest(panel=title):
                self.assertEqual(p["type"], "heatmap")
                self.assertFalse(p["options"]["calculate"])
                (t,) = p["targets"]
                self.assertEqual(t["format"], "heatmap")
                self.assertEqual(t["legendFormat"], "{{le}}")
                self.assertEqual(dq.metric_names(t["expr"]), {metric})
                self.assertRegex(t["expr"], r"^sum by \(le\) \(")

    def test_top_causes_table_is_an_instant_topk_over_the_range(self):
        p = panel_by_title(by_uid("rstmon-overview"), "Top RST causes")
        self.assertEqual(p["type"], "table")
        (t,) = p["targets"]
        self.assertTrue(t["instant"])
        self.assertFalse(t["range"])
        self.assertIn("topk(", t["expr"])
        self.assertIn("[$__range]", t["expr"])
        self.assertTrue(any(tr["id"] == "sortBy" for tr in p["transformations"]))

    def test_rates_use_grafana_intervals(self):
        # No hard-coded windows: rate() follows $__rate_interval, totals over the time range.
        for path, d in DASHBOARDS:
            for p in dq.iter_panels(d):
                for t in p["targets"]:
                    expr = re.sub(r"\[\[\w+(?::\w+)?\]\]", "v", t["expr"])  # [[var]] is no window
                    for fn, window in re.findall(r"\b(rate|increase|irate)\((?:[^()\[]|\{[^}]*\})*"
                                                 r"\[([^\]]*)\]", expr):
                        with self.subTest(panel=p["title"], fn=fn):
                            if fn == "increase" and window == "$__range":
                                continue
                            self.assertEqual(window, "$__rate_interval")

    def test_metrics_are_ones_rstmon_exports(self):
        used = set()
        for path, d in DASHBOARDS:
            for q in dq.panel_queries(d, {}):
                names = dq.metric_names(q["expr"])
                with self.subTest(panel=q["panel"], ref=q["ref_id"]):
                    self.assertTrue(names, q["expr"])
                    self.assertLessEqual(names, KNOWN_METRICS, q["expr"])
                used |= names
        # The dashboards cover the families the brief asks for.
        for name in ("rstmon_rst_total", "rstmon_rst_idle_seconds_bucket",
                     "rstmon_rst_flow_age_seconds_bucket", "rstmon_connections_total",
                     "rstmon_rst_validity_total", "rstmon_nic_missed_packets_total",
                     "rstmon_nic_rx_nombuf_total", "rstmon_nic_errors_total",
                     "rstmon_dispatch_dropped_total", "rstmon_lcore_busy_ratio",
                     "rstmon_flow_table_fill_ratio", "rstmon_flows_active", "up",
                     "process_start_time_seconds", "rstmon_config_last_reload_successful",
                     "rstmon_malformed_packets_total", "rstmon_ignored_packets_total",
                     "rstmon_events_dropped_total", "rstmon_untracked_packets_total",
                     "rstmon_flow_evictions_total", "rstmon_flow_table_full_total"):
            self.assertIn(name, used)

    def test_substitution_leaves_no_dollar(self):
        cases = [{}, {"appliance": "vm", "service": ["http", "tls"], "cause": "All"},
                 {"appliance": ["a.b", "c"], "__rate_interval": "4s", "__range": "90s",
                  "__interval": "1s"}]
        for path, d in DASHBOARDS:
            for variables in cases:
                for q in dq.panel_queries(d, variables):
                    with self.subTest(panel=q["panel"], ref=q["ref_id"], vars=variables):
                        self.assertNotIn("$", q["expr"])
                        self.assertNotIn("[[", q["expr"])
                        if q.get("series_match"):
                            self.assertNotIn("$", q["series_match"])

    def test_main_panels(self):
        self.assertEqual(dq.MAIN_PANELS["rstmon-overview"], OVERVIEW_MAIN)
        for uid, titles in dq.MAIN_PANELS.items():
            d = by_uid(uid)
            for title in titles:
                panel_by_title(d, title)
            main = {q["panel"] for q in dq.panel_queries(d, {}) if q["main"]}
            self.assertEqual(main, set(titles))

    def test_queries_parse_with_promtool(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian package prometheus)")
        rules = []
        for path, d in DASHBOARDS:
            for q in dq.panel_queries(d, {"appliance": "vm", "service": ["a", "b"]}):
                # Unique names: promtool's lint fails a group that records one name twice.
                rules.append({"record": f"rstmon_dashboard:check_{len(rules)}",
                              "expr": q["expr"]})
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            json.dump({"groups": [{"name": "dashboards", "rules": rules}]}, f)  # JSON is YAML
            f.flush()
            r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True,
                               text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"SUCCESS: {len(rules)} rules found", r.stdout)


class Provisioning(unittest.TestCase):
    def setUp(self):
        if yaml is None:
            self.skipTest("python3-yaml not installed")

    def load(self, rel):
        with open(os.path.join(GRAFANA, "provisioning", rel), encoding="utf-8") as f:
            return yaml.safe_load(f)

    def test_datasource(self):
        doc = self.load("datasources/rstmon.yml")
        self.assertEqual(doc["apiVersion"], 1)
        (ds,) = doc["datasources"]
        self.assertEqual(ds["type"], "prometheus")
        self.assertRegex(ds["url"], r"^https?://")
        self.assertRegex(ds["jsonData"]["timeInterval"], r"^\d+[smh]$")
        for _, d in DASHBOARDS:
            current = dq.template_vars(d)["datasource"]["current"]
            self.assertEqual(current["value"], ds["uid"])
            self.assertEqual(current["text"], ds["name"])

    def test_dashboard_provider(self):
        doc = self.load("dashboards/rstmon.yml")
        self.assertEqual(doc["apiVersion"], 1)
        (prov,) = doc["providers"]
        self.assertEqual(prov["type"], "file")
        path = prov["options"]["path"]
        with open(os.path.join(GRAFANA, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        self.assertIn(path, readme, "README must say where the JSON files go")
        self.assertIn("/etc/grafana/provisioning/datasources", readme)
        self.assertIn("/etc/grafana/provisioning/dashboards", readme)


class MetricNames(unittest.TestCase):
    CASES = [
        ('sum by (cause) (rate(rstmon_rst_total{appliance=~"a|b", cause!="x"}[5m]))',
         {"rstmon_rst_total"}),
        ("histogram_quantile(0.9, sum by (le) (rate(x_bucket[1m])))", {"x_bucket"}),
        ("a / on(instance) group_left(version) b", {"a", "b"}),
        ("a * ignoring(le) group_right b", {"a", "b"}),
        ("a * on() group_left c", {"a", "c"}),
        ("sum without (instance, job) (a) > bool 3", {"a"}),
        ("max_over_time(a[1h:5m]) offset 1d", {"a"}),
        ("rate(a[5m] offset -5m)", {"a"}),
        ("a @ start() - b @ 1609746000", {"a", "b"}),
        ('{__name__="foo", job="x"}', {"foo"}),
        ('{__name__=~"rstmon_.*"}', set()),
        ('{"quoted.metric", job="x"}', {"quoted.metric"}),
        ('count_values("version", rstmon_build_info)', {"rstmon_build_info"}),
        ('label_replace(up, "host", "$1", "instance", "(.*):.*")', {"up"}),
        ("topk(5, a) or on() vector(0)", {"a"}),
        ("time() - process_start_time_seconds", {"process_start_time_seconds"}),
        ("rate(a[$__rate_interval])", {"a"}),
        ("rate(a[${__rate_interval}]) * $scale", {"a"}),
        ("sum by (on, by, offset) (a)", {"a"}),
        ('a{by="x", offset="y", sum="z"}', {"a"}),
        ("job:rstmon_rst:rate5m", {"job:rstmon_rst:rate5m"}),
        ("1e3 * a + 0x1F - .5 + Inf - NaN + 2.5e-3", {"a"}),
        ("sum(a) and b unless c or d", {"a", "b", "c", "d"}),
        ("# a comment naming fake_metric\nreal_metric", {"real_metric"}),
        ('a{x="q\\"uoted ( paren"} + b', {"a", "b"}),
        ("a{x='single } brace'} + `raw`", {"a"}),
        ("a atan2 b", {"a", "b"}),
        ("SUM BY (x) (a) + Max Without (y) (b)", {"a", "b"}),
        ("sort_desc(topk by (appliance) (3, a))", {"a"}),
        ("quantile_over_time(0.5, a[5m]) > quantile(0.9, b)", {"a", "b"}),
        ("absent(nonexistent_metric{job='x'})", {"nonexistent_metric"}),
        ("-a + -(b)", {"a", "b"}),
        ("vector(1) + scalar(c)", {"c"}),
        ("a[5m:]", {"a"}),
        ("a_bucket{le=\"+Inf\"}", {"a_bucket"}),
    ]

    def test_cases(self):
        for expr, want in self.CASES:
            with self.subTest(expr=expr):
                self.assertEqual(dq.metric_names(expr), want)

    def test_bad_expressions_raise(self):
        for expr in ("sum(a", "a)", 'a{x="unterminated}', "a[5m", "a ? b"):
            with self.subTest(expr=expr):
                with self.assertRaises(ValueError):
                    dq.metric_names(expr)


class Substitution(unittest.TestCase):
    TEMPLATING = {
        "appliance": {"name": "appliance", "type": "query", "multi": True, "includeAll": True,
                      "allValue": ".*"},
        "app": {"name": "app", "type": "custom", "multi": False, "includeAll": False,
                "current": {"value": "short"}},
        "svc": {"name": "svc", "type": "query", "multi": True, "includeAll": True},
        "custom_all": {"name": "custom_all", "type": "query", "multi": True,
                       "includeAll": True, "allValue": "web-.+"},
    }

    def sub(self, expr, **variables):
        return dq.substitute(expr, variables, self.TEMPLATING)

    def test_forms(self):
        for expr in ('x{a=~"$appliance"}', 'x{a=~"${appliance}"}', 'x{a=~"[[appliance]]"}',
                     'x{a=~"${appliance:regex}"}'):
            with self.subTest(expr=expr):
                self.assertEqual(self.sub(expr, appliance="vm"), 'x{a=~"vm"}')

    def test_multi_values_become_an_escaped_alternation(self):
        self.assertEqual(self.sub('x{a=~"$appliance"}', appliance=["a.b", "c"]),
                         'x{a=~"(a\\\\.b|c)"}')
        self.assertEqual(self.sub("${appliance:pipe}", appliance=["a.b", "c"]), "a.b|c")
        self.assertEqual(self.sub("${appliance:csv}", appliance=["a", "c"]), "a,c")
        self.assertEqual(self.sub("${appliance:raw}", appliance="a.b"), "a.b")
        self.assertEqual(self.sub('"$appliance"', appliance='say "hi"'), '"say \\"hi\\""')
        with self.assertRaises(ValueError):
            self.sub("${appliance:lucene}", appliance="a")

    def test_all(self):
        for value in ("All", "$__all", ["$__all"], ["All"]):
            with self.subTest(value=value):
                self.assertEqual(self.sub('{a=~"$appliance"}', appliance=value), '{a=~".*"}')
        self.assertEqual(self.sub("$custom_all", custom_all="All"), "web-.+")
        # Absent from the dict: "All" where allowed, else the variable's current value.
        self.assertEqual(self.sub("$appliance $svc $app"), ".* .* short")

    def test_longest_name_wins_and_unknown_names_stay(self):
        self.assertEqual(self.sub("$app/$appliance", app="x", appliance="y"), "x/y")
        self.assertEqual(dq.substitute("$appliance-$app", {"app": "x"}), "$appliance-x")
        self.assertEqual(self.sub('label_replace(up, "h", "$1", "i", "(.*)")'),
                         'label_replace(up, "h", "$1", "i", "(.*)")')
        self.assertEqual(self.sub("$unknown ${unknown} [[unknown]]"),
                         "$unknown ${unknown} [[unknown]]")

    def test_builtins(self):
        self.assertEqual(self.sub("[$__rate_interval] [$__interval] [$__range]"),
                         "[1m] [15s] [1h]")
        self.assertEqual(self.sub("$__range_s $__range_ms $__interval_ms $__rate_interval_s"),
                         "3600 3600000 15000 60")
        self.assertEqual(self.sub("[${__range}] $__range_s", __range="2m"), "[2m] 120")
        self.assertEqual(self.sub("[$__rate_interval]", __rate_interval=4), "[4s]")
        self.assertEqual(self.sub("[$__interval]", __interval="500ms"), "[500ms]")
        self.assertEqual(self.sub("$__interval_ms", __interval="500ms"), "500")


class VariableQueries(unittest.TestCase):
    def test_label_values_with_metric(self):
        q = dq.variable_query('label_values(rstmon_rst_total{appliance=~"$appliance", '
                              'x="a,b)"}, service)')
        self.assertEqual(q["label"], "service")
        self.assertEqual(q["series_match"], 'rstmon_rst_total{appliance=~"$appliance", x="a,b)"}')
        self.assertEqual(q["expr"],
                         'count by (service) (rstmon_rst_total{appliance=~"$appliance", '
                         'x="a,b)"})')

    def test_other_forms(self):
        self.assertEqual(dq.variable_query({"query": "label_values(cause)", "refId": "X"})["expr"],
                         'count by (cause) ({cause!=""})')
        self.assertEqual(dq.variable_query("query_result(topk(3, up))")["expr"], "topk(3, up)")
        self.assertEqual(dq.variable_query('metrics(rstmon_.*)')["expr"],
                         'count by (__name__) ({__name__=~"rstmon_.*"})')
        for bad in ("label_names()", "up", "label_values(a, b, c)"):
            with self.subTest(query=bad), self.assertRaises(ValueError):
                dq.variable_query(bad)

    def test_dashboard_variables_are_resolved(self):
        qs = {q["ref_id"]: q for q in dq.panel_queries(by_uid("rstmon-overview"),
                                                       {"appliance": "vm"})
              if q["kind"] == "variable"}
        self.assertEqual(set(qs), {"appliance", "service", "cause"})
        self.assertEqual(qs["service"]["expr"],
                         'count by (service) (rstmon_rst_total{appliance=~"vm"})')
        self.assertEqual(qs["service"]["series_match"], 'rstmon_rst_total{appliance=~"vm"}')
        self.assertTrue(all(q["instant"] and not q["main"] for q in qs.values()))


class Durations(unittest.TestCase):
    def test_parse_and_format(self):
        for text, seconds in (("1h30m", 5400), ("500ms", 0.5), ("15s", 15), ("1d", 86400),
                              ("2w", 1209600), ("90", 90)):
            self.assertEqual(dq.parse_duration(text), seconds, text)
        for seconds, text in ((4, "4s"), (60, "1m"), (90, "90s"), (0.25, "250ms"),
                              (3600, "1h"), (172800, "2d")):
            self.assertEqual(dq.format_duration(seconds), text, seconds)
        for bad in ("", "5x", "m5", "1h 5m"):
            with self.subTest(text=bad), self.assertRaises(ValueError):
                dq.parse_duration(bad)

    def test_rate_interval_is_grafanas(self):
        self.assertEqual(dq.rate_interval(1, 1), 4)
        self.assertEqual(dq.rate_interval(15, 15), 60)
        self.assertEqual(dq.rate_interval(120, 15), 135)


class ListCli(unittest.TestCase):
    def run_cli(self, *args):
        return subprocess.run([sys.executable, os.path.join(GRAFANA, "dashboard_queries.py"),
                               *args], capture_output=True, text=True, timeout=60, check=True)

    def test_list_prints_every_query(self):
        total = sum(len(dq.panel_queries(d, {})) for _, d in DASHBOARDS)
        out = self.run_cli("--list").stdout
        self.assertEqual(out.count("\n    "), total)
        self.assertIn("$__rate_interval", out)  # as written in the JSON
        resolved = self.run_cli("--list", "--var", "appliance=vm", "--json").stdout.splitlines()
        self.assertEqual(len(resolved), total)
        for line in resolved:
            self.assertNotIn("$", json.loads(line)["expr"])


class RendererHelpers(unittest.TestCase):
    def test_legend_format(self):
        self.assertEqual(render_png.legend_name("{{cause}}", {"cause": "port_closed"}),
                         "port_closed")
        self.assertEqual(render_png.legend_name("{{ appliance }} {{port}} x",
                                                {"appliance": "vm", "port": "p0"}), "vm p0 x")
        self.assertEqual(render_png.legend_name("", {"__name__": "m", "a": "1"}), 'm{a="1"}')

    def test_heatmap_cells_decumulate_sorted_buckets(self):
        series = [({"le": "+Inf"}, [5.0, 9.0]), ({"le": "10"}, [3.0, 9.0]),
                  ({"le": "1"}, [1.0, float("nan")])]
        bounds, rows = render_png.heatmap_cells(series)
        self.assertEqual(bounds, [1.0, 10.0, float("inf")])
        self.assertEqual(rows[0][0], 1.0)
        self.assertEqual(rows[1][0], 2.0)
        self.assertEqual(rows[2], [2.0, 0.0])
        self.assertTrue(rows[1][1] != rows[1][1])  # NaN below -> unknown, not a guess

    def test_matrix_on_grid_aligns_steps(self):
        res = [{"metric": {"cause": "x"}, "values": [[100, "1"], [102, "3"], [103, "+Inf"]]}]
        ((labels, values),) = render_png.matrix_on_grid(res, 100, 1, 4)
        self.assertEqual(labels, {"cause": "x"})
        self.assertEqual(values[0], 1.0)
        self.assertEqual(values[2], 3.0)
        self.assertTrue(values[1] != values[1] and values[3] != values[3])

    def test_table_transforms(self):
        d = by_uid("rstmon-overview")
        top = panel_by_title(d, "Top RST causes")
        results = {"A": [{"metric": {"cause": "a"}, "value": [1, "2"]},
                         {"metric": {"cause": "b"}, "value": [1, "7"]}]}
        cols, rows = render_png.instant_table(results)
        cols, rows = render_png.apply_table_transforms(cols, rows, top["transformations"])
        self.assertEqual(cols, ["Cause", "RSTs"])
        self.assertEqual([r["Cause"] for r in rows], ["b", "a"])
        validity = panel_by_title(d, "RST validity by cause")
        results = {"A": [{"metric": {"cause": "a", "validity": "exact"}, "value": [1, "2"]},
                         {"metric": {"cause": "a", "validity": "in_window"}, "value": [1, "1"]},
                         {"metric": {"cause": "b", "validity": "exact"}, "value": [1, "4"]}]}
        cols, rows = render_png.apply_table_transforms(*render_png.instant_table(results),
                                                       validity["transformations"])
        self.assertEqual(cols, ["Cause", "exact", "in_window"])
        self.assertEqual(rows[1], {"Cause": "b", "exact": 4.0, "in_window": ""})
        fleet = panel_by_title(by_uid("rstmon-fleet"), "Appliances")
        results = {"A": [{"metric": {"appliance": "x"}, "value": [1, "5"]}],
                   "B": [{"metric": {"appliance": "x"}, "value": [1, "250"]}]}
        cols, rows = render_png.apply_table_transforms(*render_png.instant_table(results),
                                                       fleet["transformations"])
        self.assertEqual(rows, [{"Appliance": "x", "RSTs": 5.0, "RST / 1000 conn": 250.0}])

    def test_unreachable_prometheus_is_a_clear_error(self):
        # A bound socket that never listens: connecting to it is refused, on loopback only.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "x.png")
                r = subprocess.run([sys.executable, os.path.join(GRAFANA, "render_png.py"),
                                    "--prometheus", f"http://127.0.0.1:{port}", "--start", "100",
                                    "--end", "200", "--step", "1", "--appliance", "vm",
                                    "--out", out], capture_output=True, text=True, timeout=60)
                self.assertFalse(os.path.exists(out))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"cannot reach Prometheus at http://127.0.0.1:{port}", r.stderr)

    def test_bad_arguments(self):
        r = subprocess.run([sys.executable, os.path.join(GRAFANA, "render_png.py"),
                            "--prometheus", "http://127.0.0.1:1", "--start", "200", "--end",
                            "100", "--out", "/nonexistent/x.png"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--end must be after --start", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
