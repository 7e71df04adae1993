"""A session with PortaBilling's JSON API, both login generations.

    api = Session("https://billing.example.net", "qa-robot", password="...")
    api.call("Account/get_account_info", {"id": "15551230001"})

Every method is ``POST {url}/rest/{Module}/{method}`` with the JSON body
``{"params": {...}}``. ``Session/login`` takes ``login`` and ``password`` (or ``token``)
and answers, on current releases, ``access_token`` (sent back as
``Authorization: Bearer ...``), ``refresh_token`` and ``expires_at``; older releases
answer ``session_id``, sent back in the body as ``"auth_info": {"session_id": ...}``.
A call that faults with an invalid or expired session is tried once more after
``Session/refresh_access_token`` (or, without a refresh token, a new login).

Faults are HTTP 500 with ``{"faultcode": ..., "faultstring": ...}``; every failure
(fault, unreachable, TLS, not JSON) is one `ApiError` line naming the method.
Certificates are verified unless told otherwise (``verify``: True, a CA bundle path, or
False).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# the faults PortaBilling answers for a missing, invalid or expired session (as public
# clients retry them: WebTrit's PortaSwitch adapter, porta-one's PHP API client)
AUTH_FAULTS = frozenset({
    "Server.Session.check_auth.auth_failed", "Client.check_auth.envelope_missed",
    "Client.Session.check_auth.failed_to_process_jwt",
    "Client.Session.check_auth.failed_to_process_access_token"})
EARLY_REFRESH = 30.0  # seconds before expires_at a token is refreshed unasked


class ApiError(ValueError):
    """The API could not answer: one line naming the URL and the method."""

    def __init__(self, message: str, faultcode: str = "") -> None:
        super().__init__(message)
        self.faultcode = faultcode


class Session:
    """Logged-in calls to one API user's realm; logs in on the first call."""

    def __init__(self, url: str, login: str, password: str | None = None,
                 token: str | None = None, timeout: float = 10.0,
                 verify: bool | str | Path = True) -> None:
        self.url, self.login_name = url.rstrip("/"), login
        self.secret = {"password": password} if password is not None else {"token": token}
        self.timeout, self.context = timeout, tls_context(verify)
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.session_id: str | None = None
        self.expires_at: float | None = None

    @property
    def generation(self) -> str:
        """"access_token" (current releases), "session_id" (older ones) or "" (none yet)."""
        return "access_token" if self.access_token else \
            "session_id" if self.session_id else ""

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """``Module/method`` (or a path from "/") with ``params``; one refresh or new login
        on a session fault."""
        if not self.generation:
            self.login()
        elif self.expires_at is not None and time.time() > self.expires_at - EARLY_REFRESH:
            self.renew()
        try:
            return self.post(method, params, authorized=True)
        except ApiError as fault:
            if fault.faultcode not in AUTH_FAULTS:
                raise
        self.renew()
        return self.post(method, params, authorized=True)

    def login(self) -> None:
        answer = self.post("Session/login", {"login": self.login_name, **self.secret})
        self.accept(answer, "Session/login")

    def renew(self) -> None:
        """A fresh access token from the refresh token, else a new login."""
        if self.refresh_token is None:
            self.login()
            return
        try:
            answer = self.post("Session/refresh_access_token",
                               {"refresh_token": self.refresh_token})
        except ApiError as fault:
            if fault.faultcode and fault.faultcode not in AUTH_FAULTS:
                raise
            self.login()
            return
        self.accept(answer, "Session/refresh_access_token")

    def accept(self, answer: dict[str, Any], method: str) -> None:
        """Keep the session an answer of login or refresh gives."""
        token, session_id = answer.get("access_token"), answer.get("session_id")
        if isinstance(token, str) and token:
            self.access_token, self.session_id = token, None
            refresh = answer.get("refresh_token")
            self.refresh_token = refresh if isinstance(refresh, str) and refresh else None
            self.expires_at = expiry(answer.get("expires_at"))
        elif isinstance(session_id, str) and session_id:
            self.session_id, self.access_token = session_id, None
            self.refresh_token = self.expires_at = None
        else:
            raise ApiError(f"{self.url}/rest/{method}: answered neither an access_token "
                           "nor a session_id")

    def post(self, method: str, params: dict[str, Any],
             authorized: bool = False) -> dict[str, Any]:
        """One request; its JSON object, or ApiError."""
        body: dict[str, Any] = {"params": params}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if authorized and self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        elif authorized and self.session_id:
            body["auth_info"] = {"session_id": self.session_id}
        where = self.url + (method if method.startswith("/") else f"/rest/{method}")
        request = urllib.request.Request(where, json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout,
                                        context=self.context) as reply:
                return json_object(reply.read(), where)
        except urllib.error.HTTPError as exc:
            raise fault(exc, where) from None
        except urllib.error.URLError as exc:
            raise ApiError(f"{where}: {unreachable(exc.reason)}") from None
        except (OSError, ValueError) as exc:
            raise ApiError(f"{where}: {exc}") from None


def json_object(data: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        head = data[:40].decode("utf-8", "replace").replace("\n", " ")
        raise ApiError(f"{where}: the answer is not JSON (it starts {head!r})") from None
    if not isinstance(document, dict):
        raise ApiError(f"{where}: the answer is not a JSON object")
    return document


def fault(exc: urllib.error.HTTPError, where: str) -> ApiError:
    """An HTTP error as one line; a JSON fault's code and string when it has them."""
    try:
        document = json.loads(exc.read())
    except (ValueError, OSError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict) or "faultcode" not in document:
        return ApiError(f"{where}: HTTP {exc.code} {exc.reason}")
    code, text = str(document["faultcode"]), str(document.get("faultstring", ""))
    line = " ".join(f"{code}: {text}".split())
    return ApiError(f"{where}: HTTP {exc.code}: {line}", faultcode=code)


def unreachable(reason: Any) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (f"TLS: {reason.verify_message or reason} (give xdrs.api.ca_bundle, or "
                "verify: false for a test deployment)")
    if isinstance(reason, ssl.SSLError):
        return f"TLS: {reason}"
    return f"unreachable ({reason})"


def tls_context(verify: bool | str | Path) -> ssl.SSLContext:
    """Verification on by default; a CA bundle file; or none at all (verify=False)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if verify is True:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(verify))
    except (OSError, ssl.SSLError) as exc:
        raise ApiError(f"xdrs.api.ca_bundle: {verify}: {exc}") from None


def expiry(value: Any) -> float | None:
    """expires_at as epoch seconds: a number, ISO 8601, or 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
