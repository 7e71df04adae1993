"""Billed xDRs from a live deployment, in imsim's xDR schema (`imsim.rules.message.XDR_COLUMNS`).

Two sources, as in a target file:

- PortaBilling's JSON API (a remote one, or the lab billing service):
  ``XdrClient(url, login, password).xdrs("15551230001", since, until)`` logs in
  (`lab.portabilling.Session`, both login generations), finds the account's
  ``i_account`` once with ``Account/get_account_info {"id": ...}``, then pages through
  ``Account/get_xdr_list`` (``i_account``, ``from_date`` / ``to_date`` as
  'YYYY-MM-DD HH:MM:SS' in the API user's time zone, ``limit`` / ``offset``,
  ``get_total``, ``show_unsuccessful``: PortaBilling lists a failed attempt only when
  asked, and one that charged must be compared);
- an xDR CSV export: ``read_csv_export(path, columns={...})``.

Both give `imsim.rules.message.Xdr` records; ``frame(records)`` makes the shared DataFrame
(`imsim.results.xdr_frame`). PortaBilling's fields and what they become:

    i_xdr -> i_xdr               CLI, CLD -> CLI, CLD       account_id -> account_id
    unix_connect_time (else connect_time, in the API user's zone) -> connect_time
    call_id -> call_id (an export's h323_conf_id too)   charged_quantity -> charged_quantity
    charged_amount (a JSON number or text) -> charged_amount; unit_price = amount / units
    failed, disconnect_cause, disconnect_reason -> sip_code, reason
    description -> reason (without a disconnect_reason)
    i_service, i_service_type, bit_flags: not kept (``service_type`` asks only one
    service's xDRs)

A deployment's xDRs carry no imsim ``msg_id``, ``tariff`` or ``rate_code``: those stay
empty (`lab.matching` pairs the xDRs with the test messages).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from imsim.planning.exports import ALIASES, REQUIRED, ExportError, csv_rows, failed
from imsim.rules.message import XDR_COLUMNS, Xdr
from lab.portabilling import ApiError, Session

PAGE = 1000
# an API row's h323_conf_id is PortaSIP's conference id, not the SIP Call-ID ("call_id")
API_COLUMNS = {"h323_conf_id": "h323_conf_id"}
DATE = "%Y-%m-%d %H:%M:%S"


class XdrSourceError(ValueError):
    """The xDR source could not be read: login refused, bad export, unreachable API."""


class XdrClient:
    """PortaBilling's xDR lists for the accounts of a run, over one API `Session`."""

    def __init__(self, url: str, login: str, password: str | None = None,
                 timeout: float = 10.0, token: str | None = None,
                 verify: bool | str | Path = True, time_zone: str = "UTC",
                 service_type: int | None = None) -> None:
        try:
            self.session = Session(url, login, password, token, timeout, verify)
        except ApiError as exc:
            raise XdrSourceError(str(exc)) from None
        self.url, self.zone = self.session.url, zone(time_zone)
        self.accounts: dict[str, int] = {}
        self.service_type = service_type  # i_service_type: only this service's xDRs

    def login(self) -> None:
        """Log in now (a run checks its credentials before it plays)."""
        try:
            self.session.login()
        except ApiError as exc:
            raise XdrSourceError(str(exc)) from None

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Any method of the API (``Module/method``, or a path like "/lab/clock")."""
        try:
            return self.session.call(method.removeprefix("/rest/"), params)
        except ApiError as exc:
            raise XdrSourceError(str(exc)) from None

    def i_account(self, account_id: str) -> int:
        """The account's ``i_account`` (asked once per client)."""
        if account_id not in self.accounts:
            info = self.call("Account/get_account_info", {"id": account_id})
            found = info.get("account_info") or {}
            number = found.get("i_account") if isinstance(found, dict) else None
            if isinstance(number, bool) or not isinstance(number, int):
                raise XdrSourceError(f"{self.url}/rest/Account/get_account_info: no account "
                                     f"{account_id!r} for this API user")
            self.accounts[account_id] = number
        return self.accounts[account_id]

    def xdr_list(self, account_id: str | None = None, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, limit: int = PAGE, offset: int = 0
                 ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of raw rows (PortaBilling field names) and the total, when told."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, "get_total": 1,
                                  "show_unsuccessful": 1}  # else failed ones are hidden
        if account_id is not None:
            params["i_account"] = self.i_account(account_id)
        if self.service_type is not None:
            params["i_service_type"] = self.service_type
        for name, moment in (("from_date", since), ("to_date", until)):
            if moment is not None:
                params[name] = moment.astimezone(self.zone).strftime(DATE)
        answer = self.call("Account/get_xdr_list", params)
        rows, total = answer.get("xdr_list"), answer.get("total")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise XdrSourceError(f"{self.url}/rest/Account/get_xdr_list: answered without "
                                 "an xdr_list")
        return rows, total if isinstance(total, int) and not isinstance(total, bool) else None

    def xdrs(self, account_id: str | None = None, since: dt.datetime | None = None,
             until: dt.datetime | None = None, page: int = PAGE) -> list[Xdr]:
        """Every xDR of the account in [since, until], page after page, in imsim's schema."""
        found: list[Xdr] = []
        while True:
            rows, total = self.xdr_list(account_id, since, until, page, len(found))
            found += [from_record(row, self.zone.key, "USD", 0, API_COLUMNS) for row in rows]
            done = len(found) >= total if total is not None else len(rows) < page
            if done or not rows:
                return found


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise XdrSourceError(f"xdrs.time_zone: unknown time zone {name!r} (an IANA name "
                             "like Europe/Prague)") from None


# -- records ---------------------------------------------------------------------------

def from_record(row: Mapping[str, Any], time_zone: str = "UTC", currency: str = "USD",
                number: int = 0, columns: Mapping[str, str] | None = None) -> Xdr:
    """One xDR from API or CSV fields; missing optional columns get neutral defaults."""
    fields = renamed(row, {**ALIASES, **(columns or {})})
    if fields.get("unix_connect_time") not in (None, ""):
        fields["connect_time"] = fields["unix_connect_time"]
    missing = [name for name in REQUIRED if fields.get(name) in (None, "")]
    label = number or fields.get("i_xdr", "?")
    if missing:
        raise XdrSourceError(f"xDR {label}: no {', '.join(missing)}")
    try:
        return _xdr(fields, time_zone, currency, number)
    except (ValueError, TypeError, InvalidOperation, ArithmeticError) as exc:
        raise XdrSourceError(f"xDR {label}: {exc}") from None


def renamed(row: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The row's fields under our names; a field of our own name beats an alias of it."""
    fields: dict[str, Any] = {}
    for name, value in row.items():
        ours = names.get(name, name)
        if value in (None, ""):
            if name in XDR_COLUMNS:
                fields.setdefault(ours, value)
        elif ours == name or row.get(ours) in (None, ""):
            fields[ours] = value
    return fields


def _xdr(fields: dict[str, Any], time_zone: str, currency: str, number: int) -> Xdr:
    amount = Decimal(str(fields["charged_amount"]))
    quantity = int(fields.get("charged_quantity") or 1)
    price = Decimal(str(fields.get("unit_price") or amount / max(quantity, 1)))
    code, reason = outcome(fields)
    return Xdr(int(fields.get("i_xdr") or number), str(fields.get("env", "")),
               str(fields["account_id"]), str(fields["CLI"]), str(fields["CLD"]),
               parse_time(fields["connect_time"], time_zone),
               str(fields.get("call_id", "")), str(fields.get("msg_id", "")),
               str(fields.get("service") or "messaging"),
               str(fields.get("direction") or "outgoing"), str(fields.get("tariff", "")),
               str(fields.get("rate_code", "")), quantity, price, amount,
               str(fields.get("currency") or currency), code, reason)


def outcome(fields: Mapping[str, Any]) -> tuple[int, str]:
    """(sip_code, reason): imsim's own columns, else PortaBilling's failed flag and cause."""
    reason = str(fields.get("reason") or fields.get("description") or "OK")
    if fields.get("sip_code") not in (None, ""):
        return int(fields["sip_code"]), reason
    if not failed(fields.get("failed", "0")):
        return 200, reason
    cause = str(fields.get("disconnect_cause") or "")
    return (int(cause) if cause.isdigit() and 300 <= int(cause) < 700 else 0), reason


def parse_time(value: Any, time_zone: str = "UTC") -> dt.datetime:
    """Unix seconds, ISO 8601, or PortaBilling's 'YYYY-MM-DD HH:MM:SS' read in
    ``time_zone``."""
    if isinstance(value, int | float) and not isinstance(value, bool) or \
            isinstance(value, str) and value.strip().isdigit():
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    moment = dt.datetime.fromisoformat(str(value).strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(time_zone))


def read_csv_export(path: Path | str, time_zone: str = "UTC", currency: str = "USD",
                    delimiter: str | None = None, columns: Mapping[str, str] | None = None
                    ) -> list[Xdr]:
    """An xDR CSV export, .csv or .csv.gz (header row; PortaBilling or imsim names;
    ``,``, ``;`` or a tab, found from the header unless ``delimiter`` is given; empty
    rows left out; ``columns`` maps a deployment's own header names to ours, e.g.
    {"Charged": "charged_amount"})."""
    try:
        rows = csv_rows(path, delimiter, columns, "xdrs.columns in the target file")
        return [from_record(row, time_zone, currency, number, columns)
                for number, row in enumerate(rows, 1)]
    except ExportError as exc:
        raise XdrSourceError(str(exc)) from None


def frame(records: Iterable[Xdr]) -> Any:
    """The shared xDR DataFrame (`imsim.results.xdr_frame`)."""
    from imsim.results import xdr_frame

    return xdr_frame(list(records))
