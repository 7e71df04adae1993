"""A run's billed xDRs: fetched, then matched with its test messages (`lab.matching`).

    found = remote_xdrs(source, sent, accounts, awaited=3)   # a remote target
    found = gather(fetch, sent, awaited=3, settle=3.0)        # any source (the local one)
    found.xdrs        # the xDRs that bill a test message, with its msg_id and Call-ID
    found.orphans     # the others, described (each fails the comparison)
    found.uncompared  # fields the source does not hold

`Source` is where the xDRs come from: PortaBilling's API (`lab.xdr_client.XdrClient`,
one ``get_xdr_list`` per account, only the run's window) or a CSV export (its rows of the
run's accounts and window). The window is the run's send times on the remote clock
(`lab.matching.measured_skew`) widened by the tolerance; the API is asked again until
every awaited customer xDR is in or ``settle`` seconds have passed. The embedded stack
(`lab.run`) fetches every xDR its service stored since the run began and goes through
the same `gather`: its xDRs pair by imsim's msg_id, and any other is an orphan.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imsim.rules.message import Xdr
from lab import matching
from lab.matching import Sent
from lab.xdr_client import XdrClient, read_csv_export

POLL = 0.5  # seconds between two askings while xDRs are awaited
OPTIONAL = ("tariff", "rate_code")  # imsim's columns a deployment's xDRs lack


@dataclass
class Source:
    """One of: an API client, or a CSV export (with its column mapping)."""

    client: XdrClient | None = None
    csv: Path | None = None
    time_zone: str = "UTC"
    columns: dict[str, str] = field(default_factory=dict)
    tolerance: float = matching.TOLERANCE
    settle: float = 10.0
    numbers: list[tuple[str, str]] = field(default_factory=list)  # (regex, replacement)


@dataclass
class Collected:
    xdrs: list[Xdr]
    orphans: list[str]
    uncompared: tuple[str, ...]
    skew: float = 0.0
    by: dict[str, int] = field(default_factory=dict)  # pairs made by msg_id/call_id/time


def remote_xdrs(source: Source, sent: Sequence[Sent], accounts: Iterable[str],
                awaited: int, skew: float = 0.0) -> Collected:
    """The run's xDRs, matched with its messages (``awaited``: customer xDRs expected)."""
    since, until = window(sent, skew, source.tolerance)
    fetch = _fetcher(source, sorted(set(accounts)), since, until, {s.msg_id for s in sent})
    settle = source.settle if source.client is not None else 0.0  # an export is complete
    return gather(fetch, sent, awaited, skew, source.tolerance, settle,
                  matching.rewriter(source.numbers))


def gather(fetch: Callable[[], list[Xdr]], sent: Sequence[Sent], awaited: int,
           skew: float = 0.0, tolerance: float = matching.TOLERANCE, settle: float = 0.0,
           translate: Callable[[str], str] = matching.digits, poll: float = POLL
           ) -> Collected:
    """Fetch and match until ``awaited`` customer xDRs are matched or ``settle`` seconds
    have passed (a local run and a remote one alike; only their ``fetch`` differs)."""
    deadline = time.monotonic() + settle
    while True:
        rows = fetch()
        found = matching.match(sent, rows, skew, tolerance, translate)
        if _customer(rows, found.pairs) >= awaited or time.monotonic() >= deadline:
            return _collected(rows, found, sent, skew)
        time.sleep(poll)


def window(sent: Sequence[Sent], skew: float, tolerance: float
           ) -> tuple[dt.datetime, dt.datetime]:
    """From the first send to the last, on the remote clock, widened by the tolerance
    and the second an xDR time is truncated to."""
    times = [s.sent_at for s in sent] or [time.time()]
    margin = tolerance + 1.0
    return (dt.datetime.fromtimestamp(min(times) + skew - margin, dt.UTC),
            dt.datetime.fromtimestamp(max(times) + skew + margin, dt.UTC))


def _fetcher(source: Source, accounts: list[str], since: dt.datetime,
             until: dt.datetime, ids: set[str]) -> Callable[[], list[Xdr]]:
    if source.client is not None:
        client = source.client
        return lambda: [x for account in accounts for x in client.xdrs(account, since, until)
                        if billed(x)]
    assert source.csv is not None
    rows = read_csv_export(source.csv, source.time_zone, columns=source.columns)
    numbers = {matching.digits(a) for a in accounts}
    kept = [x for x in rows if billed(x) and (x.msg_id in ids or matching.digits(
        x.account_id) in numbers and since <= x.connect_time <= until)]  # imsim's: msg_id
    return lambda: kept


def billed(xdr: Xdr) -> bool:
    """Not an unsuccessful attempt: PortaBilling's failed xDRs that charge nothing are
    left out (one that charges is kept, and shows as a difference or an orphan)."""
    return 200 <= xdr.sip_code < 300 or xdr.charged_amount != 0


def _customer(rows: Sequence[Xdr], pairs: dict[int, str]) -> int:
    return sum(1 for index in pairs if rows[index].direction == "outgoing")


def _collected(rows: Sequence[Xdr], found: matching.Matching, sent: Sequence[Sent],
               skew: float) -> Collected:
    call_ids = {s.msg_id: s.call_id for s in sent}
    xdrs = [rows[i]._replace(msg_id=msg_id, call_id=rows[i].call_id or call_ids.get(msg_id, ""))
            for i, msg_id in sorted(found.pairs.items())]
    return Collected(xdrs, [describe(rows[i]) for i in found.orphans], uncompared(rows),
                     skew, {how: found.by(how) for how in ("msg_id", "call_id", "time")})


def uncompared(rows: Sequence[Xdr]) -> tuple[str, ...]:
    """imsim's fields no xDR of the source holds; "xdrs" when it lists no vendor xDRs (an
    account's xDR list holds only the account's own charges)."""
    absent = [name for name in OPTIONAL if not any(getattr(x, name) for x in rows)]
    if not any(x.direction != "outgoing" for x in rows):
        absent.insert(0, "xdrs")
    return tuple(absent)


def describe(xdr: Xdr) -> str:
    return (f"i_xdr {xdr.i_xdr} {xdr.CLI} -> {xdr.CLD} at "
            f"{xdr.connect_time:%Y-%m-%d %H:%M:%S%z} call_id {xdr.call_id or '-'}")


def sent_messages(rows: Iterable[dict[str, Any]],
                  numbers: dict[str, tuple[str, str]]) -> list[Sent]:
    """The driver's message rows (`lab.driver.messages`) as `Sent`; ``numbers``: msg_id
    -> (CLI, CLD) as the model bills them (else the digits of From and To)."""
    return [Sent(str(row["msg_id"]), str(row.get("call_id") or ""),
                 *numbers.get(str(row["msg_id"]), (str(row["from"]), str(row["to"]))),
                 float(row["sent_at"]), _answered(row.get("code")))
            for row in rows if row.get("sent_at") is not None]


def _answered(code: Any) -> bool:
    return isinstance(code, int) and 200 <= code < 300
