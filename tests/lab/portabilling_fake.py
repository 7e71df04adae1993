"""A conformance fake of PortaBilling's JSON API, as its public clients use it.

Written from public sources only, never from imsim's billing service:
- PortaBilling API docs (https://www.portaone.com/docs/PortaBilling_API.html):
  ``POST /rest/{Module}/{method}`` with a JSON body ``{"params": {...}}``;
- WebTrit's PortaSwitch adapter (bss/adapters/portaswitch/api/account.py, admin.py):
  ``Session/login`` with ``login`` + ``password`` or ``token``; ``access_token`` sent as
  ``Authorization: Bearer``; ``Session/refresh_access_token {"refresh_token"}``; a call
  retried after the faults ``Server.Session.check_auth.auth_failed`` and
  ``Client.Session.check_auth.failed_to_process_access_token``;
  ``Account/get_account_info`` with ``id``; ``Account/get_xdr_list`` with ``limit``,
  ``offset``, ``get_total``, ``from_date`` / ``to_date`` as 'YYYY-MM-DD HH:MM:SS' (both
  required, its docs say), ``show_unsuccessful: 1`` to list the unsuccessful attempts
  too (PortaBilling's xDR history leaves them out unless "Show Unsuccessful Attempts"
  is chosen: https://docs.portaone.com/resources/help/mr101/representative/cdr_browser.htm);
- Alexey Pavlyuts' PortaOne Billing JSON API wrappers for PHP (PortaApi and the older
  Portaone\\Billing): faults are HTTP 500 with ``faultcode`` and ``faultstring``; older
  releases answer ``session_id``, sent back as ``auth_info``; relogin on
  ``Server.Session.check_auth.auth_failed``.

What the public sources do not say is chosen here and marked "(ours)": the fault code of
a refused login, the text of the faults, the exact lifetime answer of ``expires_at``.
Not modelled: the older PHP wrapper posts ``auth_info`` and ``params`` as form fields
holding JSON text; the fake (like the client) speaks the JSON body only.

    fake = PortaBillingFake(generation="access_token", time_zone="Europe/Prague").start()
    fake.account("15551230001", i_account=7001)
    fake.xdr("15551230001", CLI=..., CLD=..., at=epoch, charged_amount=0.01)
    fake.url, fake.login, fake.password
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

AUTH_FAILED = "Server.Session.check_auth.auth_failed"
BAD_TOKEN = "Client.Session.check_auth.failed_to_process_access_token"
LOGIN_REFUSED = "Server.Session.login.auth_failed"  # (ours)
DATE = "%Y-%m-%d %H:%M:%S"


class Fault(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        fake: PortaBillingFake = self.server.fake  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, answer = fake.answer(self.path, self.headers.get("Authorization", ""), body)
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if isinstance(answer, bytes)
                         else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class PortaBillingFake:
    """One API user's realm: its accounts and their xDRs, both login generations."""

    def __init__(self, generation: str = "access_token", time_zone: str = "UTC",
                 token_seconds: float = 3600.0, seed: int = 0) -> None:
        assert generation in ("access_token", "session_id")
        self.generation, self.zone = generation, ZoneInfo(time_zone)
        self.token_seconds = token_seconds
        self.login, self.password, self.token = "qa-robot", secrets.token_hex(8), "api-token"
        self.tokens: dict[str, float] = {}  # access token or session_id -> expiry
        self.refresh_tokens: dict[str, bool] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.xdrs: list[dict[str, Any]] = []
        self.random = random.Random(seed)
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (method, params), in order
        self.feed: Callable[[PortaBillingFake], None] | None = None  # before each list
        self.faults: dict[str, tuple[str, str, int]] = {}  # method -> fault, how often
        self.garbage: set[str] = set()  # methods whose next answer is not JSON
        self.lock = threading.RLock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> PortaBillingFake:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # the realm's data ----------------------------------------------------------------
    def account(self, account_id: str, i_account: int) -> None:
        self.accounts[account_id] = {"i_account": i_account, "id": account_id,
                                     "i_customer": 1, "billing_model": 1, "blocked": "N"}

    def xdr(self, account_id: str, CLI: str, CLD: str, at: float,  # noqa: N803
            charged_amount: float, charged_quantity: int = 1, call_id: str | None = None,
            failed: bool = False, i_service_type: int = 21) -> dict[str, Any]:
        """One xDR of the account at Unix time ``at``, inserted at a random place."""
        row = {"i_xdr": 100_000 + len(self.xdrs), "account_id": account_id, "CLI": CLI,
               "CLD": CLD, "connect_time": self.local(at), "disconnect_time": self.local(at),
               "charged_amount": charged_amount, "charged_quantity": charged_quantity,
               "h323_conf_id": secrets.token_hex(16).upper(), "i_service": 3,
               "i_service_type": i_service_type, "description": "Messaging",
               "failed": int(failed),
               "bit_flags": 0, "disconnect_cause": "", "disconnect_reason": ""}
        if call_id is not None:
            row["call_id"] = call_id
        with self.lock:
            self.xdrs.insert(self.random.randint(0, len(self.xdrs)), row)
        return row

    def local(self, at: float) -> str:
        """Unix time as the API user sees it: 'YYYY-MM-DD HH:MM:SS' in their zone."""
        return dt.datetime.fromtimestamp(at, self.zone).strftime(DATE)

    def expire_sessions(self) -> None:
        """Every access token and session_id ends now (refresh tokens stay valid)."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def fail_next(self, method: str, code: str, text: str, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` fault (HTTP 500)."""
        self.faults[method] = (code, text, times)

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    # the API -----------------------------------------------------------------------
    def answer(self, path: str, authorization: str, body: bytes) -> tuple[int, Any]:
        method = path.removeprefix("/rest/")
        if method in self.garbage:
            self.garbage.discard(method)
            return 200, b"<html>maintenance</html>"
        try:
            document = json.loads(body or b"{}")
            params = document.get("params", {})
            with self.lock:
                self.calls.append((method, params))
                if method in self.faults:
                    code, text, times = self.faults.pop(method)
                    if times > 1:
                        self.faults[method] = (code, text, times - 1)
                    raise Fault(code, text)
                return 200, self.dispatch(method, params, authorization, document)
        except Fault as fault:  # PortaBilling answers every fault with HTTP 500
            return 500, {"faultcode": fault.code, "faultstring": fault.text}
        except (ValueError, AttributeError, TypeError) as exc:
            return 500, {"faultcode": "Client.bad_request", "faultstring": str(exc)}  # (ours)

    def dispatch(self, method: str, params: dict[str, Any], authorization: str,
                 document: dict[str, Any]) -> dict[str, Any]:
        if method == "Session/login":
            return self.session_login(params)
        if method == "Session/refresh_access_token":
            return self.refresh(params)
        self.check(authorization, document)
        if method == "Account/get_account_info":
            found = self.accounts.get(str(params.get("id", "")))
            return {"account_info": dict(found)} if found else {}
        if method == "Account/get_xdr_list":
            return self.get_xdr_list(params)
        raise Fault("Server.method_not_found", f"no method {method}")  # (ours)

    def session_login(self, params: dict[str, Any]) -> dict[str, Any]:
        secret_ok = params.get("password") == self.password or \
            params.get("token") == self.token
        if params.get("login") != self.login or not secret_ok:
            raise Fault(LOGIN_REFUSED, "Login failed: wrong login, password or token")
        return self.open()

    def open(self) -> dict[str, Any]:
        key = secrets.token_urlsafe(24)
        until = time.time() + self.token_seconds
        self.tokens[key] = until
        if self.generation == "session_id":
            return {"session_id": key}
        refresh = secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = True
        expires = dt.datetime.fromtimestamp(until, dt.UTC).strftime(DATE)  # (ours: UTC)
        return {"access_token": key, "refresh_token": refresh, "expires_at": expires}

    def refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.generation != "access_token" or \
                not self.refresh_tokens.pop(str(params.get("refresh_token")), False):
            raise Fault(AUTH_FAILED, "refresh token unknown or used")
        return self.open()

    def check(self, authorization: str, document: dict[str, Any]) -> None:
        if self.generation == "access_token":
            if not authorization.startswith("Bearer "):
                raise Fault(AUTH_FAILED, "Authorization header missing")
            key = authorization[7:]
            if key not in self.tokens:
                raise Fault(BAD_TOKEN, "Failed to process access token")
        else:
            info = document.get("auth_info")
            info = json.loads(info) if isinstance(info, str) else info
            key = str((info or {}).get("session_id", ""))
        if self.tokens.get(key, 0.0) < time.time():
            raise Fault(AUTH_FAILED, "Session expired or unknown")

    def get_xdr_list(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.feed is not None:
            self.feed(self)
        i_account = params.get("i_account")
        if not isinstance(i_account, int):
            raise Fault("Client.Account.get_xdr_list.i_account_required",  # (ours)
                        "i_account is required")
        since, until = (self.moment(params, name) for name in ("from_date", "to_date"))
        owner = next((a for a, info in self.accounts.items()
                      if info["i_account"] == i_account), None)
        service = params.get("i_service_type")
        failed_too = bool(params.get("show_unsuccessful"))
        rows = [x for x in self.xdrs if x["account_id"] == owner
                and since <= self.moment(x, "connect_time") <= until
                and service in (None, x["i_service_type"])
                and (failed_too or not x["failed"])]
        offset, limit = int(params.get("offset", 0)), int(params.get("limit", 0)) or None
        page = rows[offset:offset + limit if limit else None]
        answer: dict[str, Any] = {"xdr_list": [dict(x) for x in page]}
        if params.get("get_total"):
            answer["total"] = len(rows)
        return answer

    def moment(self, fields: dict[str, Any], name: str) -> dt.datetime:
        value = fields.get(name)
        if not isinstance(value, str):
            raise Fault("Client.Account.get_xdr_list.date_required",  # (ours)
                        f"{name} is required ('YYYY-MM-DD HH:MM:SS')")
        try:
            return dt.datetime.strptime(value, DATE).replace(tzinfo=self.zone)
        except ValueError:
            raise Fault("Client.Account.get_xdr_list.bad_date",  # (ours)
                        f"{name}: {value!r} is not 'YYYY-MM-DD HH:MM:SS'") from None
