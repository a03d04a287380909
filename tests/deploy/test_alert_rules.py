#!/usr/bin/python3
"""Static checks of rstmon's Prometheus rules against the operator guide and the unit tests.

- every alert has labels.severity in page|ticket|info, a summary, a description and a
  runbook_url of the form deploy/README.md#anchor whose anchor is a heading of
  deploy/README.md (as GitHub renders heading anchors);
- every runbook heading of the guide belongs to an alert (no stale runbook sections);
- every alert has a promtool test case where it fires and one where it must not, and every
  recorded series is checked by a promql_expr_test (the promtool tests in this folder).

Exit status 77 (meson's skip) when python3-yaml is not installed.
"""

import os
import re
import sys
import unittest

try:
    import yaml
except ImportError:
    print("python3-yaml is not installed (apt-get install python3-yaml): skipping", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROM = os.path.join(ROOT, "deploy", "prometheus")
GUIDE = os.path.join(ROOT, "deploy", "README.md")
ALERTS = os.path.join(PROM, "rstmon-alerts.yml")
RECORDING = os.path.join(PROM, "rstmon-recording.yml")
SEVERITIES = {"page", "ticket", "info"}
RUNBOOK_PREFIX = "deploy/README.md#"


def load_rules(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, punctuation other than '-'
    and '_' dropped, spaces turned into '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def guide_headings():
    """(level, text) of every ATX heading outside fenced code blocks."""
    headings = []
    in_fence = False
    with open(GUIDE) as f:
        for line in f:
            if line.startswith("```"):
                in_fence = not in_fence
                continue
            m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if m and not in_fence:
                headings.append((len(m.group(1)), m.group(2)))
    return headings


def runbook_section_headings():
    """Headings one level below the "Runbook" heading, up to the next heading of its level."""
    headings = guide_headings()
    start = next((i for i, (_, text) in enumerate(headings) if text == "Runbook"), None)
    if start is None:
        return []
    level = headings[start][0]
    found = []
    for lvl, text in headings[start + 1:]:
        if lvl <= level:
            break
        if lvl == level + 1:
            found.append(text)
    return found


def promtool_test_files():
    return sorted(os.path.join(HERE, n) for n in os.listdir(HERE) if n.endswith("_test.yml"))


class AlertAnnotations(unittest.TestCase):
    def setUp(self):
        self.alerts = [r for r in load_rules(ALERTS) if "alert" in r]
        self.anchors = {github_anchor(text) for _, text in guide_headings()}

    def test_there_are_alerts(self):
        self.assertGreaterEqual(len(self.alerts), 14)

    def test_every_alert_is_complete(self):
        for rule in self.alerts:
            with self.subTest(alert=rule["alert"]):
                self.assertIn(rule.get("labels", {}).get("severity"), SEVERITIES)
                ann = rule.get("annotations", {})
                for key in ("summary", "description", "runbook_url"):
                    self.assertTrue(str(ann.get(key, "")).strip(), f"annotations.{key} missing")

    def test_runbook_urls_name_headings_of_the_guide(self):
        for rule in self.alerts:
            with self.subTest(alert=rule["alert"]):
                url = rule["annotations"]["runbook_url"]
                self.assertTrue(url.startswith(RUNBOOK_PREFIX), url)
                anchor = url[len(RUNBOOK_PREFIX):]
                self.assertIn(anchor, self.anchors, f"no heading of {GUIDE} has anchor #{anchor}")
                # Each alert has its own section, named after it.
                self.assertEqual(anchor, github_anchor(rule["alert"]))

    def test_every_runbook_section_belongs_to_an_alert(self):
        names = {github_anchor(r["alert"]) for r in self.alerts}
        sections = runbook_section_headings()
        self.assertTrue(sections, "deploy/README.md has no Runbook section with sub-headings")
        for text in sections:
            with self.subTest(section=text):
                self.assertIn(github_anchor(text), names)

    def test_anchor_rules(self):
        # GitHub's algorithm on the kinds of heading the guide uses.
        self.assertEqual(github_anchor("RstSpike"), "rstspike")
        self.assertEqual(github_anchor("Metrics endpoint security"), "metrics-endpoint-security")
        self.assertEqual(github_anchor("Scale-out: one appliance per TAP"),
                         "scale-out-one-appliance-per-tap")


class PromtoolTestCoverage(unittest.TestCase):
    def setUp(self):
        self.firing, self.quiet, self.exprs = set(), set(), []
        for path in promtool_test_files():
            with open(path) as f:
                doc = yaml.safe_load(f)
            for test in doc.get("tests", []):
                for case in test.get("alert_rule_test", []) or []:
                    (self.firing if case.get("exp_alerts") else self.quiet).add(case["alertname"])
                for case in test.get("promql_expr_test", []) or []:
                    self.exprs.append((case["expr"], bool(case.get("exp_samples"))))

    def test_every_alert_fires_and_stays_quiet_in_some_case(self):
        for rule in load_rules(ALERTS):
            if "alert" not in rule:
                continue
            with self.subTest(alert=rule["alert"]):
                self.assertIn(rule["alert"], self.firing, "no promtool case where it fires")
                self.assertIn(rule["alert"], self.quiet, "no promtool case where it must not fire")

    def test_every_recorded_series_has_an_expected_value(self):
        for rule in load_rules(RECORDING):
            name = rule["record"]
            with self.subTest(record=name):
                self.assertTrue(any(expr == name and nonempty for expr, nonempty in self.exprs),
                                f"no promql_expr_test with expr: {name} and expected samples")


if __name__ == "__main__":
    unittest.main()
