#!/usr/bin/env python3
"""The monitoring files of deploy/monitoring, generated and checked.

  recording-rules [--check]  write deploy/monitoring/dashboard-queries.yml: one recording rule per
                             query of dashboard.json (dashboard:<panel_slug>, with _<refId> when a
                             panel has several queries), so promtool tests every panel's query on
                             the gateway's metric names; --check fails when the file differs.
  kubernetes [--check]       write deploy/kubernetes/base/prometheusrule.yaml: a PrometheusRule
                             holding exactly the groups of alerts.yml and slo.yml; --check fails
                             when the file differs.
  names                      print every metric name alerts.yml, slo.yml and dashboard.json read,
                             one a line, as written (a histogram's _bucket or _count series), without
                             recording rules' names (they hold ':'), ALERTS, up, and other
                             exporters' (kube_*, node_*, probe_*).
  check [--no-promtool]      both --checks; the files' own rules (every alert with its severity,
                             summary, description and runbook, a firing and a quiet test case, every
                             dashboard query tested); then `promtool check rules`, `promtool test
                             rules deploy/monitoring/tests/*.yml` and `promtool check config
                             deploy/monitoring/prometheus.yml` (skipped with --no-promtool).

Exit 1 with one line per problem. Needs PyYAML (python3 -m pip install pyyaml, or
.build/deploy-tools/bin/python after `make deploy-check`)."""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MONITORING = os.path.join(ROOT, "deploy", "monitoring")
ALERTS = os.path.join(MONITORING, "alerts.yml")
SLO = os.path.join(MONITORING, "slo.yml")
DASHBOARD = os.path.join(MONITORING, "dashboard.json")
DASHBOARD_QUERIES = os.path.join(MONITORING, "dashboard-queries.yml")
PROMETHEUS_CONFIG = os.path.join(MONITORING, "prometheus.yml")
TESTS = os.path.join(MONITORING, "tests")
PROMETHEUS_RULE = os.path.join(ROOT, "deploy", "kubernetes", "base", "prometheusrule.yaml")
RUNBOOKS = os.path.join(ROOT, "docs", "runbooks")
RUNBOOK_URL = "https://github.com/ussd-gateway/ussd-gateway/blob/main/docs/runbooks/{}.md"
SEVERITIES = ("critical", "warning")


def relative(path):
    return os.path.relpath(path, ROOT)


def load_yaml(path):
    with open(path, encoding="utf-8") as file:
        return yaml.safe_load(file)


def load_dashboard():
    with open(DASHBOARD, encoding="utf-8") as file:
        return json.load(file)


class Dumper(yaml.SafeDumper):
    """Lists indented under their key and block style for multi-line strings (the alerts'
    expressions), as the hand-written files are."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _represent_str(dumper, value):
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


Dumper.add_representer(str, _represent_str)


def dump(document):
    return yaml.dump(document, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)


# --- The dashboard's queries as recording rules.


def slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def panels(dashboard):
    """Every panel, rows' collapsed panels included, in the dashboard's order."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) or []


def dashboard_queries(dashboard):
    """(record, expr, panel title, refId) for every query of the dashboard."""
    queries, problems = [], []
    for panel in panels(dashboard):
        targets = [target for target in panel.get("targets", []) or [] if target.get("expr")]
        for target in targets:
            name = "dashboard:" + slug(panel["title"])
            if len(targets) > 1:
                name += "_" + slug(target["refId"])
            expr = target["expr"].strip()
            if "$" in expr:
                problems.append(f"dashboard.json: panel {panel['title']!r} query {target['refId']} uses a Grafana variable; "
                                "a recording rule cannot evaluate it (write the window out, e.g. [5m])")
            queries.append((name, expr, panel["title"], target["refId"]))
    seen = set()
    for name, _, title, ref in queries:
        if name in seen:
            problems.append(f"dashboard.json: panel {title!r} query {ref} gives the recording rule name {name} twice "
                            "(give the panel another title or the query another refId)")
        seen.add(name)
    return queries, problems


def render_recording_rules():
    queries, problems = dashboard_queries(load_dashboard())
    document = {"groups": [{"name": "ussd-gateway-dashboard",
                            "rules": [{"record": name, "expr": expr} for name, expr, _, _ in queries]}]}
    header = (
        "# Generated by `python3 scripts/monitoring.py recording-rules` from dashboard.json: do not edit\n"
        "# (`scripts/monitoring.py check`, and so `make deploy-check`, fails when it differs). One recording\n"
        "# rule per panel query, named dashboard:<panel title>[_<refId>], so that promtool evaluates every\n"
        "# query of the dashboard on the gateway's metric names (tests/dashboard.yml). Loading it into\n"
        "# Prometheus is optional: the dashboard queries the metrics themselves.\n"
    )
    return header + dump(document), problems


# --- The PrometheusRule for the Prometheus Operator.


def render_prometheus_rule():
    groups = load_yaml(ALERTS)["groups"] + load_yaml(SLO)["groups"]
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ussd-gateway"},
        "spec": {"groups": groups},
    }
    header = (
        "# Generated by `python3 scripts/monitoring.py kubernetes` from deploy/monitoring/alerts.yml and\n"
        "# slo.yml: do not edit (`make deploy-check` fails when it differs); their comments explain the rules.\n"
        "# The Prometheus Operator loads it when its Prometheus' ruleSelector matches these labels (the base\n"
        "# adds app.kubernetes.io/name: ussd-gateway; kube-prometheus-stack wants `release: <its release>`,\n"
        "# add it with a patch in your overlay).\n"
    )
    return header + dump(document)


def write_or_check(path, text, check, command):
    if check:
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current != text:
            return [f"{relative(path)} is not what `python3 scripts/monitoring.py {command}` makes of its sources: run it"]
        return []
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    print(f"wrote {relative(path)}")
    return []


# --- Metric names in PromQL.

# Words that are PromQL's own when they are not followed by `(`.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan", "atan2", "start", "end"}


def metric_names(expr):
    """The metric names an expression reads. PromQL has no parser in promtool 2.42, so: strings,
    label matchers, ranges and grouping clauses are blanked out; what is left that looks like an
    identifier and is not a call (a function or an aggregation, followed by `(`) nor a keyword is a
    metric name (numbers such as 1e3 never start an identifier here)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', " ", expr)
    text = re.sub(r"#[^\n]*", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def all_expressions():
    for path in (ALERTS, SLO):
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                yield relative(path), str(rule["expr"])
    for panel in panels(load_dashboard()):
        for target in panel.get("targets", []) or []:
            if target.get("expr"):
                yield relative(DASHBOARD), target["expr"]


def gateway_metric_names():
    names = set()
    for _, expr in all_expressions():
        names |= metric_names(expr)
    return sorted(name for name in names
                  if ":" not in name and name not in ("ALERTS", "ALERTS_FOR_STATE", "up")
                  and not name.startswith(("kube_", "node_", "probe_")))


# --- The files' own rules.


def consistency():
    problems = []
    alerts = load_yaml(ALERTS)
    slo = load_yaml(SLO)
    queries, query_problems = dashboard_queries(load_dashboard())
    problems += query_problems

    group_names = [group["name"] for group in alerts["groups"] + slo["groups"]]
    for name in sorted({name for name in group_names if group_names.count(name) > 1}):
        problems.append(f"rule group {name} is named twice across alerts.yml and slo.yml")
    for path, document in ((ALERTS, alerts), (SLO, slo)):
        for group in document["groups"]:
            if "interval" in group:
                problems.append(f"{relative(path)}: group {group['name']} sets an interval (leave Prometheus' evaluation_interval)")

    alert_names = []
    for group in alerts["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                problems.append(f"alerts.yml: group {group['name']} holds a recording rule ({rule.get('record')}): those go in slo.yml")
                continue
            name = rule["alert"]
            alert_names.append(name)
            severity = rule.get("labels", {}).get("severity")
            if severity not in SEVERITIES:
                problems.append(f"alerts.yml: {name} has severity {severity!r}, not one of {', '.join(SEVERITIES)}")
            annotations = rule.get("annotations", {})
            for key in ("summary", "description", "runbook_url"):
                if not annotations.get(key):
                    problems.append(f"alerts.yml: {name} has no {key} annotation")
            if annotations.get("runbook_url") and annotations["runbook_url"] != RUNBOOK_URL.format(name):
                problems.append(f"alerts.yml: {name}'s runbook_url is not {RUNBOOK_URL.format(name)}")

    for name in sorted(set(alert_names)):
        if not os.path.exists(os.path.join(RUNBOOKS, f"{name}.md")):
            problems.append(f"alerts.yml: {name} has no runbook docs/runbooks/{name}.md")
    index = open(os.path.join(RUNBOOKS, "README.md"), encoding="utf-8").read() if os.path.exists(os.path.join(RUNBOOKS, "README.md")) else ""
    for name in sorted(set(alert_names)):
        if f"({name}.md)" not in index:
            problems.append(f"docs/runbooks/README.md does not link {name}.md")

    # The tests: every alert fires in some case and stays quiet in another; every dashboard query
    # is evaluated.
    firing, quiet, evaluated = set(), set(), set()
    for path in sorted(glob.glob(os.path.join(TESTS, "*.yml"))):
        for test in load_yaml(path).get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
            for case in test.get("promql_expr_test", []) or []:
                if case.get("exp_samples"):
                    evaluated |= set(re.findall(r"dashboard:[A-Za-z0-9_:]+", case["expr"]))
    for name in sorted(set(alert_names)):
        if name not in firing:
            problems.append(f"deploy/monitoring/tests: no case where {name} fires")
        if name not in quiet:
            problems.append(f"deploy/monitoring/tests: no case where {name} stays quiet (exp_alerts: [])")
    for name, _, title, ref in queries:
        if name not in evaluated:
            problems.append(f"deploy/monitoring/tests: {name} (panel {title!r}, query {ref}) is never evaluated with expected samples")

    dashboard = load_dashboard()
    if dashboard.get("schemaVersion") != 39:
        problems.append("dashboard.json: schemaVersion is not 39")
    variables = {variable.get("name"): variable for variable in dashboard.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource" or variables["datasource"].get("query") != "prometheus":
        problems.append("dashboard.json: no `datasource` variable of type datasource for prometheus")
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        for where in [panel] + (panel.get("targets") or []):
            if (where.get("datasource") or {}).get("uid") != "${datasource}":
                problems.append(f"dashboard.json: panel {panel.get('title')!r} does not use the ${{datasource}} variable")
                break
    return problems


def promtool_checks():
    promtool = shutil.which("promtool")
    if promtool is None:
        return ["promtool is not installed (apt-get install prometheus): the rules are not checked"]
    problems = []
    commands = [
        [promtool, "check", "rules", relative(ALERTS), relative(SLO), relative(DASHBOARD_QUERIES)],
        [promtool, "test", "rules"] + [relative(path) for path in sorted(glob.glob(os.path.join(TESTS, "*.yml")))],
        [promtool, "check", "config", relative(PROMETHEUS_CONFIG)],
    ]
    for command in commands:
        print("monitoring: " + " ".join(["promtool"] + command[1:]), file=sys.stderr)
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            problems.append(f"`{' '.join(['promtool'] + command[1:])}` failed")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("recording-rules", "kubernetes"):
        commands.add_parser(name).add_argument("--check", action="store_true", help="fail when the file differs instead of writing it")
    commands.add_parser("names")
    commands.add_parser("check").add_argument("--no-promtool", action="store_true", help="only the checks that need no promtool")
    arguments = parser.parse_args()

    problems = []
    if arguments.command == "recording-rules":
        text, problems = render_recording_rules()
        if not problems:
            problems = write_or_check(DASHBOARD_QUERIES, text, arguments.check, "recording-rules")
    elif arguments.command == "kubernetes":
        problems = write_or_check(PROMETHEUS_RULE, render_prometheus_rule(), arguments.check, "kubernetes")
    elif arguments.command == "names":
        print("\n".join(gateway_metric_names()))
    elif arguments.command == "check":
        text, problems = render_recording_rules()
        problems += write_or_check(DASHBOARD_QUERIES, text, True, "recording-rules")
        problems += write_or_check(PROMETHEUS_RULE, render_prometheus_rule(), True, "kubernetes")
        problems += consistency()
        if not arguments.no_promtool:
            problems += promtool_checks()
        if not problems:
            print("monitoring: alerts, SLO rules, dashboard and their tests are consistent" +
                  ("" if arguments.no_promtool else ", and promtool passes them"), file=sys.stderr)
    for problem in problems:
        print("monitoring: " + problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
