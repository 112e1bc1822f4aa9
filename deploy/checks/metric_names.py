#!/usr/bin/env python3
"""Every metric and label that the alerts and the dashboard query must be one poolgate exports.

The exported list is docs/architecture.md's metrics table (the project's documented contract).
With --live FILE (a scrape of a running poolgate's /metrics), names are checked against what the
binary really exports as well. Queries are parsed with a real PromQL parser (promql-parser);
the dashboard's queries are also written to a rules file for `promtool check rules` (--emit-rules).

    metric_names.py --docs docs/architecture.md --alerts deploy/prometheus/alerts.yaml \
        --dashboard deploy/grafana/poolgate.json [--live metrics.txt] [--emit-rules out.yaml]
"""

import argparse
import json
import re
import sys

import promql_parser
import yaml

# Labels any scraped series may carry (added by Prometheus), and the histogram's bucket label.
TARGET_LABELS = {"job", "instance"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Grafana variables replaced by literal values before parsing.
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    '"$job"': '".*"',
    '"$route"': '".*"',
}


def documented_metrics(docs_path: str) -> dict:
    """{name: {labels}} from the markdown table rows: | `name`, `name2` | type | labels |."""
    metrics = {}
    row = re.compile(r"^\|\s*(`poolgate_[^|]+)\|\s*(\w+)\s*\|\s*([^|]*)\|")
    with open(docs_path, encoding="utf-8") as f:
        for line in f:
            m = row.match(line)
            if not m:
                continue
            names = re.findall(r"`(poolgate_[a-z0-9_]+)`", m.group(1))
            kind = m.group(2)
            labels = {x.strip() for x in m.group(3).split(",") if x.strip()}
            for name in names:
                metrics[name] = labels
                if kind == "histogram":
                    for suffix in HISTOGRAM_SUFFIXES:
                        metrics[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return metrics


def selectors(node, out):
    """Collect (name, matcher label names) of every vector selector in a parsed expression."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        labels = set()
        matchers = getattr(node, "matchers", None)
        for m in getattr(matchers, "matchers", []) or []:
            labels.add(m.name)
        out.append((node.name, labels))
        return
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            selectors(child, out)
    for child in getattr(node, "args", None) or []:
        selectors(child, out)


def grouping_labels(expr: str) -> set:
    return {lab.strip() for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for lab in grp.split(",") if lab.strip()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", required=True)
    ap.add_argument("--alerts", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--live")
    ap.add_argument("--emit-rules")
    args = ap.parse_args()

    exported = documented_metrics(args.docs)
    problems = []
    if len(exported) < 10:
        problems.append(f"{args.docs}: found only {len(exported)} metrics in its table; has the format changed?")

    queries = []  # (where, expr)
    for group in yaml.safe_load(open(args.alerts, encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            queries.append((f"alert {rule.get('alert') or rule.get('record')}", rule["expr"]))
    dash = json.load(open(args.dashboard, encoding="utf-8"))
    dash_queries = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            expr = t["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            if "$" in expr:
                problems.append(f"panel `{panel['title']}`: unknown dashboard variable in {expr!r}")
            dash_queries.append((f"panel `{panel['title']}`", expr))
    for tv in dash.get("templating", {}).get("list", []):
        q = tv.get("definition", "")
        m = re.match(r"label_values\((.*),\s*(\w+)\)$", q)
        if m:
            dash_queries.append((f"variable `{tv['name']}`", m.group(1).replace('"$job"', '".*"')))
    queries += dash_queries

    all_labels = set().union(*exported.values()) | TARGET_LABELS | {"le"} if exported else set()
    used = set()
    for where, expr in queries:
        try:
            ast = promql_parser.parse(expr)
        except Exception as e:  # the parser raises its own error types
            problems.append(f"{where}: does not parse: {e}")
            continue
        found = []
        selectors(ast, found)
        if not found:
            problems.append(f"{where}: selects no metric")
        for name, labels in found:
            used.add(name)
            if name not in exported:
                problems.append(f"{where}: metric `{name}` is not one poolgate exports")
                continue
            unknown = labels - exported[name] - TARGET_LABELS
            if unknown:
                problems.append(f"{where}: `{name}` has no label(s) {sorted(unknown)}")
        for lab in grouping_labels(expr) - all_labels:
            problems.append(f"{where}: groups by unknown label `{lab}`")

    if args.live:
        live = set()
        for line in open(args.live, encoding="utf-8"):
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)", line)
            if m and not line.startswith("#"):
                live.add(m.group(1))
        for name in sorted(n for n in live if n.startswith("poolgate_") and n not in exported):
            problems.append(f"live /metrics exports `{name}`, which docs/architecture.md does not list")
        # Labelled families appear only once a series exists; unlabelled ones must always be there.
        always = {n for n, labels in exported.items() if not labels and not n.endswith(HISTOGRAM_SUFFIXES)}
        for name in sorted(always - live):
            problems.append(f"live /metrics lacks `{name}` (unlabelled: always exported)")
        for name in sorted((used & set(exported)) - live):
            print(f"  note: `{name}` not in the live scrape (no series yet)")

    if args.emit_rules:
        rules = [{"record": f"dashboard:check:{i}", "expr": e} for i, (_, e) in enumerate(dash_queries)]
        with open(args.emit_rules, "w", encoding="utf-8") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)

    for p in problems:
        print(f"  {p}")
    print(f"  {len(queries)} queries, {len(used)} distinct metrics, {len(exported)} exported names known")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
