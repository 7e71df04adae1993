"""Results of a run: records while the model runs, DataFrames once at the end.

One schema for the simulator and the lab: both build their xDR frame with
`xdr_frame`, their message frame with `message_frame`, so a notebook can put them
side by side and `imsim.compare` can join them on ``msg_id``.

Money: ``unit_price`` and ``charged_amount`` are float64 columns by default (sums,
plots, groupbys). Amounts in the model are `Decimal` with at most 6 decimal places,
so a float round-trips exactly through ``round(x, 6)``; a comparison that needs the
exact values builds the frame with ``money="decimal"`` (object columns of Decimal)
instead. Totals in ``summary`` are exact Decimal sums, written as strings.

Messages: ``step`` is the handbook step of a refusal, NaN when none applies;
``delivered_at`` is NaN when the recipient's softphone did not accept the message;
``latency`` is the time from sending to the final answer at the sender.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from imsim.rules.message import XDR_COLUMNS

STR = "str"
XDR_DTYPES: dict[str, str] = {
    "i_xdr": "int64", "env": STR, "account_id": STR, "CLI": STR, "CLD": STR,
    "connect_time": "datetime64[us, UTC]", "call_id": STR, "msg_id": STR, "service": STR,
    "direction": STR, "tariff": STR, "rate_code": STR, "charged_quantity": "int64",
    "unit_price": "float64", "charged_amount": "float64", "currency": STR,
    "sip_code": "int64", "reason": STR,
}
MONEY_COLUMNS = ("unit_price", "charged_amount")
assert tuple(XDR_DTYPES) == XDR_COLUMNS

MESSAGE_DTYPES: dict[str, str] = {
    "msg_id": STR, "env": STR, "from": STR, "to": STR, "sent_at": "float64", "code": "int64",
    "reason": STR, "step": "float64", "delivered_at": "float64", "latency": "float64",
    "check": STR,
}
PRESENCE_DTYPES: dict[str, str] = {
    "time": "float64", "env": STR, "event": STR, "presentity": STR, "watcher": STR,
    "status": STR,
}
SIP_DTYPES: dict[str, str] = {"env": STR, "method": STR, "code": "int64", "count": "int64"}
UTILIZATION_DTYPES: dict[str, str] = {
    "time": "float64", "env": STR, "pool": STR, "busy": "int64", "queue": "int64",
}
FRAMES = ("xdrs", "messages", "presence", "sip", "utilization")


def frame(records: Iterable[Sequence[Any]], dtypes: dict[str, str]) -> pd.DataFrame:
    """A DataFrame of ``records`` (tuples in column order) with the given dtypes."""
    rows = records if isinstance(records, list) else list(records)
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in dtypes.items()})
    return pd.DataFrame.from_records(rows, columns=list(dtypes)).astype(dtypes)


def xdr_frame(records: Iterable[Sequence[Any]],
              money: Literal["float", "decimal"] = "float") -> pd.DataFrame:
    """xDRs (`imsim.rules.decide.Xdr` tuples, or rows in `XDR_COLUMNS` order) as a frame."""
    dtypes = dict(XDR_DTYPES)
    if money == "decimal":
        for column in MONEY_COLUMNS:
            dtypes[column] = "object"
    return frame(records, dtypes)


def message_frame(records: Iterable[Sequence[Any]]) -> pd.DataFrame:
    return frame(records, MESSAGE_DTYPES)


@dataclass
class RunResult:
    """The frames of one run and its summary (what ``summary.json`` holds)."""

    xdrs: pd.DataFrame
    messages: pd.DataFrame
    presence: pd.DataFrame
    sip: pd.DataFrame
    utilization: pd.DataFrame
    summary: dict[str, Any]
    trace: list[tuple[float, str, str]] | None = field(default=None, repr=False)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in FRAMES}

    def write(self, out: str | Path, fmt: Literal["csv", "parquet"] = "csv") -> list[Path]:
        """Write every frame and ``summary.json`` into ``out``; the paths written."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, df in self.frames().items():
            path = folder / f"{name}.{fmt}"
            if fmt == "csv":
                df.to_csv(path, index=False)
            else:
                df.to_parquet(path, index=False)
            written.append(path)
        path = folder / "summary.json"
        path.write_text(json.dumps(self.summary, indent=2, sort_keys=True) + "\n")
        written.append(path)
        return written


def money_columns(totals: dict[str, dict[str, str]]) -> dict[str, Any]:
    """revenue, cost, margin (floats) and their currency; with several currencies,
    ``revenue_EUR`` etc. and NaN totals (currencies are never added together)."""
    currencies = sorted(set(totals["revenue"]) | set(totals["cost"]))
    revenue = {c: Decimal(totals["revenue"].get(c, "0")) for c in currencies}
    cost = {c: Decimal(totals["cost"].get(c, "0")) for c in currencies}
    if len(currencies) <= 1:
        c = currencies[0] if currencies else ""
        r, k = revenue.get(c, Decimal(0)), cost.get(c, Decimal(0))
        return {"currency": c, "revenue": float(r), "cost": float(k), "margin": float(r - k)}
    out: dict[str, Any] = {"currency": "+".join(currencies), "revenue": math.nan,
                           "cost": math.nan, "margin": math.nan}
    for c in currencies:
        out |= {f"revenue_{c}": float(revenue[c]), f"cost_{c}": float(cost[c]),
                f"margin_{c}": float(revenue[c] - cost[c])}
    return out
