#!/usr/bin/env python3
"""Checks on deploy/Dockerfile that a linter does not make: it agrees with the other deploy files.

Multi-stage; the builder installs cmake (pingora); the runtime runs as a non-root user, exposes
the admin port, health-checks /healthz there, stops with SIGTERM and runs the documented
config path (the same one the Kubernetes Deployment and the systemd unit use).

    dockerfile.py deploy/Dockerfile deploy/systemd/poolgate.service
"""

import re
import sys

ADMIN_PORT = "9090"
POLICY_PATH = "/etc/poolgate/poolgate.yaml"


def instructions(text):
    """[(INSTRUCTION, args)] with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def main() -> int:
    dockerfile, unit = sys.argv[1], sys.argv[2]
    ins = instructions(open(dockerfile, encoding="utf-8").read())
    problems = []
    froms = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    if len(froms) < 2:
        problems.append("not a multi-stage build")
    builder = ins[froms[0]:froms[-1]] if froms else []
    runtime = ins[froms[-1]:] if froms else ins
    if not any(w == "RUN" and "cmake" in a for w, a in builder):
        problems.append("the build stage does not install cmake (pingora's build needs it)")
    users = [a for w, a in runtime if w == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the runtime stage does not switch to a non-root USER (has {users})")
    exposed = " ".join(a for w, a in runtime if w == "EXPOSE").split()
    if ADMIN_PORT not in exposed:
        problems.append(f"admin port {ADMIN_PORT} is not EXPOSEd ({exposed})")
    health = [a for w, a in runtime if w == "HEALTHCHECK"]
    if not health or "/healthz" not in health[0] or ADMIN_PORT not in health[0]:
        problems.append(f"HEALTHCHECK does not query /healthz on port {ADMIN_PORT}")
    if ("STOPSIGNAL", "SIGTERM") not in runtime:
        problems.append("STOPSIGNAL is not SIGTERM (pingora's graceful stop)")
    cmd = " ".join(a for w, a in runtime if w in ("CMD", "ENTRYPOINT"))
    if POLICY_PATH not in cmd:
        problems.append(f"the image does not run with {POLICY_PATH}")
    unit_text = open(unit, encoding="utf-8").read()
    if not re.search(rf"^ExecStart=\S+ run -c {re.escape(POLICY_PATH)}$", unit_text, re.M):
        problems.append(f"the systemd unit does not run `poolgate run -c {POLICY_PATH}`")
    for p in problems:
        print(f"  {p}")
    print(f"  {len(ins)} instructions, {len(froms)} stages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
