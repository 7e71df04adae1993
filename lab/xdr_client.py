"""Billed xDRs from a live deployment, in imsim's xDR schema (`imsim.billing.XDR_COLUMNS`).

Two sources, as in a target file:

- a PortaBilling-style JSON API (the lab billing service, or a remote one):
  ``XdrClient(url, login, password).xdrs(account_id=...)`` logs in with
  ``/rest/Session/login`` and pages through ``/rest/Account/get_xdr_list``;
- a PortaBilling-style xDR CSV export: ``read_csv_export(path)``.

Both give `imsim.billing.Xdr` records; ``frame(records)`` makes the shared DataFrame
(`imsim.results.xdr_frame`).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from imsim.billing import XDR_COLUMNS, Xdr
from imsim.exports import ALIASES, REQUIRED, ExportError, csv_rows

PAGE = 1000


class XdrSourceError(ValueError):
    """The xDR source could not be read: login refused, bad export, unreachable API."""


class XdrClient:
    """A session with a PortaBilling-style JSON API."""

    def __init__(self, url: str, login: str, password: str, timeout: float = 10.0) -> None:
        self.url, self.login_name, self.password = url.rstrip("/"), login, password
        self.timeout = timeout
        self.session_id: str | None = None

    def login(self) -> str:
        answer = self._post("/rest/Session/login",
                            {"params": {"login": self.login_name, "password": self.password}},
                            session=False)
        session_id = answer.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise XdrSourceError(f"{self.url}: login answered without a session_id")
        self.session_id = session_id
        return session_id

    def xdr_list(self, account_id: str | None = None, from_date: str | None = None,
                 to_date: str | None = None, limit: int = PAGE, offset: int = 0
                 ) -> list[dict[str, Any]]:
        """One page of raw rows (PortaBilling field names)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for name, value in (("account_id", account_id), ("from_date", from_date),
                            ("to_date", to_date)):
            if value is not None:
                params[name] = value
        rows = self._post("/rest/Account/get_xdr_list", {"params": params}).get("xdr_list")
        if not isinstance(rows, list):
            raise XdrSourceError(f"{self.url}: get_xdr_list answered without an xdr_list")
        return rows

    def xdrs(self, account_id: str | None = None, from_date: str | None = None,
             to_date: str | None = None, page: int = PAGE) -> list[Xdr]:
        """Every xDR matching, page after page, in imsim's schema."""
        found: list[Xdr] = []
        while True:
            rows = self.xdr_list(account_id, from_date, to_date, page, len(found))
            found += [from_record(row) for row in rows]
            if len(rows) < page:
                return found

    def call(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """Any other method of the API, in this session: ``{"params": params}``."""
        return self._post(path, {"params": params})

    def _post(self, path: str, body: dict[str, Any], session: bool = True) -> dict[str, Any]:
        if session and self.session_id is None:
            self.login()
        headers = {"Content-Type": "application/json"}
        if session:
            headers["Authorization"] = f"Bearer {self.session_id}"
        request = urllib.request.Request(self.url + path, json.dumps(body).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                document = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise XdrSourceError(f"{self.url}{path}: HTTP {exc.code}: {_fault(exc)}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise XdrSourceError(f"{self.url}{path}: {exc}") from None
        if not isinstance(document, dict):
            raise XdrSourceError(f"{self.url}{path}: the answer is not a JSON object")
        return document


def _fault(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("faultstring", exc.reason))
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


# -- records ---------------------------------------------------------------------------

def from_record(row: Mapping[str, Any], time_zone: str = "UTC", currency: str = "USD",
                number: int = 0) -> Xdr:
    """One xDR from API or CSV fields; missing optional columns get neutral defaults."""
    fields = {ALIASES.get(name, name): value for name, value in row.items()
              if value not in (None, "") or name in XDR_COLUMNS}
    missing = [name for name in REQUIRED if fields.get(name) in (None, "")]
    if missing:
        raise XdrSourceError(f"xDR {number or fields.get('i_xdr', '?')}: no "
                             f"{', '.join(missing)}")
    try:
        amount = Decimal(str(fields["charged_amount"]))
        quantity = int(fields.get("charged_quantity") or 1)
        price = Decimal(str(fields.get("unit_price") or amount / max(quantity, 1)))
        return Xdr(int(fields.get("i_xdr") or number), str(fields.get("env", "")),
                   str(fields["account_id"]), str(fields["CLI"]), str(fields["CLD"]),
                   parse_time(str(fields["connect_time"]), time_zone),
                   str(fields.get("call_id", "")), str(fields.get("msg_id", "")),
                   str(fields.get("service") or "messaging"),
                   str(fields.get("direction") or "outgoing"), str(fields.get("tariff", "")),
                   str(fields.get("rate_code", "")), quantity, price, amount,
                   str(fields.get("currency") or currency),
                   int(fields.get("sip_code") or 200), str(fields.get("reason") or "OK"))
    except (ValueError, InvalidOperation, ArithmeticError) as exc:
        raise XdrSourceError(f"xDR {number or fields.get('i_xdr', '?')}: {exc}") from None


def parse_time(text: str, time_zone: str = "UTC") -> dt.datetime:
    """ISO 8601, or PortaBilling's 'YYYY-MM-DD HH:MM:SS' read in ``time_zone``."""
    moment = dt.datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(time_zone))


def read_csv_export(path: Path | str, time_zone: str = "UTC", currency: str = "USD",
                    delimiter: str = ",") -> list[Xdr]:
    """A PortaBilling-style xDR CSV export (header row; PortaBilling or imsim names)."""
    try:
        return [from_record(row, time_zone, currency, number)
                for number, row in enumerate(csv_rows(path, delimiter), 1)]
    except ExportError as exc:
        raise XdrSourceError(str(exc)) from None


def frame(records: Iterable[Xdr]) -> Any:
    """The shared xDR DataFrame (`imsim.results.xdr_frame`)."""
    from imsim.results import xdr_frame

    return xdr_frame(list(records))
