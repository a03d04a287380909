#!/usr/bin/python3
"""Writes rstmon's Grafana dashboards (dashboards/*.json) from the panel lists below.

The JSON files are what Grafana loads and what is committed; this script is their source, so
layout (gridPos), datasource references and the shared selectors cannot drift between panels.
Edit here, run `python3 deploy/grafana/make_dashboards.py`, commit both. `--check` exits 1 when
the committed JSON differs from what this script writes (tests/deploy/test_dashboards.py runs it).

Only raw rstmon metrics are queried, never recording rules, so the dashboards work on a
Prometheus that has no rstmon rule files loaded.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD_DIR = os.path.join(HERE, "dashboards")

# Every panel and every target points at the dashboard's datasource variable, so one dashboard
# serves any Prometheus the operator picks (the provisioned one is only the default).
DS = {"type": "prometheus", "uid": "${datasource}"}
PROVISIONED_DS_UID = "rstmon-prometheus"
PROVISIONED_DS_NAME = "rstmon Prometheus"

# Selectors shared by every panel of a kind. `appliance` is on every rstmon series; service and
# cause exist only on the RST families.
APP = 'appliance=~"$appliance"'
RST_SEL = f'rstmon_rst_total{{{APP}, service=~"$service", cause=~"$cause"}}'
RST_SEL_NO_SERVICE = f'rstmon_rst_total{{{APP}, cause=~"$cause"}}'
RI = "$__rate_interval"



class Layout:
    """Places panels left to right in 24 columns, wrapping to a new line like Grafana's grid."""

    def __init__(self):
        self.panels, self.y, self.x, self.line_h, self.next_id = [], 0, 0, 0, 1

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def row(self, title):
        self.newline()
        self.panels.append({"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                            "id": self._id(), "panels": [], "title": title, "type": "row"})
        self.y += 1

    def newline(self):
        self.y += self.line_h
        self.x, self.line_h = 0, 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.newline()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel["id"] = self._id()
        self.x += w
        self.line_h = max(self.line_h, h)
        self.panels.append(panel)


def target(ref, expr, legend="", instant=False, fmt="time_series"):
    t = {"datasource": DS, "editorMode": "code", "expr": expr, "legendFormat": legend,
         "refId": ref}
    if instant:
        t.update(instant=True, range=False, format="table" if fmt == "time_series" else fmt)
    else:
        t.update(range=True, format=fmt)
    return t


def timeseries(title, description, targets, unit="short", stacked=False, axis_label="",
               min_=0, max_=None, legend_calcs=("mean", "max"), fill=10):
    custom = {
        "axisCenteredZero": False, "axisColorMode": "text", "axisLabel": axis_label,
        "axisPlacement": "auto", "barAlignment": 0, "drawStyle": "line",
        "fillOpacity": 70 if stacked else fill, "gradientMode": "none",
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
        "lineInterpolation": "linear", "lineWidth": 1, "pointSize": 4,
        "scaleDistribution": {"type": "linear"}, "showPoints": "auto", "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "off"},
    }
    defaults = {"color": {"mode": "palette-classic"}, "custom": custom, "unit": unit,
                "min": min_, "thresholds": _thresholds()}
    if max_ is not None:
        defaults["max"] = max_
    return {
        "datasource": DS, "description": description, "type": "timeseries", "title": title,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"calcs": list(legend_calcs), "displayMode": "table", "placement": "right",
                       "showLegend": True, "sortBy": "Max", "sortDesc": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
    }


def heatmap(title, description, expr):
    return {
        "datasource": DS, "description": description, "type": "heatmap", "title": title,
        "fieldConfig": {"defaults": {"custom": {"hideFrom": {"legend": False, "tooltip": False,
                                                             "viz": False},
                                                "scaleDistribution": {"type": "linear"}}},
                        "overrides": []},
        "options": {
            # The buckets come pre-computed from rstmon's histogram: Grafana must not re-bucket.
            "calculate": False,
            "cellGap": 1,
            "color": {"exponent": 0.5, "fill": "dark-orange", "mode": "scheme", "reverse": False,
                      "scale": "exponential", "scheme": "Oranges", "steps": 64},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "showValue": "never",
            "tooltip": {"show": True, "yHistogram": True},
            "yAxis": {"axisPlacement": "left", "reverse": False, "unit": "s"},
        },
        "targets": [target("A", expr, legend="{{le}}", fmt="heatmap")],
    }


def table(title, description, targets, transformations, unit="short"):
    return {
        "datasource": DS, "description": description, "type": "table", "title": title,
        "fieldConfig": {"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"},
                                                "inspect": False},
                                     "thresholds": _thresholds(), "unit": unit},
                        "overrides": []},
        "options": {"cellHeight": "sm", "footer": {"countRows": False, "fields": "",
                                                   "reducer": ["sum"], "show": False},
                    "showHeader": True},
        "targets": targets,
        "transformations": transformations,
    }


def stat(title, description, targets, unit="short", mappings=None, steps=None,
         text_mode="value_and_name"):
    return {
        "datasource": DS, "description": description, "type": "stat", "title": title,
        "fieldConfig": {"defaults": {"color": {"mode": "thresholds"}, "mappings": mappings or [],
                                     "thresholds": _thresholds(steps), "unit": unit},
                        "overrides": []},
        "options": {"colorMode": "background", "graphMode": "none", "justifyMode": "auto",
                    "orientation": "auto", "textMode": text_mode,
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": targets,
    }


def _thresholds(steps=None):
    return {"mode": "absolute",
            "steps": steps or [{"color": "green", "value": None}]}


def _fill_thresholds():
    return [{"color": "green", "value": None}, {"color": "orange", "value": 0.8},
            {"color": "red", "value": 0.95}]


def datasource_var():
    return {"current": {"selected": False, "text": PROVISIONED_DS_NAME,
                        "value": PROVISIONED_DS_UID},
            "hide": 0, "includeAll": False, "label": "Data source", "multi": False,
            "name": "datasource", "options": [], "query": "prometheus", "refresh": 1,
            "regex": "", "skipUrlSync": False, "type": "datasource"}


def query_var(name, label, query):
    return {"allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "datasource": DS, "definition": query, "hide": 0, "includeAll": True,
            "label": label, "multi": True, "name": name, "options": [],
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            # 2 = refresh on time range change: appliances and services come and go.
            "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1, "type": "query"}


def dashboard(uid, title, description, panels, variables, links):
    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": description,
        "editable": True, "fiscalYearStartMonth": 0, "graphTooltip": 1, "id": None,
        "links": links, "liveNow": False, "panels": panels, "refresh": "30s",
        "schemaVersion": 38, "style": "dark", "tags": ["rstmon"],
        "templating": {"list": variables},
        "time": {"from": "now-1h", "to": "now"}, "timepicker": {}, "timezone": "",
        "title": title, "uid": uid, "version": 1, "weekStart": "",
    }


def _link(title, uid):
    return {"asDropdown": False, "icon": "dashboard", "includeVars": True, "keepTime": True,
            "tags": [], "targetBlank": False, "title": title, "tooltip": "", "type": "link",
            "url": f"/d/{uid}"}


def _rate(selector, by):
    return f"sum by ({by}) (rate({selector}[{RI}]))"


def overview():
    lay = Layout()
    lay.row("Resets")
    lay.add(timeseries(
        "RST rate by cause",
        "TCP RSTs per second, stacked by the cause rstmon gave each one. Legend = the cause "
        "label exactly as exported (see CAUSES.md).",
        [target("A", _rate(RST_SEL, "cause"), "{{cause}}")],
        unit="short", axis_label="RST/s", stacked=True), 12, 9)
    lay.add(table(
        "Top RST causes",
        "RSTs per cause over the dashboard's time range, largest first.",
        [target("A", f"sort_desc(topk(10, sum by (cause) (increase({RST_SEL}[$__range]))))",
                "{{cause}}", instant=True)],
        [{"id": "organize", "options": {"excludeByName": {"Time": True},
                                        "renameByName": {"cause": "Cause", "Value": "RSTs"}}},
         {"id": "sortBy", "options": {"sort": [{"desc": True, "field": "RSTs"}]}}],
        unit="short"), 6, 9)
    lay.add(timeseries(
        "RSTs per 1000 connections",
        "RSTs of the selected causes per 1000 connections that ended (rstmon_connections_total"
        " counts a connection when its flow ends). All services: connections carry no service.",
        [target("A", f"1000 * sum by (appliance) (rate({RST_SEL_NO_SERVICE}[{RI}]))"
                     f" / sum by (appliance) (rate(rstmon_connections_total{{{APP}}}[{RI}]))",
                "{{appliance}}")],
        axis_label="RST / 1000 conn", legend_calcs=("mean", "max")), 6, 9)
    lay.add(timeseries("RST rate by service", "RSTs per second by service (port map or pattern).",
                       [target("A", _rate(RST_SEL, "service"), "{{service}}")],
                       axis_label="RST/s", stacked=True), 8, 8)
    lay.add(timeseries("RST rate by stage",
                       "RSTs per second by the connection stage they arrived in.",
                       [target("A", _rate(RST_SEL, "stage"), "{{stage}}")],
                       axis_label="RST/s", stacked=True), 8, 8)
    lay.add(timeseries("RST rate by sender",
                       "RSTs per second by who sent them: client (sent the first SYN), server,"
                       " or unknown (flow not seen from its start).",
                       [target("A", _rate(RST_SEL, "sender"), "{{sender}}")],
                       axis_label="RST/s", stacked=True), 8, 8)
    lay.add(heatmap(
        "Idle time before RST",
        "How long the flow was silent before its RST, per time slice. Bands at 300-350 s or "
        "900 s point at a NAT/LB/firewall idle timeout on the path.",
        f"sum by (le) (increase(rstmon_rst_idle_seconds_bucket{{{APP}, cause=~\"$cause\"}}"
        f"[{RI}]))"), 12, 9)
    lay.add(heatmap(
        "Flow age at RST",
        "Age of the flow when it was reset: handshake-time resets sit at the bottom, long "
        "sessions at the top.",
        f"sum by (le) (increase(rstmon_rst_flow_age_seconds_bucket{{{APP}, cause=~\"$cause\"}}"
        f"[{RI}]))"), 12, 9)
    lay.add(timeseries("Connection outcomes",
                       "Connections per second by how they ended: fin, rst, handshake_timeout,"
                       " idle_expired.",
                       [target("A", _rate(f"rstmon_connections_total{{{APP}}}", "outcome"),
                               "{{outcome}}")],
                       axis_label="conn/s", stacked=True), 8, 8)
    lay.add(table(
        "RST validity by cause",
        "RSTs over the time range by cause and RFC 5961 sequence validity at the receiver. "
        "Many out_of_window RSTs of one cause hint at injection or blind attacks.",
        [target("A", f"sum by (cause, validity) (increase(rstmon_rst_validity_total{{{APP}, "
                     f"cause=~\"$cause\"}}[$__range]))", "", instant=True)],
        [{"id": "groupingToMatrix", "options": {"columnField": "validity", "rowField": "cause",
                                                "valueField": "Value"}},
         {"id": "organize", "options": {"renameByName": {"cause\\validity": "Cause"}}}]), 8, 8)
    lay.add(timeseries(
        "Out-of-window RST share by cause",
        "Share of each cause's RSTs whose sequence number fell outside the receiver's window.",
        [target("A", f"sum by (cause) (rate(rstmon_rst_validity_total{{{APP}, cause=~\"$cause\", "
                     f"validity=\"out_of_window\"}}[{RI}])) / sum by (cause) (rate("
                     f"rstmon_rst_validity_total{{{APP}, cause=~\"$cause\"}}[{RI}]))",
                "{{cause}}")],
        unit="percentunit", max_=1), 8, 8)

    lay.row("Capture health")
    up_map = [{"options": {"0": {"color": "red", "index": 1, "text": "DOWN"},
                           "1": {"color": "green", "index": 0, "text": "UP"}}, "type": "value"}]
    lay.add(stat("Scrape up", "Prometheus's own view: 1 when the last scrape of rstmon worked.",
                 [target("A", 'up{job="rstmon"}', "{{instance}}")], mappings=up_map,
                 steps=[{"color": "red", "value": None}, {"color": "green", "value": 1}]), 3, 5)
    lay.add(stat("Uptime", "Time since the rstmon process started.",
                 [target("A", f'time() - process_start_time_seconds{{job="rstmon", {APP}}}',
                         "{{appliance}}")], unit="s"), 3, 5)
    ok_map = [{"options": {"0": {"color": "red", "index": 1, "text": "FAILED"},
                           "1": {"color": "green", "index": 0, "text": "OK"}}, "type": "value"}]
    reload = stat("Config reload",
                  "Last config reload result, reload failures in the time range, and time since "
                  "the last successful reload.",
                  [target("A", f"max by (appliance) ("
                               f"rstmon_config_last_reload_successful{{{APP}}})",
                          "{{appliance}} last reload"),
                   target("B", f"sum by (appliance) (increase(rstmon_config_reloads_total{{{APP}, "
                               f"result=\"failure\"}}[$__range]))", "{{appliance}} failures"),
                   target("C", f"time() - max by (appliance) ("
                               f"rstmon_config_last_reload_success_timestamp_seconds{{{APP}}})",
                          "{{appliance}} since last good reload")],
                  steps=[{"color": "green", "value": None}])
    # OK/FAILED applies to the last-reload flag only: a failure count of 0 is good news.
    reload["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byFrameRefID", "options": "A"},
         "properties": [{"id": "mappings", "value": ok_map},
                        {"id": "thresholds", "value": _thresholds(
                            [{"color": "red", "value": None}, {"color": "green", "value": 1}])}]},
        {"matcher": {"id": "byFrameRefID", "options": "B"},
         "properties": [{"id": "thresholds", "value": _thresholds(
             [{"color": "green", "value": None}, {"color": "red", "value": 1}])}]},
        {"matcher": {"id": "byFrameRefID", "options": "C"},
         "properties": [{"id": "unit", "value": "s"}]}]
    lay.add(reload, 6, 5)
    lay.add(stat("Flow table capacity", "Flows the tables can hold, all workers together.",
                 [target("A", f"sum by (appliance) (rstmon_flow_table_capacity{{{APP}}})",
                         "{{appliance}}")], steps=[{"color": "blue", "value": None}]), 4, 5)
    lay.add(table("Build", "rstmon and DPDK versions per appliance.",
                  [target("A", f"max by (appliance, version, dpdk_version) "
                               f"(rstmon_build_info{{{APP}}})", "", instant=True)],
                  [{"id": "organize", "options": {"excludeByName": {"Time": True,
                                                                    "Value": True}}}]), 8, 5)
    lay.add(timeseries("Packets/s per port", "Frames received per second, by port.",
                       [target("A", _rate(f"rstmon_packets_total{{{APP}}}", "appliance, port"),
                               "{{appliance}} {{port}}")], unit="pps"), 8, 8)
    lay.add(timeseries("Bits/s per port", "Received bits per second (frame length), by port.",
                       [target("A", "8 * " + _rate(f"rstmon_bytes_total{{{APP}}}",
                                                   "appliance, port"),
                               "{{appliance}} {{port}}")], unit="bps"), 8, 8)
    lay.add(timeseries(
        "NIC drops",
        "Frames lost before rstmon saw them (live ports only): imissed = no free RX "
        "descriptor, rx_nombuf = no mbuf, ierrors = erroneous frames.",
        [target("A", _rate(f"rstmon_nic_missed_packets_total{{{APP}}}", "appliance, port"),
                "{{appliance}} {{port}} imissed"),
         target("B", _rate(f"rstmon_nic_rx_nombuf_total{{{APP}}}", "appliance, port"),
                "{{appliance}} {{port}} rx_nombuf"),
         target("C", _rate(f"rstmon_nic_errors_total{{{APP}}}", "appliance, port"),
                "{{appliance}} {{port}} ierrors")], unit="pps"), 8, 8)
    lay.add(timeseries(
        "Lcore busy ratio",
        "Share of polling cycles spent on packets, per worker (and the dispatch lcore). "
        "Near 1 = that core is the bottleneck.",
        [target("A", f"max by (appliance, lcore) (rstmon_lcore_busy_ratio{{{APP}}})",
                "{{appliance}} {{lcore}}")], unit="percentunit", max_=1), 8, 8)
    fill = timeseries(
        "Flow table fill per lcore",
        "Flows held / table capacity, per worker shard. At 1 new SYNs evict the oldest idle "
        "flow and other new flows go untracked.",
        [target("A", f"max by (appliance, lcore) (rstmon_flow_table_fill_ratio{{{APP}}})",
                "{{appliance}} {{lcore}}")], unit="percentunit", max_=1)
    fill["fieldConfig"]["defaults"]["thresholds"] = _thresholds(_fill_thresholds())
    fill["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    lay.add(fill, 8, 8)
    lay.add(timeseries("Flows active", "Flows tracked now, all workers together.",
                       [target("A", f"sum by (appliance) (rstmon_flows_active{{{APP}}})",
                               "{{appliance}}")]), 8, 8)
    lay.add(timeseries(
        "Flow table full / evictions / untracked",
        "Per second: new flows that found the table full, flows evicted to make room, and "
        "packets of flows that could not be admitted.",
        [target("A", _rate(f"rstmon_flow_table_full_total{{{APP}}}", "appliance"),
                "{{appliance}} table full"),
         target("B", _rate(f"rstmon_flow_evictions_total{{{APP}}}", "appliance, reason"),
                "{{appliance}} evicted {{reason}}"),
         target("C", _rate(f"rstmon_untracked_packets_total{{{APP}}}", "appliance"),
                "{{appliance}} untracked packets")]), 8, 8)
    lay.add(timeseries(
        "Events dropped",
        "RST event records lost to a full ring or the rate limit (the counters still count "
        "them), and RSTs made final before their linger ended.",
        [target("A", _rate(f"rstmon_events_dropped_total{{{APP}}}", "appliance"),
                "{{appliance}} events dropped"),
         target("B", _rate(f"rstmon_rst_finalized_early_total{{{APP}}}", "appliance"),
                "{{appliance}} finalized early")]), 8, 8)
    lay.add(timeseries(
        "Dispatch and TX drops",
        "Frames lost because a worker's dispatch ring was full (software dispatch), and "
        "frames a port refused to send in inline mode.",
        [target("A", _rate(f"rstmon_dispatch_dropped_total{{{APP}}}", "appliance"),
                "{{appliance}} dispatch"),
         target("B", _rate(f"rstmon_tx_dropped_total{{{APP}}}", "appliance, port"),
                "{{appliance}} {{port}} tx dropped")], unit="pps"), 8, 8)
    lay.add(timeseries(
        "Malformed and ignored frames",
        "Frames rejected as malformed, and well-formed frames not tracked (non-IP, non-TCP, "
        "fragments), by reason.",
        [target("A", _rate(f"rstmon_malformed_packets_total{{{APP}}}", "reason"),
                "malformed {{reason}}"),
         target("B", _rate(f"rstmon_ignored_packets_total{{{APP}}}", "reason"),
                "ignored {{reason}}")], unit="pps"), 12, 8)
    lay.add(timeseries(
        "TCP segments and inline forwarding",
        "TCP segments parsed, sliced frames (tracked by IP length), and frames forwarded in "
        "inline mode, per second.",
        [target("A", _rate(f"rstmon_tcp_packets_total{{{APP}}}", "appliance"),
                "{{appliance}} tcp"),
         target("B", _rate(f"rstmon_sliced_packets_total{{{APP}}}", "appliance"),
                "{{appliance}} sliced"),
         target("C", _rate(f"rstmon_tx_packets_total{{{APP}}}", "appliance, port"),
                "{{appliance}} {{port}} forwarded")], unit="pps"), 12, 8)
    return dashboard(
        "rstmon-overview", "rstmon: TCP resets",
        "Why TCP connections are reset, and whether rstmon sees everything it should.",
        lay.panels,
        [datasource_var(),
         query_var("appliance", "Appliance", "label_values(rstmon_build_info, appliance)"),
         query_var("service", "Service",
                   'label_values(rstmon_rst_total{appliance=~"$appliance"}, service)'),
         query_var("cause", "Cause", "label_values(rstmon_rst_total, cause)")],
        [_link("rstmon fleet", "rstmon-fleet")])


def fleet():
    lay = Layout()
    lay.row("Fleet")
    lay.add(timeseries("RST rate by cause, all appliances",
                       "RSTs per second summed over the selected appliances, by cause.",
                       [target("A", _rate(RST_SEL_NO_SERVICE, "cause"), "{{cause}}")],
                       axis_label="RST/s", stacked=True), 12, 9)
    lay.add(timeseries("RST rate by appliance", "RSTs per second per appliance.",
                       [target("A", _rate(RST_SEL_NO_SERVICE, "appliance"), "{{appliance}}")],
                       axis_label="RST/s", stacked=True), 12, 9)
    rng = "$__range"
    lay.add(table(
        "Appliances",
        "One row per appliance: RSTs and RSTs per 1000 connections over the time range, "
        "current packet rate, busiest lcore and fullest flow-table shard.",
        [target("A", f"sum by (appliance) (increase({RST_SEL_NO_SERVICE}[{rng}]))", "",
                instant=True),
         target("B", f"1000 * sum by (appliance) (increase({RST_SEL_NO_SERVICE}[{rng}])) / "
                     f"sum by (appliance) (increase(rstmon_connections_total{{{APP}}}[{rng}]))",
                "", instant=True),
         target("C", f"sum by (appliance) (rate(rstmon_packets_total{{{APP}}}[{RI}]))", "",
                instant=True),
         target("D", f"max by (appliance) (rstmon_lcore_busy_ratio{{{APP}}})", "",
                instant=True),
         target("E", f"max by (appliance) (rstmon_flow_table_fill_ratio{{{APP}}})", "",
                instant=True)],
        [{"id": "merge", "options": {}},
         {"id": "organize", "options": {
             "excludeByName": {"Time": True},
             "renameByName": {"appliance": "Appliance", "Value #A": "RSTs",
                              "Value #B": "RST / 1000 conn", "Value #C": "packets/s",
                              "Value #D": "max busy", "Value #E": "max table fill"}}},
         {"id": "sortBy", "options": {"sort": [{"desc": True, "field": "RSTs"}]}}]), 16, 9)
    lay.add(table(
        "Top causes per appliance",
        "The three most frequent causes on each appliance over the time range.",
        [target("A", f"sort_desc(topk by (appliance) (3, sum by (appliance, cause) "
                     f"(increase({RST_SEL_NO_SERVICE}[{rng}]))))", "", instant=True)],
        [{"id": "organize", "options": {"excludeByName": {"Time": True},
                                        "renameByName": {"appliance": "Appliance",
                                                         "cause": "Cause", "Value": "RSTs"}}}]),
        8, 9)
    lay.add(timeseries("Busiest lcore per appliance", "Highest busy ratio of any lcore.",
                       [target("A", f"max by (appliance) (rstmon_lcore_busy_ratio{{{APP}}})",
                               "{{appliance}}")], unit="percentunit", max_=1), 8, 8)
    lay.add(timeseries("Fullest flow table per appliance",
                       "Highest fill ratio of any worker's flow table shard.",
                       [target("A", f"max by (appliance) (rstmon_flow_table_fill_ratio{{{APP}}})",
                               "{{appliance}}")], unit="percentunit", max_=1), 8, 8)
    lay.add(timeseries("Capture losses per appliance",
                       "Frames lost before analysis: NIC imissed + rx_nombuf + dispatch drops.",
                       [target("A", f"sum by (appliance) (rate(rstmon_nic_missed_packets_total"
                                    f"{{{APP}}}[{RI}])) + sum by (appliance) (rate("
                                    f"rstmon_nic_rx_nombuf_total{{{APP}}}[{RI}]))",
                               "{{appliance}} NIC"),
                        target("B", _rate(f"rstmon_dispatch_dropped_total{{{APP}}}", "appliance"),
                               "{{appliance}} dispatch")], unit="pps"), 8, 8)
    return dashboard(
        "rstmon-fleet", "rstmon: fleet",
        "RST causes across every appliance, and one line per appliance.",
        lay.panels,
        [datasource_var(),
         query_var("appliance", "Appliance", "label_values(rstmon_build_info, appliance)"),
         query_var("cause", "Cause", "label_values(rstmon_rst_total, cause)")],
        [_link("rstmon overview", "rstmon-overview")])


def rendered():
    """File name -> exact text this script writes."""
    return {f"{d['uid']}.json": json.dumps(d, indent=2, sort_keys=False) + "\n"
            for d in (overview(), fleet())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if the committed JSON differs from what would be written")
    ap.add_argument("--out", default=DASHBOARD_DIR, help="folder to write into")
    args = ap.parse_args()
    stale = []
    for name, text in rendered().items():
        path = os.path.join(args.out, name)
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        stale.append(path)
            except FileNotFoundError:
                stale.append(path)
            continue
        os.makedirs(args.out, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {path}")
    if stale:
        print("out of date (run deploy/grafana/make_dashboards.py): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
