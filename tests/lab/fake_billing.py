"""A minimal real authorizer for the lab tests (test scaffolding, not the product).

Serves lab/CONTRACT.md on 127.0.0.1 with fixed rules:
- to_user starting with "9": 403 "Forbidden (no rate for destination)";
- to_user starting with "8": 404 "Not Found (no such account)";
- to_domain under .invalid (RFC 2606): 403 "Forbidden (no messaging service policy
  matches domain ...)"; every other domain is served (aliases included);
- otherwise 200 with target = to_user with spaces and "+" removed, and domain = the
  sender's domain (where the recipient account registers).
Every /authorize and /account body is recorded in order.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Kamailio's http_client reuses connections
    wbufsize = -1  # buffered writes: one send per response
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        server: FakeBilling = self.server.owner  # type: ignore[attr-defined]
        answer = server.handle(self.path, body)
        if answer is None:
            self.send_error(404)
            return
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class FakeBilling:
    def __init__(self, port: int = 0) -> None:
        self.authorize: list[dict] = []
        self.account: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FakeBilling:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def handle(self, path: str, body: dict) -> dict | None:
        with self.lock:
            if path == "/authorize":
                self.authorize.append(body)
                return decide(body)
            if path == "/account":
                self.account.append(body)
                return {"ok": True}
            if path == "/accounts":  # Kamailio's batches: recorded body by body
                self.account.extend(body["accounts"])
                return {"results": [{"xdrs": 0} for _ in body["accounts"]]}
        return None


def decide(body: dict) -> dict:
    to_user = body.get("to_user", "")
    if to_user.startswith("9"):
        return {"code": 403, "reason": "Forbidden (no rate for destination)",
                "step": 6, "target": None}
    if to_user.startswith("8"):
        return {"code": 404, "reason": "Not Found (no such account)", "step": 2,
                "target": None}
    to_domain = body.get("to_domain", "")
    if to_domain.endswith(".invalid"):
        return {"code": 403, "step": 2, "target": None,
                "reason": f"Forbidden (no messaging service policy matches domain {to_domain})"}
    target = to_user.replace(" ", "").lstrip("+")
    return {"code": 200, "reason": "OK", "step": None, "target": target,
            "domain": body.get("from_domain", "")}


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (best effort)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, other) as second:
                try:
                    second.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port")
