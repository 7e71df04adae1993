"""The billing service's JSON API, in PortaBilling's dialect: sessions and xDR lists.

    POST /rest/Session/login         {"params": {"login": ..., "password": ...}}
                                     -> {"access_token", "refresh_token", "expires_at",
                                         "session_id"} (one value: the older dialect's too)
    POST /rest/Session/refresh_access_token  {"params": {"refresh_token": ...}} -> the same
    POST /rest/Account/get_account_info      {"params": {"id": "15551230001"}}
                                     -> {"account_info": {"i_account": 1, "id": ...}}, or {}
    POST /rest/Account/get_xdr_list  {"params": {"i_account"? or "account_id"?,
                                      "from_date"?, "to_date"?, "limit"?, "offset"?,
                                      "get_total"?, "show_unsuccessful"?}}
                                     (no failed attempt is stored: the last is moot)
                                     session: header "Authorization: Bearer <id>",
                                     header "X-Session-Id", or body "auth_info": {"session_id"}
                                     -> {"xdr_list": [{i_xdr, env, account_id, CLI, CLD, ...}],
                                         "total"?}

An account's ``i_account`` is its place among the scenario's accounts in id order (from
1), the same after a restart. Unlike PortaBilling (HTTP 500 for every fault), faults keep
telling HTTP statuses apart; their faultcodes are PortaBilling's where it has one.

Dates are "YYYY-MM-DD HH:MM:SS" (UTC, PortaBilling's format) or ISO 8601 with a zone;
``connect_time`` comes back as ISO 8601, money as exact decimal strings. Errors are JSON
faults (``faultcode``, ``faultstring``): 400 bad request, 401 no session, 403 bad
session or login, 404 unknown account.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from decimal import Decimal
from typing import Any

from imsim.rules.message import Xdr
from lab.httpd import Deferred, Reply, Request, error
from lab.xdr_store import XdrStore

log = logging.getLogger("imsim.billing_service")

SESSION_SECONDS = 3600.0
MAX_SESSIONS = 1000
MAX_LIMIT = 10_000


class BadInput(Exception):
    """A request the API refuses with a 4xx JSON fault."""

    def __init__(self, status: int, faultcode: str, faultstring: str) -> None:
        super().__init__(faultstring)
        self.reply = error(status, faultcode, faultstring)


def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or BadInput(400)."""
    try:
        document = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadInput(400, "Client.json", "the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadInput(400, "Client.json", "the body must be a JSON object")
    return document


class Api:
    """Sessions and the xDR list, over an `XdrStore`; `accounts` are the known ids."""

    def __init__(self, store: XdrStore, login: str, password: str,
                 accounts: set[str]) -> None:
        self.store, self.login_name, self.password = store, login, password
        self.accounts = accounts
        self.sessions: OrderedDict[str, float] = OrderedDict()
        self.refresh_tokens: OrderedDict[str, float] = OrderedDict()
        self.i_accounts = {account: n for n, account in enumerate(sorted(accounts), 1)}

    def handle(self, request: Request) -> Reply | Deferred | None:
        """The answer for an API path, or None when the path is not the API's."""
        try:
            if request.path == "/rest/Session/login":
                return self.login(request)
            if request.path == "/rest/Session/refresh_access_token":
                return self.refresh(request)
            if request.path == "/rest/Account/get_account_info":
                return self.get_account_info(request)
            if request.path == "/rest/Account/get_xdr_list":
                return self.get_xdr_list(request)
        except BadInput as bad:
            log.warning("api %s: %s", request.path, bad)
            return bad.reply
        return None

    # sessions ----------------------------------------------------------------------
    def login(self, request: Request) -> Reply:
        params = _params(json_object(request))
        login, password = params.get("login"), params.get("password")
        if not isinstance(login, str) or not isinstance(password, str):
            raise BadInput(400, "Client.params", "params.login and params.password are texts")
        good = hmac.compare_digest(login.encode(), self.login_name.encode()) & \
            hmac.compare_digest(password.encode(), self.password.encode())
        if not good:
            log.warning("api login refused for %r", login[:64])
            return error(403, "Server.Session.auth_failed", "wrong login or password")
        log.info("api login %r: session opened", login)
        return Reply(200, self.open())

    def refresh(self, request: Request) -> Reply:
        token = _params(json_object(request)).get("refresh_token")
        expires = self.refresh_tokens.pop(token, None) if isinstance(token, str) else None
        if expires is None or expires < time.monotonic():
            return error(403, "Server.Session.check_auth.auth_failed",
                         "refresh token unknown, used or expired: log in again")
        return Reply(200, self.open())

    def open(self) -> dict[str, Any]:
        """A new session: its access token (also the older dialect's session_id)."""
        token, refresh = secrets.token_hex(16), secrets.token_hex(16)
        until = time.monotonic() + SESSION_SECONDS
        self.sessions[token], self.refresh_tokens[refresh] = until, until + SESSION_SECONDS
        for table in (self.sessions, self.refresh_tokens):
            while len(table) > MAX_SESSIONS:
                table.popitem(last=False)
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=SESSION_SECONDS)
        return {"access_token": token, "refresh_token": refresh,
                "expires_at": expires.strftime("%Y-%m-%d %H:%M:%S"), "session_id": token}

    def check_session(self, request: Request, document: dict[str, Any]) -> None:
        session_id = _session_id(request, document)
        if not session_id:
            raise BadInput(401, "Server.Session.check_auth.auth_failed",
                           "no session: log in with /rest/Session/login first")
        expires = self.sessions.get(session_id)
        if expires is None or expires < time.monotonic():
            self.sessions.pop(session_id, None)
            raise BadInput(403, "Server.Session.check_auth.auth_failed",
                           "session unknown or expired: log in again")

    # accounts and xDRs --------------------------------------------------------------
    def get_account_info(self, request: Request) -> Reply:
        document = json_object(request)
        self.check_session(request, document)
        account = str(_params(document).get("id", "")).strip().lstrip("+")
        if account not in self.i_accounts:
            return Reply(200, {})  # as PortaBilling: no account_info
        return Reply(200, {"account_info": {"i_account": self.i_accounts[account],
                                            "id": account}})

    def get_xdr_list(self, request: Request) -> Deferred:
        document = json_object(request)
        self.check_session(request, document)
        params = _params(document)
        account_id = self.account_of(params)
        since, until = _date(params, "from_date"), _date(params, "to_date")
        limit = _count(params, "limit", 1000, 1, MAX_LIMIT)
        offset = _count(params, "offset", 0, 0, 2**62)
        total = bool(params.get("get_total"))
        work = asyncio.to_thread(self._page, account_id, since, until, limit, offset, total)
        return Deferred.of(_as_reply(work))

    def account_of(self, params: dict[str, Any]) -> str | None:
        """The account an xDR list is asked for: by i_account, or by account_id."""
        number = params.get("i_account")
        if number is None:
            return _account(params.get("account_id"), self.accounts)
        found = [a for a, n in self.i_accounts.items() if n == number and
                 not isinstance(number, bool)]
        if not found:
            raise BadInput(404, "Client.Account.not_found", f"no i_account {str(number)[:20]}")
        return found[0]

    def _page(self, account_id: str | None, since: dt.datetime | None,
              until: dt.datetime | None, limit: int, offset: int,
              total: bool) -> dict[str, Any]:
        rows = self.store.query(account_id, since, until, limit, offset)
        answer: dict[str, Any] = {"xdr_list": [xdr_json(x) for x in rows]}
        if total:
            answer["total"] = self.store.count(account_id, since, until)
        return answer


async def _as_reply(work: Any) -> Reply:
    return Reply(200, await work)


def xdr_json(xdr: Xdr) -> dict[str, Any]:
    """An xDR with PortaBilling field names; ISO time, money as exact decimal text."""
    return {name: (value.isoformat() if isinstance(value, dt.datetime)
                   else str(value) if isinstance(value, Decimal) else value)
            for name, value in xdr._asdict().items()}


def _params(document: dict[str, Any]) -> dict[str, Any]:
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise BadInput(400, "Client.params", "params must be a JSON object")
    return params


def _session_id(request: Request, document: dict[str, Any]) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if request.headers.get("x-session-id"):
        return request.headers["x-session-id"].strip()
    auth_info = document.get("auth_info")
    if isinstance(auth_info, dict) and isinstance(auth_info.get("session_id"), str):
        return str(auth_info["session_id"])
    return ""


def _account(value: Any, known: set[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadInput(400, "Client.params", "params.account_id must be a text (E.164 number)")
    account_id = str(value).strip().lstrip("+")
    if account_id not in known:
        raise BadInput(404, "Client.Account.not_found", f"no account {account_id[:32]!r}")
    return account_id


def _date(params: dict[str, Any], name: str) -> dt.datetime | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadInput(400, "Client.params", f"params.{name} must be a date-time text")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(400, "Client.params", f"params.{name}: write 'YYYY-MM-DD HH:MM:SS' "
                       "(UTC) or ISO 8601 with a zone") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _count(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(400, "Client.params", f"params.{name} must be an integer "
                       f"from {low} to {high}")
    return value
