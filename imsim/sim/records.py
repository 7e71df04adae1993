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

import numpy as np

from imsim.model.settings import RecordSettings
from imsim.results import (
    MESSAGE_DTYPES,
    PRESENCE_DTYPES,
    SIP_DTYPES,
    UTILIZATION_DTYPES,
    frame,
    message_frame,
    xdr_frame,
)
from imsim.rules.message import Xdr

Trace = list[tuple[float, str, str]]
Money = Sequence[tuple[tuple[str, ...], int, Decimal]]
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
        self._counters: dict[Money, list[int]] = {}
        self.latencies = array("d")
        self._latest: list[float] = []   # the latest latencies, before `latencies`
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
        if self.outcome(row[1], row[5], check, row[9]):
            self.messages.append((*row, check))

    def outcome(self, env: str, code: int, check: str, latency: float) -> bool:
        """Count one finished attempt; True when its row is to be kept (`message`)."""
        self.outcomes[(env, code, check)] += 1
        self.latency(latency)
        keep = self.keep_messages
        return keep == "all" or (keep == "failed" and not 200 <= code < 300)

    def latency(self, value: float) -> None:
        """One finished attempt's latency (kept in `latencies`, a batch at a time)."""
        latest = self._latest
        latest.append(value)
        if len(latest) >= 4096:
            self.latencies.extend(latest)
            latest.clear()

    def xdr(self, rows: list[Xdr]) -> None:
        self.tally([((row.env, row.direction, row.tariff, row.rate_code, row.currency),
                     row.charged_quantity, row.charged_amount) for row in rows])
        if self.keep_xdrs:
            self.xdrs.extend(rows)
        self.next_xdr += len(rows)

    def tally(self, money: Money, count: int = 1) -> None:
        """The money of ``count`` messages' xDRs, each (key, units, amount), the key
        being (env, direction, tariff, rate_code, currency)."""
        for key, units, amount in money:
            total = self.money.get(key)
            if total is None:
                total = self.money[key] = [0, 0, Decimal(0)]
            total[0] += count
            total[1] += units * count
            total[2] += amount * count if count != 1 else amount

    def counter(self, money: Money) -> list[int]:
        """A count of delivered messages whose xDRs are ``money`` and are not kept;
        `fold` adds them to the sums at the end. Same sums: amounts are non-negative
        Decimals with at most 6 places, so every sum is exact (no rounding below 10^22)
        and count x amount equals count additions of amount, exponent included."""
        found = self._counters.get(money)
        if found is None:
            found = self._counters[money] = [0]
        return found

    def fold(self) -> None:
        """Add the counted messages' money (`counter`) to the sums."""
        for money, (count,) in self._counters.items():
            if count:
                self.tally(money, count)
        self._counters.clear()

    def presence_event(self, when: float, env: str, event: str, presentity: str,
                       watcher: str, status: str, initial: bool = False) -> None:
        """PUBLISH, SUBSCRIBE, UNSUBSCRIBE, NOTIFY (``initial``: the first of a
        subscription) or EXPIRE (a publication or subscription timed out)."""
        self.count_presence(event, initial)
        if self.keep_presence:
            self.presence.append((when, env, event, presentity, watcher, status))

    def count_presence(self, event: str, initial: bool = False) -> None:
        """`presence_event` without its row (for a caller that keeps none)."""
        self.notifies[f"{event}-initial" if initial else event] += 1

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
        self.latencies.extend(self._latest)
        self._latest.clear()
        values = np.sort(np.frombuffer(self.latencies, dtype=np.float64)).tolist()
        if not values:
            return {"mean": None, "max": None, **{f"p{p}": None for p in PERCENTILES}}
        out: dict[str, float | None] = {"mean": round(math.fsum(values) / len(values), 6),
                                        "max": round(values[-1], 6)}
        for p in PERCENTILES:
            out[f"p{p}"] = round(values[min(len(values) - 1, int(len(values) * p / 100))], 6)
        return out


__all__ = ["Recorder", "MESSAGE_DTYPES"]
