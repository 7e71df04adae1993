"""What a run writes down while it runs: tuples, counters and exact sums.

The frames are built once, at the end (`imsim.results`); the summary is computed
from counters, so it stays complete when rows are not kept (large runs).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from imsim.billing import Xdr
from imsim.results import (
    MESSAGE_DTYPES,
    PRESENCE_DTYPES,
    SIP_DTYPES,
    UTILIZATION_DTYPES,
    frame,
    message_frame,
    xdr_frame,
)
from imsim.settings import RecordSettings

Trace = list[tuple[float, str, str]]
PERCENTILES = (50, 90, 95, 99)


class Recorder:
    """Rows (as tuples), counters and money sums of one run."""

    def __init__(self, keep: RecordSettings, trace: bool = False) -> None:
        self.keep_messages = keep.messages
        self.keep_xdrs = keep.xdrs
        self.keep_presence = keep.presence
        self.messages: list[tuple[Any, ...]] = []
        self.xdrs: list[Xdr] = []
        self.presence: list[tuple[Any, ...]] = []
        self.samples: list[tuple[Any, ...]] = []
        self.sip: Counter[tuple[str, str, int]] = Counter()
        self.outcomes: Counter[tuple[str, int, str]] = Counter()
        self.money: dict[tuple[str, ...], list[Any]] = {}
        self.latencies = array("d")
        self.notifies: Counter[str] = Counter()
        self.sent = 0
        self.next_xdr = 1
        self.trace: Trace | None = [] if trace else None

    # -- while running ---------------------------------------------------------------
    def log(self, when: float, who: str, what: str) -> None:
        if self.trace is not None:
            self.trace.append((round(when, 6), who, what))

    def message(self, row: tuple[Any, ...], check: str) -> None:
        """One finished attempt: (msg_id, env, from, to, sent_at, code, reason, step,
        delivered_at, latency), and the message-path check that decided it (kept as the
        frame's last column, so the trainer can match it with its diagnosis)."""
        code = row[5]
        self.outcomes[(row[1], code, check)] += 1
        self.latencies.append(row[9])
        keep = self.keep_messages
        if keep == "all" or (keep == "failed" and not 200 <= code < 300):
            self.messages.append((*row, check))

    def xdr(self, rows: list[Xdr]) -> None:
        self.tally([((row.env, row.direction, row.tariff, row.rate_code, row.currency),
                     row.charged_quantity, row.charged_amount) for row in rows])
        if self.keep_xdrs:
            self.xdrs.extend(rows)

    def tally(self, money: Sequence[tuple[tuple[str, ...], int, Decimal]]) -> None:
        """The money of xDRs written but not kept: (key, units, amount) per xDR, the key
        being (env, direction, tariff, rate_code, currency)."""
        for key, units, amount in money:
            total = self.money.get(key)
            if total is None:
                total = self.money[key] = [0, 0, Decimal(0)]
            total[0] += 1
            total[1] += units
            total[2] += amount
        self.next_xdr += len(money)

    def presence_event(self, when: float, env: str, event: str, presentity: str,
                       watcher: str, status: str, initial: bool = False) -> None:
        """PUBLISH, SUBSCRIBE, UNSUBSCRIBE, NOTIFY (``initial``: the first of a
        subscription) or EXPIRE (a publication or subscription timed out)."""
        self.notifies[f"{event}-initial" if initial else event] += 1
        if self.keep_presence:
            self.presence.append((when, env, event, presentity, watcher, status))

    # -- at the end ------------------------------------------------------------------
    def frames(self) -> dict[str, Any]:
        sip = sorted((env, method, code, n) for (env, method, code), n in self.sip.items())
        return {"xdrs": xdr_frame(self.xdrs), "messages": message_frame(self.messages),
                "presence": frame(self.presence, PRESENCE_DTYPES),
                "sip": frame(sip, SIP_DTYPES),
                "utilization": frame(self.samples, UTILIZATION_DTYPES)}

    def outcome_summary(self) -> list[dict[str, Any]]:
        return [{"env": env, "code": code, "check": check, "messages": n}
                for (env, code, check), n in sorted(self.outcomes.items())]

    def money_summary(self) -> list[dict[str, Any]]:
        return [{"env": env, "direction": direction, "tariff": tariff, "rate_code": code,
                 "currency": currency, "xdrs": n, "units": units, "amount": str(amount)}
                for (env, direction, tariff, code, currency), (n, units, amount)
                in sorted(self.money.items())]

    def totals(self) -> dict[str, dict[str, str]]:
        """Revenue (outgoing + incoming) and cost (vendor) per currency, exact."""
        out: dict[str, dict[str, Decimal]] = {"revenue": {}, "cost": {}}
        for (_, direction, _, _, currency), (_, _, amount) in self.money.items():
            kind = "cost" if direction == "vendor" else "revenue"
            out[kind][currency] = out[kind].get(currency, Decimal(0)) + amount
        return {k: {c: str(v) for c, v in sorted(d.items())} for k, d in out.items()}

    def latency_summary(self) -> dict[str, float | None]:
        values = sorted(self.latencies)
        if not values:
            return {"mean": None, "max": None, **{f"p{p}": None for p in PERCENTILES}}
        out: dict[str, float | None] = {"mean": round(math.fsum(values) / len(values), 6),
                                        "max": round(values[-1], 6)}
        for p in PERCENTILES:
            out[f"p{p}"] = round(values[min(len(values) - 1, int(len(values) * p / 100))], 6)
        return out


__all__ = ["Recorder", "MESSAGE_DTYPES"]
