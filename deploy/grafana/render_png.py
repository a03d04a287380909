#!/usr/bin/python3
"""Draws an rstmon dashboard to a PNG from a real Prometheus, without Grafana.

    render_png.py --prometheus http://127.0.0.1:9090 --start UNIX --end UNIX --step 1 \\
                  --appliance vm --out overview.png [--dashboard rstmon-overview] \\
                  [--scrape-interval 1s] [--all-panels] [--fail-empty] [--summary-json F]

It runs the main panels' queries (all panels with --all-panels) exactly as the dashboard JSON
holds them, variables substituted by dashboard_queries.py: range queries through
/api/v1/query_range over [start, end] at `step`, instant ones (tables) through /api/v1/query at
`end`. Grafana's built-ins become: $__interval = step, $__range = end - start, $__rate_interval
= max(step + scrape interval, 4 x scrape interval) as Grafana computes it (pass the Prometheus
scrape interval with --scrape-interval). Panels are drawn on the dashboard's 24-column grid in
its order and widths: time series (stacked areas where the panel stacks), heatmaps with the
histogram buckets on the y axis, tables, stats; legends use the panel's legendFormat, so
by-cause panels show the cause names as exported.

Prints one line per panel (series returned) and exits 0; 1 when a query fails (Prometheus's
error is printed), 2 when Prometheus cannot be reached or the arguments are wrong, 3 with
--fail-empty when a drawn panel returned no series at all.
"""
import argparse
import datetime
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_queries as dq  # noqa: E402

# Grafana's dark theme and its classic palette, in the order it hands colours to series.
BG, PANEL_BG, BORDER, TEXT, DIM, GRID = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9c", \
    "#2a2d33"
PALETTE = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9",
           "#705DA0", "#37872D", "#FADE2A", "#447EBC", "#C15C17", "#890F02", "#0A437C",
           "#6D1F62", "#584477", "#B7DBAB", "#F4D598", "#70DBED", "#F9BA8F"]
NAMED_COLORS = {"red": "#F2495C", "green": "#73BF69", "orange": "#FF9830", "blue": "#5794F2",
                "yellow": "#FADE2A"}
GRID_UNIT_W_IN, GRID_UNIT_H_IN, HEADER_IN = 0.92, 0.40, 0.7


class RenderError(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# Prometheus


class Prometheus:
    def __init__(self, base_url, timeout_s):
        self.base = base_url.rstrip("/")
        self.timeout = timeout_s

    def _get(self, path, params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            # Prometheus answers a bad query with 400/422 and a JSON error body.
            try:
                body = json.loads(e.read().decode("utf-8", "replace"))
            except ValueError:
                raise RenderError(f"Prometheus {self.base} answered HTTP {e.code} for {path}", 1)
        except (urllib.error.URLError, OSError) as e:
            raise RenderError(f"cannot reach Prometheus at {self.base}: "
                              f"{getattr(e, 'reason', e)}", 2)
        if body.get("status") != "success":
            raise RenderError(f"{body.get('errorType', 'error')}: {body.get('error', body)}", 1)
        return body["data"]

    def check(self):
        self._get("/api/v1/status/buildinfo", {})

    def query(self, expr, at):
        return self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr, start, end, step):
        return self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}",
                                                 "end": f"{end:.3f}", "step": f"{step:g}"})


# ---------------------------------------------------------------------------------------------
# Data shaping


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _finite(text):
    v = _float(text)
    return v if math.isfinite(v) else math.nan


def legend_name(fmt, labels):
    """Grafana's legendFormat: `{{label}}` (spaces allowed) replaced by the series' value."""
    if not fmt:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return labels.get("__name__", "") + "{" + inner + "}"
    out, i = [], 0
    while i < len(fmt):
        j = fmt.find("{{", i)
        if j < 0:
            out.append(fmt[i:])
            break
        k = fmt.find("}}", j)
        if k < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        out.append(labels.get(fmt[j + 2:k].strip(), ""))
        i = k + 2
    return "".join(out)


def matrix_on_grid(result, start, step, points):
    """Range-query series -> [(labels, [value per step])], NaN where a step has no sample."""
    out = []
    for s in result:
        values = [math.nan] * points
        for t, v in s.get("values", []):
            k = round((float(t) - start) / step)
            if 0 <= k < points:
                values[k] = _finite(v)
        out.append((s.get("metric", {}), values))
    return out


def heatmap_cells(series):
    """Cumulative `le` series -> (bucket upper bounds, rows of per-bucket counts per step).

    Grafana's "heatmap" format does the same: sort buckets by le, subtract each from the next.
    """
    by_le = sorted(((_float(lbl.get("le")), vals) for lbl, vals in series
                    if "le" in lbl), key=lambda p: p[0])
    bounds = [le for le, _ in by_le]
    rows, below = [], None
    for _, vals in by_le:
        if below is None:
            rows.append([max(v, 0.0) if not math.isnan(v) else math.nan for v in vals])
        else:
            rows.append([max(v - b, 0.0) if not (math.isnan(v) or math.isnan(b)) else math.nan
                         for v, b in zip(vals, below)])
        below = vals
    return bounds, rows


def apply_table_transforms(columns, rows, transforms):
    """A small part of Grafana's transformations: merge (implicit), groupingToMatrix, organize,
    sortBy. `rows` are dicts column -> value."""
    for tr in transforms:
        opt = tr.get("options", {})
        if tr.get("id") == "groupingToMatrix":
            rf, cf, vf = opt.get("rowField"), opt.get("columnField"), opt.get("valueField")
            matrix, row_keys, col_keys = {}, [], []
            for r in rows:
                rk, ck = r.get(rf, ""), r.get(cf, "")
                if rk not in row_keys:
                    row_keys.append(rk)
                if ck not in col_keys:
                    col_keys.append(ck)
                matrix[(rk, ck)] = r.get(vf, "")
            corner = f"{rf}\\{cf}"
            columns = [corner] + col_keys
            rows = [{corner: rk, **{ck: matrix.get((rk, ck), "") for ck in col_keys}}
                    for rk in row_keys]
        elif tr.get("id") == "organize":
            hidden = {k for k, v in opt.get("excludeByName", {}).items() if v}
            rename = opt.get("renameByName", {})
            columns = [c for c in columns if c not in hidden]
            rows = [{rename.get(c, c): r.get(c, "") for c in columns} for r in rows]
            columns = [rename.get(c, c) for c in columns]
        elif tr.get("id") == "sortBy":
            for s in reversed(opt.get("sort", [])):
                field = s.get("field")
                if field in columns:
                    rows.sort(key=lambda r: _sort_key(r.get(field)), reverse=bool(s.get("desc")))
    return columns, rows


def _sort_key(v):
    f = _float(v)
    return (0, f, "") if not math.isnan(f) else (1, 0.0, str(v))


def instant_table(results_by_ref):
    """Instant vectors of one or more targets -> (columns, rows) the way Grafana's table does:
    one target -> label columns + Value; several -> joined on their labels, Value #<refId>."""
    several = len(results_by_ref) > 1
    columns, rows, index = ["Time"], [], {}
    for ref, result in results_by_ref.items():
        value_col = f"Value #{ref}" if several else "Value"
        for s in result:
            labels = {k: v for k, v in s.get("metric", {}).items() if k != "__name__"}
            for k in labels:
                if k not in columns:
                    columns.append(k)
            key = tuple(sorted(labels.items())) if several else len(rows)
            row = index.get(key)
            if row is None:
                row = {"Time": s["value"][0], **labels}
                index[key] = row
                rows.append(row)
            row[value_col] = _float(s["value"][1])
        if value_col not in columns:
            columns.append(value_col)
    return columns, rows


# ---------------------------------------------------------------------------------------------
# Drawing


def _fmt_value(v, unit=""):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit == "percentunit":
        return f"{v * 100:.1f}%"
    if unit == "s":
        return _fmt_seconds(v)
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v)}"
    return f"{v:.3g}"


def _fmt_seconds(v):
    if v is None or math.isnan(v):
        return "-"
    if math.isinf(v):
        return "+Inf"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if v >= size:
            q = v / size
            return f"{int(q)}{unit}" if q.is_integer() else f"{q:.3g}{unit}"
    if v >= 1 or v == 0:
        return f"{v:.3g}s"
    return f"{v * 1000:.3g}ms"


def _fmt_bound(v):
    """A bucket's `le` exactly: 350 s stays "350s", 3600 s becomes "1h"."""
    if math.isinf(v):
        return "+Inf"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if v >= size and (v / size).is_integer():
            return f"{int(v / size)}{unit}"
    return f"{v:g}s" if v >= 1 else f"{v * 1000:g}ms"


def _axis_formatter(unit):
    from matplotlib.ticker import EngFormatter, FuncFormatter, PercentFormatter
    if unit == "percentunit":
        return PercentFormatter(1.0, decimals=0)
    if unit == "bps":
        return EngFormatter(unit="b/s", places=0, sep=" ")
    if unit == "pps":
        return EngFormatter(unit="p/s", places=0, sep=" ")
    if unit == "s":
        return FuncFormatter(lambda v, _: _fmt_seconds(v))
    return EngFormatter(places=None, sep="")


def _style_axes(ax):
    ax.set_facecolor(PANEL_BG)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(BORDER)
    ax.tick_params(colors=DIM, labelsize=7, length=2)
    ax.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)


def _no_data(fig, rect):
    fig.text(rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, "No data", color=DIM, fontsize=11,
             ha="center", va="center")


def draw_timeseries(fig, rect, panel, series_by_ref, times, unit):
    import matplotlib.dates as mdates
    x, y, w, h = rect
    named = []
    for ref, fmt, series in series_by_ref:
        for labels, values in series:
            named.append((legend_name(fmt, labels), values))
    if not named:
        _no_data(fig, rect)
        return
    legend_w = min(w * 0.36, 2.9 / fig.get_figwidth())  # at most 2.9 in, like Grafana's
    ax = fig.add_axes([x + 0.55 / fig.get_figwidth(), y + 0.3 / fig.get_figheight(),
                       w - legend_w - 0.7 / fig.get_figwidth(), h - 0.38 / fig.get_figheight()])
    _style_axes(ax)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(named))]
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    stacked = custom.get("stacking", {}).get("mode", "none") not in ("none", None)
    if stacked:
        ys = [[0.0 if math.isnan(v) else v for v in vals] for _, vals in named]
        ax.stackplot(times, ys, colors=colors, alpha=0.75, linewidth=0.8,
                     edgecolor=colors)
    else:
        for (name, vals), c in zip(named, colors):
            ax.plot(times, vals, color=c, linewidth=1.2)
            ax.fill_between(times, vals, color=c, alpha=0.08)
            # A sample between two gaps draws no line; Grafana's showPoints=auto shows a dot.
            lonely = [i for i, v in enumerate(vals) if not math.isnan(v)
                      and (i == 0 or math.isnan(vals[i - 1]))
                      and (i == len(vals) - 1 or math.isnan(vals[i + 1]))]
            if lonely:
                ax.scatter([times[i] for i in lonely], [vals[i] for i in lonely], color=c, s=8,
                           zorder=3)
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    bottom = defaults.get("min")
    top = defaults.get("max")
    lo, hi = ax.get_ylim()
    ax.set_ylim(bottom if bottom is not None else lo,
                top if top is not None else max(hi, (bottom or 0) + 1e-9))
    if top is None and hi <= (bottom or 0):
        ax.set_ylim(bottom or 0, 1)
    ax.yaxis.set_major_formatter(_axis_formatter(unit))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=6))
    ax.set_xlim(times[0], times[-1])
    label = custom.get("axisLabel")
    if label:
        ax.set_ylabel(label, color=DIM, fontsize=7)
    from matplotlib.patches import Patch
    handles = [Patch(facecolor=c, edgecolor=c, label=name) for (name, _), c in zip(named, colors)]
    fits = max(1, int(h * fig.get_figheight() / 0.21) - 1)
    if len(handles) > fits:  # Grafana scrolls its legend; a picture can only say how many more
        more = len(handles) - fits + 1
        handles = handles[:fits - 1] + [Patch(facecolor=PANEL_BG, edgecolor=PANEL_BG,
                                              label=f"... {more} more")]
    leg = fig.legend(handles=handles, loc="upper left", frameon=False, fontsize=7,
                     labelcolor=TEXT, handlelength=1.0, handleheight=0.6,
                     bbox_to_anchor=(x + w - legend_w + 0.05 / fig.get_figwidth(),
                                     y + h - 0.02), borderaxespad=0)
    leg.set_in_layout(False)


def draw_heatmap(fig, rect, panel, series, times):
    import matplotlib.dates as mdates
    import numpy as np
    from matplotlib.colors import PowerNorm
    bounds, rows = heatmap_cells(series)
    if not rows:
        _no_data(fig, rect)
        return
    x, y, w, h = rect
    ax = fig.add_axes([x + 0.55 / fig.get_figwidth(), y + 0.3 / fig.get_figheight(),
                       w - 1.15 / fig.get_figwidth(), h - 0.38 / fig.get_figheight()])
    _style_axes(ax)
    ax.grid(False)
    data = np.array(rows, dtype=float)
    # Empty cells stay panel-coloured, as Grafana hides counts at or below 1e-9.
    masked = np.ma.masked_where(~(data > 1e-9), data)
    # Each sample is the increase over the interval ending at its timestamp: draw its cell there.
    x_num = mdates.date2num(times)
    width = (x_num[1] - x_num[0]) if len(x_num) > 1 else 1 / 86400
    x_edges = np.append(x_num[0] - width, x_num)
    y_edges = np.arange(len(bounds) + 1)
    vmax = float(masked.max()) if masked.count() else 1.0
    mesh = ax.pcolormesh(x_edges, y_edges, masked, cmap="YlOrRd_r",
                         norm=PowerNorm(0.5, vmin=0, vmax=max(vmax, 1e-9)), shading="flat")
    ax.set_yticks(np.arange(len(bounds)) + 0.5)
    ax.set_yticklabels([_fmt_bound(b) for b in bounds], fontsize=6)
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=6))
    ax.set_ylabel("le", color=DIM, fontsize=7)
    cax = fig.add_axes([x + w - 0.5 / fig.get_figwidth(), y + 0.3 / fig.get_figheight(),
                        0.12 / fig.get_figwidth(), h - 0.38 / fig.get_figheight()])
    cb = fig.colorbar(mesh, cax=cax)
    cb.ax.tick_params(colors=DIM, labelsize=6, length=2)
    cb.outline.set_edgecolor(BORDER)


def draw_table(fig, rect, panel, results_by_ref, unit):
    columns, rows = instant_table(results_by_ref)
    columns, rows = apply_table_transforms(columns, rows, panel.get("transformations", []))
    if not rows:
        _no_data(fig, rect)
        return
    x, y, w, h = rect
    ax = fig.add_axes([x + 0.1 / fig.get_figwidth(), y + 0.1 / fig.get_figheight(),
                       w - 0.2 / fig.get_figwidth(), h - 0.12 / fig.get_figheight()])
    ax.set_axis_off()
    max_rows = max(1, int((h * fig.get_figheight()) / 0.22) - 1)
    cells = [[_fmt_value(r.get(c, ""), unit if isinstance(r.get(c), float) else "")
              for c in columns] for r in rows[:max_rows]]
    row_h = min(0.22 / (h * fig.get_figheight()), 1.0 / (len(cells) + 1))
    table_h = row_h * (len(cells) + 1)
    tbl = ax.table(cellText=cells, colLabels=columns, cellLoc="left", colLoc="left",
                   bbox=[0, 1 - table_h, 1, table_h])
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(7.5)
    for (r, _), cell in tbl.get_celld().items():
        cell.set_edgecolor(BORDER)
        cell.set_facecolor("#22252b" if r == 0 else PANEL_BG)
        cell.get_text().set_color(TEXT if r else "#6e9fff")
        cell.set_height(row_h)


def field_config(panel, ref_id):
    """The panel's field defaults with the overrides that match `ref_id` (byFrameRefID) applied;
    only the properties this renderer uses (unit, mappings, thresholds)."""
    fc = panel.get("fieldConfig", {})
    cfg = dict(fc.get("defaults", {}))
    for o in fc.get("overrides", []):
        m = o.get("matcher", {})
        if m.get("id") == "byFrameRefID" and m.get("options") == ref_id:
            for prop in o.get("properties", []):
                if prop.get("id") in ("unit", "mappings", "thresholds"):
                    cfg[prop["id"]] = prop.get("value")
    return cfg


def _threshold_color(cfg, v):
    color = None
    for step in cfg.get("thresholds", {}).get("steps", []):
        if step.get("value") is None or (not math.isnan(v) and v >= step["value"]):
            color = step.get("color")
    return color


def draw_stat(fig, rect, panel, series_by_ref, unit):
    items = []
    for ref, fmt, series in series_by_ref:
        cfg = field_config(panel, ref)
        unit = cfg.get("unit", "")
        mappings = {}
        for m in cfg.get("mappings") or []:
            if m.get("type") == "value":
                mappings.update(m.get("options", {}))
        for labels, values in series:
            last = next((v for v in reversed(values) if not math.isnan(v)), math.nan)
            key = _fmt_value(last)
            text = mappings.get(key, {}).get("text") or _fmt_value(last, unit)
            color = mappings.get(key, {}).get("color") or _threshold_color(cfg, last)
            items.append((legend_name(fmt, labels), text, color))
    if not items:
        _no_data(fig, rect)
        return
    x, y, w, h = rect
    n = len(items)
    for i, (name, text, color) in enumerate(items):
        cx = x + w * (i + 0.5) / n
        fig.text(cx, y + h * 0.52, text, ha="center", va="center", fontsize=15, weight="bold",
                 color=NAMED_COLORS.get(color, TEXT))
        fig.text(cx, y + h * 0.2, name, ha="center", va="center", fontsize=7, color=DIM)


# ---------------------------------------------------------------------------------------------


def pack(panels):
    """Re-flows the drawn panels onto the 24-column grid, keeping order, width and height."""
    placed, x, y, line_h = [], 0, 0, 0
    for p in panels:
        g = p.get("gridPos", {})
        w, h = min(int(g.get("w", 12)), 24), int(g.get("h", 8))
        if x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        placed.append((p, x, y, w, h))
        x += w
        line_h = max(line_h, h)
    return placed, y + line_h


def find_dashboard(spec):
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            return json.load(f)
    for _, dash in dq.load_dashboards():
        if dash.get("uid") == spec:
            return dash
    raise RenderError(f"no dashboard {spec!r} (a uid in {dq.DEFAULT_DIR} or a JSON file)", 2)


def render(args):
    if args.end <= args.start:
        raise RenderError("--end must be after --start", 2)
    step = args.step
    scrape = dq.parse_duration(args.scrape_interval)
    variables = {
        "__interval": dq.format_duration(step),
        "__rate_interval": dq.format_duration(dq.rate_interval(step, scrape)),
        "__range": dq.format_duration(max(1.0, round(args.end - args.start))),
        "appliance": args.appliance, "service": args.service, "cause": args.cause,
    }
    dash = find_dashboard(args.dashboard)
    queries = [q for q in dq.panel_queries(dash, variables)
               if q["kind"] == "panel" and (args.all_panels or q["main"])]
    if not queries:
        raise RenderError(f"dashboard {dash.get('uid')} has no panels to draw", 2)
    panels_by_id = {p.get("id"): p for p in dq.iter_panels(dash)}
    order = []
    for q in queries:
        if q["panel_id"] not in order:
            order.append(q["panel_id"])

    prom = Prometheus(args.prometheus, args.timeout)
    prom.check()
    points = int(math.floor((args.end - args.start) / step)) + 1
    data, summary = {}, {}
    for q in queries:
        try:
            if q["instant"]:
                res = prom.query(q["expr"], args.end)["result"]
            else:
                res = prom.query_range(q["expr"], args.start, args.end, step)["result"]
        except RenderError as e:
            if e.code == 1:
                raise RenderError(f"panel {q['panel']!r} query {q['ref_id']} failed: {e}\n"
                                  f"  query: {q['expr']}", 1)
            raise
        data[(q["panel_id"], q["ref_id"])] = (q, res)
        summary.setdefault(q["panel"], {})[q["ref_id"]] = len(res)

    try:
        import matplotlib
    except ImportError:
        raise RenderError("matplotlib is missing: apt-get install python3-matplotlib "
                          f"(running {sys.executable})", 2)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    panels = [panels_by_id[i] for i in order]
    placed, total_h = pack(panels)
    fig_w = 24 * GRID_UNIT_W_IN
    fig_h = total_h * GRID_UNIT_H_IN + HEADER_IN
    fig = plt.figure(figsize=(fig_w, fig_h), facecolor=BG)
    fig.text(0.25 / fig_w, 1 - 0.3 / fig_h, dash.get("title", ""), color=TEXT, fontsize=15,
             weight="bold", va="center")
    t0 = datetime.datetime.fromtimestamp(args.start, datetime.timezone.utc)
    t1 = datetime.datetime.fromtimestamp(args.end, datetime.timezone.utc)
    fig.text(1 - 0.25 / fig_w, 1 - 0.3 / fig_h,
             f"appliance={args.appliance}   {t0:%Y-%m-%d %H:%M:%S} to {t1:%H:%M:%S} UTC   "
             f"step {step:g}s   Prometheus {args.prometheus}", color=DIM, fontsize=9,
             ha="right", va="center")
    times = [datetime.datetime.fromtimestamp(args.start + k * step, datetime.timezone.utc)
             for k in range(points)]
    gap_x, gap_y = 0.06 / fig_w, 0.06 / fig_h
    title_h = 0.3 / fig_h
    for panel, gx, gy, gw, gh in placed:
        px = gx / 24 + gap_x
        pw = gw / 24 - 2 * gap_x
        ph = gh * GRID_UNIT_H_IN / fig_h - 2 * gap_y
        py = 1 - HEADER_IN / fig_h - (gy + gh) * GRID_UNIT_H_IN / fig_h + gap_y
        fig.patches.append(FancyBboxPatch((px, py), pw, ph,
                                          boxstyle="round,pad=0,rounding_size=0.002",
                                          transform=fig.transFigure, facecolor=PANEL_BG,
                                          edgecolor=BORDER, linewidth=0.8, zorder=-1))
        fig.text(px + 0.1 / fig_w, py + ph - title_h / 2, panel.get("title", ""), color=TEXT,
                 fontsize=9, weight="bold", va="center")
        content = (px, py, pw, ph - title_h)
        entries = [data[(panel.get("id"), t.get("refId"))] for t in panel.get("targets", [])
                   if (panel.get("id"), t.get("refId")) in data]
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        ptype = panel.get("type")
        if ptype == "heatmap":
            series = [s for q, res in entries
                      for s in matrix_on_grid(res, args.start, step, points)]
            draw_heatmap(fig, content, panel, series, times)
        elif ptype == "table":
            draw_table(fig, content, panel, {q["ref_id"]: res for q, res in entries}, unit)
        else:
            by_ref = [(q["ref_id"], q["legend"],
                       matrix_on_grid(res, args.start, step, points) if not q["instant"] else
                       [(s["metric"], [_float(s["value"][1])]) for s in res])
                      for q, res in entries]
            if ptype == "stat":
                draw_stat(fig, content, panel, by_ref, unit)
            else:
                draw_timeseries(fig, content, panel, by_ref, times, unit)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=args.dpi, facecolor=BG)
    plt.close(fig)
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description="Render an rstmon dashboard to PNG from Prometheus.")
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--start", type=float, required=True, help="range start, unix seconds")
    ap.add_argument("--end", type=float, required=True, help="range end, unix seconds")
    ap.add_argument("--step", type=float, default=15.0,
                    help="query step in seconds (= $__interval)")
    ap.add_argument("--scrape-interval", default="15s",
                    help="Prometheus scrape interval, for $__rate_interval (default 15s)")
    ap.add_argument("--appliance", default="All", help="appliance label value (default All)")
    ap.add_argument("--service", default="All", help="service label value (default All)")
    ap.add_argument("--cause", default="All", help="cause label value (default All)")
    ap.add_argument("--dashboard", default="rstmon-overview", help="uid or JSON file")
    ap.add_argument("--all-panels", action="store_true", help="draw every panel, not only main")
    ap.add_argument("--fail-empty", action="store_true",
                    help="exit 3 when a drawn panel returned no series")
    ap.add_argument("--summary-json", help="write {panel: {refId: series}} here")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    ap.add_argument("--dpi", type=int, default=100)
    ap.add_argument("--out", required=True, help="PNG file to write")
    args = ap.parse_args(argv)
    if args.step <= 0:
        ap.error("--step must be positive")
    try:
        summary = render(args)
    except RenderError as e:
        print(f"render_png: {e}", file=sys.stderr)
        return e.code
    empty = [p for p, refs in summary.items() if sum(refs.values()) == 0]
    for panel, refs in summary.items():
        counts = " ".join(f"{r}={n}" for r, n in refs.items())
        print(f"{panel}: {counts}{'  (no data)' if panel in empty else ''}")
    print(f"wrote {args.out}")
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    if args.fail_empty and empty:
        print("render_png: no data in: " + ", ".join(empty), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
