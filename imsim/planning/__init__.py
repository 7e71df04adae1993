"""Planning: what tariffs earn and cost on a month of traffic, without timing.

- `synthetic_messages` draws a month of messages from a scenario's population and
  traffic (`imsim.planning.synthetic`);
- `rate_messages` bills a frame of messages through the rulebook: the billing engine
  decides once per kind of message, `rate_many` does the money, the ledger's rules
  settle it (`imsim.planning.bill`);
- ``month(scenario, messages=10_000_000)`` does both and summarizes.

A scenario that refuses its messages plans no revenue: refusals are counted by the
engine's check, with its code and handbook step.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from imsim.model.scenario import Scenario
from imsim.planning.bill import DELIVERED, Billing, rate_messages
from imsim.planning.synthetic import Population, synthetic_messages
from imsim.results import money_columns
from imsim.rules.batch import MICRO

__all__ = ["DELIVERED", "Billing", "Month", "Population", "month", "rate_messages", "summarize",
           "synthetic_messages"]


@dataclass
class Month:
    """A rated synthetic month: the frame (when kept) and its summary."""

    summary: dict[str, Any]
    messages: pd.DataFrame | None = None


def month(scenario: Scenario, messages: int = 10_000_000, seed: int | None = None,
          days: float = 30.0, keep: bool = True) -> Month:
    """Generate and rate about ``messages`` messages over ``days`` (at the reference
    demand: with an elasticity, ``cap`` times as many candidates are drawn and thinned
    as the simulator does); the rated frame and a summary."""
    root = np.random.SeedSequence(scenario.sim.seed if seed is None else seed)
    elasticity = scenario.traffic.elasticity
    cap = elasticity.cap if elasticity else 1.0
    traffic, thinning = root.spawn(2)
    frame = synthetic_messages(scenario, int(messages * cap), traffic, days)
    demand = np.random.default_rng(thinning) if elasticity else None
    rated = rate_messages(scenario, frame, demand)
    return Month(summarize(rated), rated if keep else None)


def summarize(rated: pd.DataFrame) -> dict[str, Any]:
    """Messages, billed, included, outcomes by check, refusals by code, check and
    handbook step; money as the simulator's summary gives it: ``totals`` (revenue,
    the senders' charges and charged incoming messages, and cost, exact, per currency)
    and `imsim.results.money_columns` of them (revenue, cost and margin, NaN with
    several currencies, which are never added together: then ``revenue_EUR`` etc.);
    and revenue by rate code (``"44 EUR"`` with several currencies)."""
    billed = rated[rated["billed"]]
    totals = {"revenue": _by_currency(billed, ("charged_amount_micro", "currency"),
                                      ("incoming_micro", "incoming_currency")),
              "cost": _by_currency(billed, ("cost_micro", "cost_currency"))}
    by_code = billed.groupby(["rate_code", "currency"], observed=True).agg(
        messages=("CLI", "size"), revenue_micro=("charged_amount_micro", "sum"))
    several = billed["currency"].nunique() > 1
    refused = rated[rated["check"] != DELIVERED]
    refusals = refused.groupby(["code", "check", "step"], observed=True, dropna=False).size()
    return {"messages": len(rated), "billed": len(billed),
            "included": int(billed["included"].sum()),
            "outcomes": {str(k): int(v) for k, v in
                         rated["check"].value_counts().sort_index().items() if v},
            "refusals": [{"code": int(code), "check": str(check),
                          "step": None if pd.isna(step) else int(step), "messages": int(n)}
                         for (code, check, step), n in refusals.items()],
            "totals": totals, **money_columns(totals),
            "by_rate_code": {f"{code} {currency}" if several else str(code): {
                "messages": int(v.messages), "revenue": int(v.revenue_micro) / MICRO}
                for (code, currency), v in by_code.iterrows()}}


def _by_currency(frame: pd.DataFrame, *amounts: tuple[str, str]) -> dict[str, str]:
    """Exact sums of micro-unit ``amounts`` (column, its currency column) per currency,
    as decimal strings (a currency appears once something was rated in it)."""
    sums: dict[str, int] = {}
    for amount, currency in amounts:
        for code, micro in frame.groupby(currency, observed=True)[amount].sum().items():
            sums[str(code)] = sums.get(str(code), 0) + int(micro)
    return {code: str(Decimal(micro) / MICRO) for code, micro in sorted(sums.items())}
