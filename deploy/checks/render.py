#!/usr/bin/env python3
"""A small kustomize stand-in, used by check.sh only when `kubectl kustomize` is not installed.

It understands what deploy/kubernetes uses, nothing more: resources (files and directories),
components, configMapGenerator (files, literals, behavior create/replace/merge; no hash suffix),
labels (with includeSelectors), namespace, images, and JSON6902 patches with add/replace ops.
Anything else in a kustomization is an error, so it never renders silently wrong.

    render.py deploy/kubernetes/overlays/example > rendered.yaml
"""

import copy
import os
import sys

import yaml

KNOWN = {"apiVersion", "kind", "resources", "components", "configMapGenerator", "labels",
         "namespace", "images", "patches"}


def load_kustomization(path):
    with open(os.path.join(path, "kustomization.yaml"), encoding="utf-8") as f:
        k = yaml.safe_load(f)
    unknown = set(k) - KNOWN
    if unknown:
        raise SystemExit(f"render.py: {path}: unsupported kustomization keys {sorted(unknown)}")
    return k


def build(path):
    k = load_kustomization(path)
    docs = []
    for res in k.get("resources", []) + k.get("components", []):
        full = os.path.normpath(os.path.join(path, res))
        if os.path.isdir(full):
            docs += build(full)
        else:
            with open(full, encoding="utf-8") as f:
                docs += [d for d in yaml.safe_load_all(f) if d]
    for gen in k.get("configMapGenerator", []):
        data = {}
        for item in gen.get("files", []):
            key, _, file = item.partition("=") if "=" in item else (os.path.basename(item), "", item)
            with open(os.path.join(path, file), encoding="utf-8") as f:
                data[key] = f.read()
        for lit in gen.get("literals", []):
            key, _, value = lit.partition("=")
            data[key] = value
        existing = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == gen["name"]]
        behavior = gen.get("behavior", "create")
        if behavior == "create":
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
        elif not existing:
            raise SystemExit(f"render.py: {path}: configMapGenerator {gen['name']} {behavior}s nothing")
        elif behavior == "replace":
            existing[0]["data"] = data
        else:
            existing[0]["data"].update(data)
    for patch in k.get("patches", []):
        target = patch["target"]
        ops = yaml.safe_load(patch["patch"])
        for d in docs:
            if d["kind"] == target.get("kind") and d["metadata"]["name"] == target.get("name"):
                for op in ops:
                    apply_op(d, op)
    for lab in k.get("labels", []):
        for d in docs:
            d["metadata"].setdefault("labels", {}).update(lab["pairs"])
            if lab.get("includeSelectors"):
                add_selector_labels(d, lab["pairs"])
    for img in k.get("images", []):
        for d in docs:
            for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag or 'latest')}"
    if "namespace" in k:
        for d in docs:
            if d["kind"] != "Namespace":
                d["metadata"]["namespace"] = k["namespace"]
    return docs


def apply_op(doc, op):
    if op["op"] not in ("add", "replace"):
        raise SystemExit(f"render.py: unsupported patch op {op['op']}")
    *parents, last = op["path"].strip("/").split("/")
    node = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[int(last) if isinstance(node, list) else last] = copy.deepcopy(op["value"])


def add_selector_labels(d, pairs):
    spec = d.get("spec", {})
    if d["kind"] == "Service":
        spec.setdefault("selector", {}).update(pairs)
    elif d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
        spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
        spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    elif d["kind"] == "PodDisruptionBudget":
        spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)


if __name__ == "__main__":
    yaml.safe_dump_all(build(sys.argv[1]), sys.stdout, sort_keys=False)
