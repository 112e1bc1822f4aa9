#!/usr/bin/env python3
"""Live reload of a running poolgate with SIGHUP, as `systemctl reload` does it.

1. A broken policy file + SIGHUP: the running policy stays (alice still gets 200), a failed
   reload is counted in /metrics.
2. A changed policy (editors lose the edit route) + SIGHUP: bob's 200 there becomes a 403.
The original file is restored at the end.

    reload_cases.py --pid PID --policy policy.yaml --tokens tokens.json --proxy URL --admin URL
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time


def status(url, token, method="GET"):
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "-X", method,
         "-H", f"authorization: Bearer {token}", url],
        capture_output=True, text=True, check=False)
    return out.stdout


def reloads(admin):
    """{result: count} of poolgate_reloads_total."""
    text = subprocess.run(["curl", "-s", "--max-time", "5", admin + "/metrics"], capture_output=True, text=True, check=False).stdout
    counts = {}
    for m in re.finditer(r'^poolgate_reloads_total\{[^}]*result="([^"]+)"[^}]*\}\s+(\S+)', text, re.M):
        counts[m.group(1)] = float(m.group(2))
    return counts


def wait_for(pred, secs=10.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def main() -> int:
    ap = argparse.ArgumentParser()
    for a in ("--pid", "--policy", "--tokens", "--proxy", "--admin"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    pid = int(args.pid)
    users = json.load(open(args.tokens, encoding="utf-8"))["users"]
    alice, bob = users["alice"]["access"], users["bob"]["access"]
    original = open(args.policy, encoding="utf-8").read()
    passed = failed = 0

    def verdict(ok, msg):
        nonlocal passed, failed
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(f"  {'ok  ' if ok else 'FAIL'} {msg}")

    def write(text):
        # Replace atomically, as editors and config managers do (and as a file watcher expects).
        tmp = args.policy + ".new"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, args.policy)

    try:
        before = reloads(args.admin)
        write("version: 1\nroutes: [\n")
        os.kill(pid, signal.SIGHUP)
        def failures(counts):
            return sum(v for k, v in counts.items() if k not in ("ok", "success"))

        counted = wait_for(lambda: failures(reloads(args.admin)) > failures(before))
        verdict(counted, f"broken file + SIGHUP: a failed reload is counted ({reloads(args.admin)})")
        code = status(args.proxy + "/admin/x", alice)
        verdict(code == "200", f"broken file + SIGHUP: the running policy stays (alice /admin/x -> {code})")

        verdict(status(args.proxy + "/edit/x", bob, "POST") == "200", "before the change, bob may POST /edit/x")
        changed = original.replace("roles: [admin, editor] }", "roles: [admin] }")
        if changed == original:
            verdict(False, "could not find the edit route's roles in the policy to change them")
        else:
            write(changed)
            os.kill(pid, signal.SIGHUP)
            swapped = wait_for(lambda: status(args.proxy + "/edit/x", bob, "POST") == "403")
            verdict(swapped, "changed file + SIGHUP: bob's POST /edit/x is now refused (403)")
            code = status(args.proxy + "/admin/x", alice)
            verdict(code == "200", f"changed file + SIGHUP: alice still 200 on /admin/x ({code})")
            counts = reloads(args.admin)
            verdict(counts.get("ok", 0) + counts.get("success", 0) >= 1, f"a successful reload is counted ({counts})")
    except ProcessLookupError:
        verdict(False, "poolgate is gone (did SIGHUP kill it?)")
    finally:
        write(original)
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            pass
    print(f"reload: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
