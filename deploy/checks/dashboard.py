#!/usr/bin/env python3
"""Structural checks on the Grafana dashboard (its queries are checked by metric_names.py).

Unique uid and panel ids; every panel inside the 24-column grid and no two overlapping; every
graph panel has a data source, at least one query and a unit; every `$variable` a query uses is
defined under templating.

    dashboard.py deploy/grafana/poolgate.json
"""

import json
import re
import sys

BUILTIN = {"__rate_interval", "__interval", "__range", "__name"}


def main() -> int:
    dash = json.load(open(sys.argv[1], encoding="utf-8"))
    problems = []
    if not dash.get("uid") or not dash.get("title"):
        problems.append("the dashboard needs a uid and a title")
    defined = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    ids, boxes = set(), []
    for p in dash["panels"]:
        name = p.get("title", "?")
        if p["id"] in ids:
            problems.append(f"panel id {p['id']} is used twice")
        ids.add(p["id"])
        g = p["gridPos"]
        if g["x"] < 0 or g["w"] <= 0 or g["x"] + g["w"] > 24 or g["h"] <= 0:
            problems.append(f"panel `{name}` is outside the 24-column grid: {g}")
        box = (g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"])
        for other_name, o in boxes:
            if box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3]:
                problems.append(f"panels `{name}` and `{other_name}` overlap")
        boxes.append((name, box))
        if p["type"] == "row":
            continue
        if not p.get("datasource"):
            problems.append(f"panel `{name}` has no data source")
        if not p.get("targets"):
            problems.append(f"panel `{name}` has no query")
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"panel `{name}` has no unit")
        for t in p.get("targets", []):
            for var in re.findall(r"\$\{?(\w+)", t.get("expr", "")):
                if var not in defined and var not in BUILTIN:
                    problems.append(f"panel `{name}` uses undefined variable `${var}`")
    for pr in problems:
        print(f"  {pr}")
    print(f"  {len(dash['panels'])} panels, {len(defined)} variables, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
