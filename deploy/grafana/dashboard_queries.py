#!/usr/bin/python3
"""The PromQL queries of rstmon's Grafana dashboards, ready to run on a real Prometheus.

Importable (tests, the end-to-end check, render_png.py) and a CLI:

    python3 deploy/grafana/dashboard_queries.py --list              # every query, as written
    python3 deploy/grafana/dashboard_queries.py --list --resolved \\
        --var appliance=vm --var __rate_interval=4s                  # ... with variables replaced

What it does for a dashboard (Grafana JSON model):
- walks every panel, including panels nested in collapsed rows (and the pre-schema-16 `rows`);
- substitutes template variables the way Grafana's Prometheus datasource does: `$var`, `${var}`,
  `${var:regex|pipe|csv|raw|text|glob|json}` and `[[var]]`; "All" (or `$__all`) becomes the
  variable's allValue (`.*` when it has none); a list becomes `(a|b)` with regex metacharacters
  escaped; a variable missing from the given dict counts as "All";
- substitutes Grafana's built-ins `$__rate_interval`, `$__interval`, `$__range` and their
  `_s`/`_ms` forms (defaults 1m, 15s, 1h; pass `__rate_interval` etc. in the dict to override);
- turns each query variable's own query into something Prometheus can run:
  `label_values(sel, label)` -> instant query `count by (label) (sel)`, whose result series carry
  exactly the values Grafana would list; the same values come from `/api/v1/series?match[]=sel`,
  so the dict also carries `series_match` (sel) and `label`. `label_values(label)` ->
  `count by (label) ({label!=""})`, `query_result(q)` -> `q`, `metrics(re)` ->
  `count by (__name__) ({__name__=~"re"})`.

"Main" panels are the ones that must return data while rstmon sees a burst of RSTs (the
end-to-end test fails if one is empty). They are listed by title in MAIN_PANELS below rather than
marked inside the JSON, because Grafana drops unknown panel keys when a dashboard is saved from
its UI; tests/deploy/test_dashboards.py fails if a listed title is missing from its dashboard.
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(HERE, "dashboards")

MAIN_PANELS = {
    "rstmon-overview": frozenset({
        "RST rate by cause", "RST rate by service", "RST rate by stage", "RST rate by sender",
        "Top RST causes", "RSTs per 1000 connections", "Packets/s per port", "Lcore busy ratio",
        "Flow table fill per lcore", "Idle time before RST", "Flow age at RST",
        "Connection outcomes",
    }),
    "rstmon-fleet": frozenset({
        "RST rate by cause, all appliances", "RST rate by appliance", "Appliances",
        "Top causes per appliance",
    }),
}

BUILTIN_DEFAULTS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
ALL_VALUES = ("All", "$__all")


def load_dashboards(directory=DEFAULT_DIR):
    """[(file path, dashboard dict)] for every *.json in `directory`, sorted by file name."""
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as f:
                out.append((path, json.load(f)))
    return out


def iter_panels(dashboard):
    """Every panel that is not a row, in document order, rows' nested panels included."""
    def walk(panels):
        for p in panels:
            if p.get("type") == "row":
                yield from walk(p.get("panels", []))
            else:
                yield p
    yield from walk(dashboard.get("panels", []))
    for row in dashboard.get("rows", []):  # schemaVersion < 16 layout
        yield from walk(row.get("panels", []))


def template_vars(dashboard):
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


# ---------------------------------------------------------------------------------------------
# Durations

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                   "y": 31536000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text):
    """Seconds in a Prometheus/Grafana duration ("1h30m", "500ms", "15s") or a bare number."""
    if isinstance(text, (int, float)):
        return float(text)
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r}")
    return total


def format_duration(seconds):
    """The shortest exact Prometheus duration for `seconds` (whole ms)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError(f"duration must be positive: {seconds}")
    if ms % 1000:
        return f"{ms}ms"
    s = ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def rate_interval(interval_s, scrape_interval_s):
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 * scrape interval)."""
    return max(interval_s + scrape_interval_s, 4 * scrape_interval_s)


# ---------------------------------------------------------------------------------------------
# Variable substitution

_REGEX_META = set("\\^$.|?*+()[]{}")
_VAR_RE = re.compile(r"\$\{(?P<braced>\w+)(?::(?P<fmt>\w+))?\}"
                     r"|\[\[(?P<bracket>\w+)(?::(?P<bfmt>\w+))?\]\]"
                     r"|\$(?P<plain>\w+)")


def _regex_escape(value):
    # Escaped for the regex, then every backslash doubled because the result sits inside a
    # PromQL double-quoted string, which unescapes once before the regex engine sees it.
    escaped = "".join("\\" + c if c in _REGEX_META else c for c in value)
    return escaped.replace("\\", "\\\\").replace('"', '\\"')


def _format_values(values, fmt, var):
    multi = bool(var and (var.get("multi") or var.get("includeAll")))
    if fmt is None:
        fmt = "regex" if multi else "raw"
    if fmt == "regex":
        parts = [_regex_escape(v) for v in values]
        return parts[0] if len(parts) == 1 else "(" + "|".join(parts) + ")"
    if fmt == "pipe":
        return "|".join(values)
    if fmt in ("raw", "text", "csv"):
        return ",".join(values)
    if fmt == "glob":
        return values[0] if len(values) == 1 else "{" + ",".join(values) + "}"
    if fmt == "json":
        return json.dumps(values if len(values) != 1 else values[0])
    raise ValueError(f"unsupported variable format :{fmt}")


def _builtin(name, variables):
    for base, default in BUILTIN_DEFAULTS.items():
        for suffix in ("", "_s", "_ms"):
            if name == base + suffix:
                value = variables.get(base, default)
                if suffix == "":
                    return value if isinstance(value, str) else format_duration(value)
                seconds = parse_duration(value)
                return str(int(round(seconds * (1000 if suffix == "_ms" else 1))))
    return None


def substitute(expr, variables=None, templating=None):
    """`expr` with template variables and Grafana built-ins replaced.

    `variables` maps a name to a value or a list of values ("All"/"$__all" = all); a variable
    defined in `templating` (name -> Grafana variable model) but absent from `variables` is
    taken as "All" when it allows All, else as its current value. Unknown `$names` stay.
    """
    variables = variables or {}
    templating = templating or {}

    def replace(m):
        name = m.group("braced") or m.group("bracket") or m.group("plain")
        fmt = m.group("fmt") or m.group("bfmt")
        builtin = _builtin(name, variables)
        if builtin is not None:
            return builtin
        var = templating.get(name)
        if name in variables:
            value = variables[name]
        elif var is not None:
            value = "$__all" if var.get("includeAll") else var.get("current", {}).get("value")
            if value is None:
                return m.group(0)
        else:
            return m.group(0)
        values = value if isinstance(value, (list, tuple)) else [value]
        values = [str(v) for v in values]
        if not values or any(v in ALL_VALUES for v in values):
            all_value = (var or {}).get("allValue")
            return all_value if all_value else ".*"
        return _format_values(values, fmt, var)

    return _VAR_RE.sub(replace, expr)


# ---------------------------------------------------------------------------------------------
# Queries of a dashboard


def _target_is_instant(t):
    if "range" in t or "instant" in t:
        return bool(t.get("instant")) and not t.get("range", False)
    return False


def _stacked(panel):
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    return custom.get("stacking", {}).get("mode", "none") not in ("none", None)


def _split_top_level(args):
    """Split a function's argument text on commas outside strings and brackets."""
    parts, depth, quote, cur = [], 0, None, []
    i = 0
    while i < len(args):
        c = args[i]
        if quote:
            if c == "\\" and i + 1 < len(args):
                cur.append(args[i:i + 2])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    parts.append("".join(cur).strip())
    return parts


def variable_query(query):
    """A Prometheus query variable's query -> {expr, series_match, label} (see module doc)."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = query.strip()
    m = re.fullmatch(r"(\w+)\s*\((.*)\)", query, flags=re.S)
    if not m:
        raise ValueError(f"unsupported variable query: {query!r}")
    func, args = m.group(1), _split_top_level(m.group(2))
    if func == "label_values" and len(args) == 2:
        selector, label = args
        return {"expr": f"count by ({label}) ({selector})", "series_match": selector,
                "label": label}
    if func == "label_values" and len(args) == 1:
        label = args[0]
        selector = f'{{{label}!=""}}'
        return {"expr": f"count by ({label}) ({selector})", "series_match": selector,
                "label": label}
    if func == "query_result" and len(args) >= 1:
        return {"expr": m.group(2).strip(), "series_match": None, "label": None}
    if func == "metrics" and len(args) == 1:
        selector = f'{{__name__=~"{args[0]}"}}'
        return {"expr": f"count by (__name__) ({selector})", "series_match": selector,
                "label": "__name__"}
    raise ValueError(f"unsupported variable query: {query!r}")


def panel_queries(dashboard, variables=None):
    """Every query of `dashboard` with variables substituted, as a list of dicts:

    dashboard (uid), panel (title; "variable <name>" for a variable's own query), ref_id, expr,
    instant, main; and, for the renderer: kind ("panel"/"variable"), panel_id, panel_type,
    legend, format, stacked, unit; for variables also series_match and label.
    """
    variables = dict(variables or {})
    templating = template_vars(dashboard)
    uid = dashboard.get("uid", "")
    main_titles = MAIN_PANELS.get(uid, frozenset())
    out = []
    for panel in iter_panels(dashboard):
        title = panel.get("title", "")
        for t in panel.get("targets", []):
            if t.get("hide"):
                continue
            out.append({
                "dashboard": uid, "panel": title, "ref_id": t.get("refId", ""),
                "expr": substitute(t.get("expr", ""), variables, templating),
                "instant": _target_is_instant(t), "main": title in main_titles,
                "kind": "panel", "panel_id": panel.get("id"), "panel_type": panel.get("type"),
                "legend": t.get("legendFormat", ""), "format": t.get("format", "time_series"),
                "stacked": _stacked(panel),
                "unit": panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""),
            })
    for name, var in templating.items():
        if var.get("type") != "query":
            continue
        q = variable_query(var.get("query", ""))
        expr = substitute(q["expr"], variables, templating)
        match = q["series_match"] and substitute(q["series_match"], variables, templating)
        out.append({
            "dashboard": uid, "panel": f"variable {name}", "ref_id": name, "expr": expr,
            "instant": True, "main": False, "kind": "variable", "panel_id": None,
            "panel_type": None, "legend": "", "format": "table", "stacked": False, "unit": "",
            "series_match": match, "label": q["label"],
        })
    return out


# ---------------------------------------------------------------------------------------------
# Metric names in PromQL

_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                 "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
             "and", "or", "unless", "atan2", "inf", "nan"} | _AGGREGATIONS
# Keywords followed by a parenthesised list of label names, not an expression.
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$\w+)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z0-9_]*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^=<>(){}\[\],@])
""", re.X)


def _tokens(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {pos}: {expr[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def metric_names(expr):
    """The metric names `expr` reads: selector names and `__name__="..."` matchers; not
    functions, aggregations, keywords, label names, durations or Grafana variables."""
    toks = _tokens(expr)
    names = set()
    i, n = 0, len(toks)

    def skip_balanced(j, open_, close):
        depth = 0
        while j < n:
            if toks[j] == ("op", open_):
                depth += 1
            elif toks[j] == ("op", close):
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        raise ValueError(f"unbalanced {open_!r} in {expr!r}")

    def read_matchers(j):
        # toks[j] is "{": label matchers; the only metric names in here are
        # `__name__="x"` and, in Prometheus 3 syntax, a bare quoted name.
        end = skip_balanced(j, "{", "}")
        body = toks[j + 1:end - 1]
        k = 0
        while k < len(body):
            if body[k][0] == "string":
                names.add(_unquote(body[k][1]))
                k += 1
            elif (body[k] == ("ident", "__name__") and k + 2 < len(body)
                  and body[k + 1] == ("op", "=") and body[k + 2][0] == "string"):
                names.add(_unquote(body[k + 2][1]))
                k += 3
            elif body[k][0] == "ident" and k + 2 < len(body) and body[k + 2][0] == "string":
                k += 3
            else:
                k += 1
        return end

    depth = 0
    while i < n:
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < n else (None, None)
        if kind == "op" and text == "[":
            i = skip_balanced(i, "[", "]")  # range / subquery durations
        elif kind == "op" and text == "{":
            i = read_matchers(i)
        elif kind == "op" and text in "()":
            depth += 1 if text == "(" else -1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in {expr!r}")
            i += 1
        elif kind == "ident" and text.lower() in _KEYWORDS:
            i += 1
            if text.lower() in _LABEL_LIST_KEYWORDS and nxt == ("op", "("):
                i = skip_balanced(i, "(", ")")
        elif kind == "ident" and nxt == ("op", "("):
            i += 1  # a function call
        elif kind == "ident":
            names.add(text)
            i += 1
        else:
            i += 1
    if depth != 0:
        raise ValueError(f"unbalanced '(' in {expr!r}")
    return names


# ---------------------------------------------------------------------------------------------
# CLI


def _parse_var(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value.split(",") if "," in value else value


def main(argv=None):
    ap = argparse.ArgumentParser(description="List the PromQL queries of rstmon's dashboards.")
    ap.add_argument("--dir", default=DEFAULT_DIR, help="folder of dashboard JSON files")
    ap.add_argument("--list", action="store_true", help="print every query")
    ap.add_argument("--resolved", action="store_true",
                    help="substitute variables (missing ones = All) and built-ins")
    ap.add_argument("--var", action="append", type=_parse_var, default=[],
                    metavar="NAME=VALUE", help="variable value (a,b for several); implies "
                    "--resolved. Built-ins: __rate_interval, __interval, __range")
    ap.add_argument("--main-only", action="store_true", help="only the main panels")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args(argv)
    if not args.list:
        ap.print_help()
        return 2
    variables = dict(args.var)
    for path, dash in load_dashboards(args.dir):
        if args.resolved or variables:
            queries = panel_queries(dash, variables)
        else:
            queries = _raw_queries(dash)
        for q in queries:
            if args.main_only and not q["main"]:
                continue
            if args.json:
                print(json.dumps(q, sort_keys=True))
                continue
            flags = ",".join(f for f, on in (("main", q["main"]), ("instant", q["instant"]))
                             if on) or "-"
            print(f"{q['dashboard']} | {q['panel']} | {q['ref_id']} | {flags}\n    {q['expr']}")
    return 0


def _raw_queries(dashboard):
    """panel_queries() without substitution: the expressions exactly as the JSON holds them."""
    resolved = panel_queries(dashboard, {})
    raw = [t.get("expr", "") for p in iter_panels(dashboard)
           for t in p.get("targets", []) if not t.get("hide")]
    raw += [variable_query(v.get("query", ""))["expr"]
            for v in template_vars(dashboard).values() if v.get("type") == "query"]
    for q, expr in zip(resolved, raw):
        q["expr"] = expr
    return resolved


if __name__ == "__main__":
    sys.exit(main())
