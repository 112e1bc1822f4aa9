#!/usr/bin/env python3
"""A backend for the end-to-end test: answers every request with what it received, as JSON.

Binds 127.0.0.1 on an ephemeral port, writes the port to --port-file, and appends one JSON line
per request to --hits (so the test can tell whether a denied request ever reached it).

    echo_backend.py --port-file port.txt --hits hits.jsonl
"""

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits_path = ""

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = {
            "method": self.command,
            "path": self.path,
            # Lower-cased names; repeated headers are kept as a list.
            "headers": {},
            "body_len": len(body),
        }
        for name, value in self.headers.items():
            seen["headers"].setdefault(name.lower(), []).append(value)
        line = json.dumps(seen)
        if self.path.startswith("/healthz"):
            payload = b"ok\n"
            ctype = "text/plain"
        else:
            # Health checks are not recorded: the hits file is for requests a client sent.
            with open(self.hits_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
            payload = line.encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any

    def log_message(self, *args):  # quiet: the hits file is the record
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--hits", required=True)
    args = ap.parse_args()
    Echo.hits_path = args.hits
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    with open(args.port_file, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
