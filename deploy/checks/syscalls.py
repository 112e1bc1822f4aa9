#!/usr/bin/env python3
"""Would the systemd unit's sandbox let a traced poolgate do what it did?

Reads an `strace -f` log of poolgate serving real traffic (tests/e2e/run.sh with E2E_STRACE=1)
and the unit's SystemCallFilter=, RestrictAddressFamilies= and MemoryDenyWriteExecute=, and
reports every system call outside the filter, every socket family outside the list, and any
mapping that is writable and executable at once.

    syscalls.py --unit deploy/systemd/poolgate.service --trace trace.txt
"""

import argparse
import re
import subprocess
import sys


def group_members(group, seen):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if word.startswith("@"):
            if word not in seen:
                seen.add(word)
                names |= group_members(word, seen)
        else:
            names.add(word)
    return names


def expand(words):
    names = set()
    for w in words:
        names |= group_members(w, set()) if w.startswith("@") else {w}
    return names


def unit_settings(path):
    allow, deny, families, mdwe = set(), set(), set(), False
    for line in open(path, encoding="utf-8"):
        key, _, value = line.strip().partition("=")
        if key == "SystemCallFilter":
            if value.startswith("~"):
                deny |= expand(value[1:].split())
            else:
                allow |= expand(value.split())
        elif key == "RestrictAddressFamilies":
            families |= set(value.split())
        elif key == "MemoryDenyWriteExecute":
            mdwe = value in ("yes", "true", "1")
    return allow - deny, families, mdwe


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", required=True)
    ap.add_argument("--trace", required=True)
    args = ap.parse_args()
    allowed, families, mdwe = unit_settings(args.unit)
    used, used_families, wx = set(), set(), []
    call = re.compile(r"^(?:\d+\s+)?([a-z_][a-z_0-9]*)\(")
    for line in open(args.trace, encoding="utf-8", errors="replace"):
        if "resumed>" in line or line.startswith(("+++", "---")):
            continue
        m = call.match(line)
        if not m:
            continue
        used.add(m.group(1))
        fam = re.match(r"^(?:\d+\s+)?socket\((AF_[A-Z0-9]+)", line)
        if fam:
            used_families.add(fam.group(1))
        if re.match(r"^(?:\d+\s+)?(mmap|mprotect|pkey_mprotect)\(", line) and "PROT_EXEC" in line and "PROT_WRITE" in line:
            wx.append(line.strip())
    problems = []
    if not used:
        problems.append(f"{args.trace}: no system calls found; is it an strace log?")
    for name in sorted(used - allowed):
        problems.append(f"system call `{name}` is outside SystemCallFilter (the service would get EPERM)")
    for fam in sorted(used_families - families):
        problems.append(f"socket family {fam} is outside RestrictAddressFamilies")
    if mdwe:
        problems += [f"writable+executable mapping under MemoryDenyWriteExecute: {w}" for w in wx[:5]]
    for p in problems:
        print(f"  {p}")
    print(f"  {len(used)} distinct system calls, socket families {sorted(used_families)}, "
          f"{len(wx)} W+X mappings, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
