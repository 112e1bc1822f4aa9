#!/usr/bin/env python3
"""Checks on rendered Kubernetes manifests that a schema cannot make: do the pieces fit together?

- Services, the PodDisruptionBudget and the ServiceMonitor select the poolgate pods / Service;
  the HPA targets the Deployment; named ports exist.
- Probes: readiness on /readyz, liveness on /healthz, on the admin port.
- The locked-down security context (non-root, read-only root, no capabilities, seccomp).
- terminationGracePeriodSeconds covers preStop + pingora's grace period + shutdown timeout.
- The policy in the ConfigMap listens where the container ports say, and its path is the one
  the container runs with. Writes the policy and its environment out for `poolgate check`.

    manifests.py rendered.yaml [--policy-out DIR]
"""

import argparse
import os
import sys

import yaml

# pingora's timings as poolgate sets them (proxy/src/config.rs ServerSpec defaults).
GRACE_PERIOD_S = 5
SHUTDOWN_TIMEOUT_S = 5
POLICY_PATH = "/etc/poolgate/poolgate.yaml"


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def port_number(spec_address: str) -> int:
    return int(str(spec_address).rsplit(":", 1)[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--policy-out")
    args = ap.parse_args()
    docs = [d for d in yaml.safe_load_all(open(args.rendered, encoding="utf-8")) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    deps = by_kind.get("Deployment", [])
    need(len(deps) == 1, f"expected one Deployment, found {len(deps)}")
    if not deps:
        return report(problems)
    dep = deps[0]
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels", {})
    need(matches(dep["spec"]["selector"].get("matchLabels", {}), pod_labels), "Deployment selector does not match its pod labels")
    spec = pod["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == "poolgate"]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    need({"http", "admin"} <= set(ports), f"container ports named http and admin expected, found {sorted(ports)}")

    # Probes.
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        need(get.get("path") == path, f"{probe} should GET {path}, has {get.get('path')!r}")
        need(get.get("port") in ("admin", ports.get("admin")), f"{probe} should use the admin port, has {get.get('port')!r}")

    # Security context.
    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "runAsNonRoot is not set")
    need(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
    need(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    need(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities do not drop ALL")
    need(not csc.get("capabilities", {}).get("add"), "capabilities are added")
    seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    need(seccomp == "RuntimeDefault", f"seccompProfile is {seccomp!r}, not RuntimeDefault")
    need(spec.get("automountServiceAccountToken") is False, "the service account token is mounted")
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    need("/tmp" in mounts, "no writable /tmp (pingora's upgrade socket) with a read-only root")
    res = c.get("resources", {})
    need("requests" in res and "memory" in res.get("limits", {}), "resources need requests and a memory limit")

    # Shutdown budget.
    pre = c.get("lifecycle", {}).get("preStop", {})
    pre_s = 0
    if "exec" in pre and pre["exec"]["command"][:1] == ["sleep"]:
        pre_s = int(pre["exec"]["command"][1])
    elif "sleep" in pre:
        pre_s = int(pre["sleep"]["seconds"])
    need(pre_s > 0, "no preStop delay: endpoints may still send traffic after the listener closes")
    budget = pre_s + GRACE_PERIOD_S + SHUTDOWN_TIMEOUT_S
    tgps = spec.get("terminationGracePeriodSeconds", 30)
    need(tgps > budget, f"terminationGracePeriodSeconds {tgps} must exceed preStop {pre_s} + grace {GRACE_PERIOD_S} + shutdown {SHUTDOWN_TIMEOUT_S}")

    # Services, PDB, HPA, ServiceMonitor.
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    need(services, "no Service")
    for name, svc in services.items():
        need(matches(svc["spec"].get("selector", {}), pod_labels), f"Service {name} does not select the poolgate pods")
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort")
            need(tp in ports or tp in ports.values(), f"Service {name} targetPort {tp!r} is not a container port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        need(matches(pdb["spec"].get("selector", {}).get("matchLabels", {}), pod_labels), "PodDisruptionBudget selects no poolgate pod")
    need(by_kind.get("PodDisruptionBudget"), "no PodDisruptionBudget")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        need(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], "HPA does not target the Deployment")
        need(hpa["spec"].get("minReplicas", 1) >= 2, "HPA minReplicas < 2: a single replica cannot survive a disruption")
    need(by_kind.get("HorizontalPodAutoscaler"), "no HorizontalPodAutoscaler")
    for sm in by_kind.get("ServiceMonitor", []):
        sel = sm["spec"]["selector"].get("matchLabels", {})
        hits = [s for s in services.values() if matches(sel, s["metadata"].get("labels", {}))]
        need(hits, "ServiceMonitor selects no Service")
        for ep in sm["spec"]["endpoints"]:
            need(any(ep["port"] == p.get("name") for s in hits for p in s["spec"]["ports"]), f"ServiceMonitor port {ep['port']!r} is not on the selected Service")
    annotations = pod["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") == "true":
        need(int(annotations.get("prometheus.io/port", 0)) == ports.get("admin"), "prometheus.io/port is not the admin port")

    # The policy file the pod runs.
    configmaps = {m["metadata"]["name"]: m for m in by_kind.get("ConfigMap", [])}
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    policy_mount = [m for m in c.get("volumeMounts", []) if POLICY_PATH.startswith(m["mountPath"].rstrip("/") + "/")]
    need(policy_mount, f"nothing is mounted at {POLICY_PATH}")
    need(POLICY_PATH in c.get("args", []), f"the container does not run with -c {POLICY_PATH}")
    env = {}
    for ref in c.get("envFrom", []):
        name = ref.get("configMapRef", {}).get("name")
        need(name in configmaps, f"envFrom ConfigMap {name!r} is not in the render")
        env.update(configmaps.get(name, {}).get("data", {}))
    if policy_mount:
        cm_name = vols[policy_mount[0]["name"]]["configMap"]["name"]
        need(cm_name in configmaps, f"policy ConfigMap {cm_name!r} is not in the render")
        text = configmaps.get(cm_name, {}).get("data", {}).get(os.path.basename(POLICY_PATH), "")
        need(text, "the policy ConfigMap has no poolgate.yaml")
        if text:
            policy = yaml.safe_load(text)
            need(port_number(policy["admin"]) == ports.get("admin"), "policy admin port differs from the container's admin port")
            need(str(policy["admin"]).startswith("0.0.0.0:"), "policy admin must listen on 0.0.0.0 for kubelet probes")
            listen_ports = {port_number(listener["address"]) for listener in policy["listen"]}
            need(ports.get("http") in listen_ports, "the container's http port is not a policy listener")
            if args.policy_out:
                os.makedirs(args.policy_out, exist_ok=True)
                with open(os.path.join(args.policy_out, "poolgate.yaml"), "w", encoding="utf-8") as f:
                    f.write(text)
                with open(os.path.join(args.policy_out, "env"), "w", encoding="utf-8") as f:
                    f.writelines(f"{k}={v}\n" for k, v in sorted(env.items()))
    return report(problems, len(docs))


def report(problems, n=0) -> int:
    for p in problems:
        print(f"  {p}")
    print(f"  {n} resources, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
