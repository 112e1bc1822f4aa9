#!/usr/bin/env python3
"""A stand-in for the `poolgate` binary, only to test the e2e harness itself.

It is NOT poolgate and proves nothing about it: it exists so that run.sh, the policy template,
the echo backend and proxy_cases.py can be exercised end to end before the real binary exists,
and so that a failure with the real binary points at the binary, not at the harness.

    run.sh with POOLGATE_BIN=tests/e2e/selftest/fake-poolgate

Understands just the e2e policy: one issuer (issuer + jwks_url, RS256 by kid, iss, exp,
client_id, token_use), group -> role mapping, route roles and role statements by path prefix.
"""

import base64
import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

COUNTS = {}
# Deliberate flaws, to show that the e2e table catches them: no_pool_check | no_strip | fail_open.
# (A token from another pool differs in both `iss` and `client_id`: with the emulators' API a client
# id cannot be chosen, so the table cannot isolate the `iss` check; the authorizer's tests do.)
FLAW = os.environ.get("FAKE_POOLGATE_FLAW", "")


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def expand(text):
    return re.sub(r"\$\{(\w+)\}", lambda m: os.environ.get(m.group(1), ""), text)


def load(path):
    return yaml.safe_load(expand(open(path, encoding="utf-8").read()))


def verify(token, issuer, keys):
    """Claims of a valid access token, or None."""
    try:
        head, payload, sig = token.split(".")
        header, claims = json.loads(b64d(head)), json.loads(b64d(payload))
        jwk = keys.get(header.get("kid"))
        if header.get("alg") != "RS256" or jwk is None:
            return None
        key = rsa.RSAPublicNumbers(int.from_bytes(b64d(jwk["e"]), "big"), int.from_bytes(b64d(jwk["n"]), "big")).public_key()
        key.verify(b64d(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return None
    same_pool = claims.get("iss") == issuer["issuer"] and claims.get("client_id") in issuer["app_clients"]
    ok = ((FLAW == "no_pool_check" or same_pool) and claims.get("token_use") == issuer.get("token_use", "access")
          and claims.get("exp", 0) > time.time())
    return claims if ok else None


def allowed(policy, route, claims, method, path):
    groups = claims.get("cognito:groups", [])
    roles = {r for g in groups for r in policy["role_mapping"]["groups"].get(g, [])}
    roles &= set(route["auth"].get("roles", roles))
    for role in roles:
        for st in policy["roles"][role].get("allow", []):
            if ("*" in st["methods"] or method in st["methods"]) and any(path.startswith(p.rstrip("*")) for p in st["paths"]):
                return True
    return False


RELOADS = {}


def run(path):
    state = {"policy": load(path)}

    def reload(*_):
        try:
            new = load(path)
            new["routes"][0]["match"]["path"]  # a broken file fails here or in load()
            state["policy"] = new
            RELOADS["success"] = RELOADS.get("success", 0) + 1
        except Exception:
            RELOADS["failure"] = RELOADS.get("failure", 0) + 1

    signal.signal(signal.SIGHUP, reload)
    policy = state["policy"]
    (name, issuer), = policy["issuers"].items()
    keys = {k["kid"]: k for k in json.load(urllib.request.urlopen(issuer["jwks_url"], timeout=5))["keys"]}
    upstreams = {n: u["targets"][0] for n, u in policy["upstreams"].items()}

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status, body=b"", headers=()):
            COUNTS[status] = COUNTS.get(status, 0) + 1
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def handle_any(self):
            path = self.path.split("?")[0]
            if "/../" in path or path.endswith("/.."):
                return self.answer(400)
            policy = state["policy"]
            route = next((r for r in policy["routes"] if path.startswith(r["match"]["path"].rstrip("*"))), None)
            if route is None:
                return self.answer(404)
            auth = self.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return self.answer(401, headers=[("www-authenticate", 'Bearer realm="poolgate"')])
            claims = verify(auth[7:], issuer, keys)
            if claims is None:
                return self.answer(401, headers=[("www-authenticate", 'Bearer error="invalid_token"')])
            if FLAW != "fail_open" and not allowed(policy, route, claims, self.command, path):
                return self.answer(403)
            headers = {k: v for k, v in self.headers.items() if FLAW == "no_strip" or not k.lower().startswith("x-auth-")}
            headers.setdefault("x-auth-sub", claims["sub"])
            headers["x-auth-groups"] = ",".join(claims.get("cognito:groups", []))
            host, port = upstreams[route["upstream"]].rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request(self.command, self.path, body=None, headers=headers)
            resp = conn.getresponse()
            self.answer(resp.status, resp.read())

        do_GET = do_POST = do_PUT = do_DELETE = handle_any

        def log_message(self, *a):
            pass

    class Admin(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/metrics":
                lines = [f'poolgate_requests_total{{status="{s}"}} {n}' for s, n in COUNTS.items()]
                lines += [f'poolgate_jwks_keys{{issuer="{name}"}} {len(keys)}', 'poolgate_build_info{version="fake"} 1',
                          f'poolgate_jwks_fetches_total{{issuer="{name}",result="ok"}} 1',
                          f'poolgate_jwks_age_seconds{{issuer="{name}"}} 1',
                          'poolgate_request_duration_seconds_count{route="admin"} 1',
                          'poolgate_token_cache_hits_total 0', 'poolgate_token_cache_misses_total 1',
                          'poolgate_config_last_reload_success_timestamp_seconds 1']
                lines += [f'poolgate_reloads_total{{result="{r}"}} {n}' for r, n in RELOADS.items()]
                body = ("\n".join(lines) + "\n").encode()
            else:
                body = b"ok\n"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    def serve(addr, handler):
        host, port = addr.rsplit(":", 1)
        ThreadingHTTPServer((host, int(port)), handler).serve_forever()

    threading.Thread(target=serve, args=(policy["admin"], Admin), daemon=True).start()
    serve(policy["listen"][0]["address"], Proxy)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cmd, conf = sys.argv[1], sys.argv[sys.argv.index("-c") + 1]
    if cmd == "check":
        load(conf)
        sys.exit(0)
    run(conf)
