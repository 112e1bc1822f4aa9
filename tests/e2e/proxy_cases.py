#!/usr/bin/env python3
"""The end-to-end table of issue 6, run with curl against a running `poolgate`.

Reads the tokens written by provision.py, sends each case through the proxy and checks the
status, whether the echo backend saw the request, and the identity headers it saw.

    proxy_cases.py --tokens tokens.json --proxy http://127.0.0.1:P --admin http://127.0.0.1:A \
                   --hits hits.jsonl [--metrics-out metrics.txt]
"""

import argparse
import base64
import json
import subprocess
import sys
import time
import uuid

IDENTITY_PREFIX = "x-auth-"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def tampered(token: str, **claims) -> str:
    """The token with claims changed and the original signature kept."""
    head, payload, sig = token.split(".")
    body = b64url_json(payload)
    body.update(claims)
    return f"{head}.{b64url(json.dumps(body).encode())}.{sig}"


def alg_none(token: str) -> str:
    head, payload, _ = token.split(".")
    header = b64url_json(head)
    header["alg"] = "none"
    return f"{b64url(json.dumps(header).encode())}.{payload}."


def curl(url: str, method: str = "GET", headers: dict | None = None, path_as_is: bool = False):
    """(status, response headers lower-cased, body) using the real curl binary."""
    cmd = ["curl", "-s", "-S", "--max-time", "10", "-X", method, "-D", "-", url]
    if path_as_is:
        cmd.insert(1, "--path-as-is")
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0:
        return 0, {}, out.stderr.decode(errors="replace")
    raw = out.stdout.decode(errors="replace")
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    resp_headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        resp_headers[name.strip().lower()] = value.strip()
    return status, resp_headers, body


def backend_saw(hits_path: str, case_id: str):
    """The echo backend's record of the request tagged with case_id, or None."""
    try:
        with open(hits_path, encoding="utf-8") as f:
            for line in f:
                seen = json.loads(line)
                if case_id in seen["headers"].get("x-e2e-case", []):
                    return seen
    except FileNotFoundError:
        pass
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--hits", required=True)
    ap.add_argument("--metrics-out")
    args = ap.parse_args()
    t = json.load(open(args.tokens, encoding="utf-8"))
    users, other = t["users"], t["other_pool"]["users"]
    alice_sub = users["alice"]["sub"]

    def bearer(tok):
        return {"authorization": f"Bearer {tok}"}

    def saw_alice_identity(seen):
        h = seen["headers"]
        subs = h.get(f"{IDENTITY_PREFIX}sub", [])
        if subs != [alice_sub]:
            return f"backend saw {IDENTITY_PREFIX}sub={subs!r}, want [{alice_sub!r}] (client spoof must be stripped)"
        groups = [v for k, vs in h.items() if k.startswith(IDENTITY_PREFIX) and "group" in k for v in vs]
        if not any("admin" in v for v in groups):
            return f"backend saw no {IDENTITY_PREFIX}*group* header naming admin: {groups!r}"
        if "mallory" in json.dumps(h):
            return "a client-sent identity header reached the backend"
        return None

    spoof = {f"{IDENTITY_PREFIX}sub": "mallory", f"{IDENTITY_PREFIX}groups": "mallory-admins"}
    # (name, method, path, headers, expected status(es), backend reached?, extra check, path_as_is)
    cases = [
        ("admin -> admin route", "GET", "/admin/x", {**bearer(users["alice"]["access"]), **spoof}, {200}, True, saw_alice_identity, False),
        ("admin refreshed token -> admin route", "GET", "/admin/x", bearer(t["refreshed_access"]), {200}, True, None, False),
        ("editor -> admin route", "GET", "/admin/x", bearer(users["bob"]["access"]), {403}, False, None, False),
        ("editor -> edit route", "POST", "/edit/x", bearer(users["bob"]["access"]), {200}, True, None, False),
        ("reader -> read route", "GET", "/read/x", bearer(users["carol"]["access"]), {200}, True, None, False),
        ("reader -> edit route", "POST", "/edit/x", bearer(users["carol"]["access"]), {403}, False, None, False),
        ("no group -> read route", "GET", "/read/x", bearer(users["dave"]["access"]), {403}, False, None, False),
        ("no group -> admin route", "GET", "/admin/x", bearer(users["dave"]["access"]), {403}, False, None, False),
        ("no token", "GET", "/read/x", {}, {401}, False, "www-authenticate", False),
        ("ID token where access required", "GET", "/admin/x", bearer(users["alice"]["id"]), {401}, False, None, False),
        ("refresh token", "GET", "/admin/x", bearer(users["alice"]["refresh"]), {401}, False, None, False),
        ("token from another pool", "GET", "/read/x", bearer(other["erin"]["access"]), {401}, False, None, False),
        ("garbage token", "GET", "/read/x", bearer("not-a-jwt"), {401}, False, None, False),
        ("groups claim tampered", "GET", "/admin/x", bearer(tampered(users["dave"]["access"], **{"cognito:groups": ["admin"]})), {401}, False, None, False),
        ("alg none", "GET", "/admin/x", bearer(alg_none(users["alice"]["access"])), {401}, False, None, False),
        ("dot-dot into admin", "GET", "/read/../admin/x", bearer(users["carol"]["access"]), {400, 403}, False, None, True),
        ("no route", "GET", "/nowhere", bearer(users["alice"]["access"]), {404}, False, None, False),
    ]

    passed = failed = 0
    for name, method, path, headers, want, reach, extra, as_is in cases:
        case_id = uuid.uuid4().hex
        status, resp_headers, _body = curl(
            args.proxy + path, method, {**headers, "x-e2e-case": case_id}, path_as_is=as_is
        )
        seen = backend_saw(args.hits, case_id)
        problems = []
        if status not in want:
            problems.append(f"status {status}, want {sorted(want)}")
        if reach and seen is None:
            problems.append("backend was not reached")
        if not reach and seen is not None:
            problems.append("backend WAS reached (fail open)")
        if extra == "www-authenticate":
            if not resp_headers.get("www-authenticate", "").lower().startswith("bearer"):
                problems.append(f"www-authenticate {resp_headers.get('www-authenticate')!r}")
        elif callable(extra) and seen is not None:
            msg = extra(seen)
            if msg:
                problems.append(msg)
        if problems:
            failed += 1
            print(f"  FAIL {name}: {'; '.join(problems)}")
        else:
            passed += 1
            print(f"  ok   {name} -> {status}")

    # The admin endpoint: after this traffic, every series the metrics contract (the team's list,
    # docs/architecture.md) promises for it must be there, under exactly these names.
    status, _, metrics = curl(args.admin + "/metrics")
    if args.metrics_out:
        with open(args.metrics_out, "w", encoding="utf-8") as f:
            f.write(metrics)
    want_series = [
        "poolgate_requests_total{",
        "poolgate_request_duration_seconds_count{",
        "poolgate_token_cache_hits_total",
        "poolgate_token_cache_misses_total",
        'poolgate_jwks_fetches_total{issuer="pool",result="ok"}',
        'poolgate_jwks_keys{issuer="pool"}',
        'poolgate_jwks_age_seconds{issuer="pool"}',
        "poolgate_config_last_reload_success_timestamp_seconds",
        "poolgate_build_info{",
    ]
    lines = [line for line in metrics.splitlines() if line and not line.startswith("#")]
    for series in want_series:
        # Label order is the exporter's: match the name, then every wanted label pair.
        name, _, labels = series.partition("{")
        pairs = [p for p in labels.rstrip("}").split(",") if p]
        found = any(
            (line.startswith(name + "{") or line.startswith(name + " ")) and all(p in line for p in pairs)
            for line in lines
        )
        if status == 200 and found:
            passed += 1
            print(f"  ok   /metrics has {series}")
        else:
            failed += 1
            print(f"  FAIL /metrics lacks {series} (status {status})")

    print(f"proxy {t['emulator']}: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"  ({time.monotonic() - start:.1f}s)")
    sys.exit(code)
