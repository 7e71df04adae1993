"""Bill a frame of messages through the rulebook, vectorised: planning and re-rating.

The billing engine decides; planning only finds out which messages it needs to ask
about (`imsim.planning.kinds`: the engine is asked once per kind of message, and only
the money is vectorised), then settles them as delivered, in time order
(`imsim.planning.settling`: bundles, then balances, following `imsim.rules.settle`).
`Billing` prepares a scenario once for many frames; `rate_messages` bills one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd

from imsim.model.replay import timeline
from imsim.model.scenario import Scenario
from imsim.planning.kinds import CURRENCIES, DELIVERED, Kinds, Prepared, micro_floor, with_answers
from imsim.planning.settling import Start, settle
from imsim.rules.batch import MICRO
from imsim.rules.ledger import Ledger

__all__ = ["DELIVERED", "Billing", "Prepared", "Start", "rate_messages"]


def rate_messages(scenario: Scenario, frame: pd.DataFrame,
                  demand: np.random.Generator | None = None) -> pd.DataFrame:
    """Bill every message of ``frame`` (env, CLI, CLD, connect_time, length; optionally
    ``domain``, the recipient's, by default the environment's) as the message path
    would, timing aside.

    Adds ``code``, ``check`` ('delivered' when billing authorized the message, else
    the engine's check), ``step`` (the handbook step; <NA> when none), ``billed``,
    ``rate_code``, ``units``, ``unit_price_micro`` (the customer rate's price),
    ``included``, ``charged_amount_micro`` (charged: 0 when included or not billed),
    ``cost_micro`` (the vendor's) and ``incoming_micro`` (charged to the recipient),
    each in its tariff's currency (``currency``, ``cost_currency``,
    ``incoming_currency``: NaN where nothing rated it); money also as floats
    (``charged_amount``, ``cost``). ``CLD`` becomes the number
    billing sees (E.164 when the policy translates; -1 when not a number). With
    ``demand``, candidates are first thinned by the scenario's elasticity (as the
    simulator's Poisson stream does). Billing many frames of one scenario: `Billing`."""
    return Billing(scenario).rate(frame, demand)


class Billing:
    """A scenario's billing, prepared once for many frames (re-rating bills a month
    part by part): the configuration versions of each environment from the setup
    journal (`imsim.model.replay.timeline`), each `Prepared`. Each `rate` starts from the
    scenario's balances (a fresh `Ledger`)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.versions = {name: (np.array([at for at, _ in steps]),
                                [Prepared(env) for _, env in steps])
                         for name, steps in timeline(scenario).items()}
        self.rooms: dict[str, np.ndarray] = {}   # by environment, per purse (`room`)

    def rate(self, frame: pd.DataFrame, demand: np.random.Generator | None = None
             ) -> pd.DataFrame:
        """`rate_messages` of ``frame``."""
        work = frame.reset_index(drop=True)
        seconds = _seconds(work["connect_time"], self.scenario.start)
        parts = []
        for name, rows in _by_environment(work):
            since, prepared = self.versions[name]
            version = np.searchsorted(since, seconds[rows], side="right") - 1
            kinds = {int(v): Kinds(prepared[v], work.iloc[rows[version == v]])
                     for v in np.unique(version)}
            decided = pd.concat([k.decided(v) for v, k in kinds.items()]).sort_index()
            if demand is not None:
                decided = decided[_elasticity(self.scenario, decided, demand)]
            answers = {v: k.answers for v, k in kinds.items()}
            parts.append(settle(decided, prepared, answers, self._start(name)))
        out = pd.concat(parts).sort_index() if parts else with_answers(work.iloc[:0], {})
        for column in ("check", "rate_code", *CURRENCIES):   # parts' categories differ
            out[column] = out[column].astype("category")
        out.index = frame.index[out.index.to_numpy()]
        return out.drop(columns=["_version", "_to_user", "_kind"], errors="ignore")

    def _start(self, name: str) -> Start:
        """Environment ``name``'s balances at the scenario's start; what each purse (of
        its last version) can spend is found once."""
        env = self.scenario.environment(name)
        if name not in self.rooms:
            ledger = Ledger.of(env)
            self.rooms[name] = np.array([micro_floor(ledger.room(payer)) for payer
                                         in self.versions[name][1][-1].purses.payers],
                                        dtype=np.float64)
        return Start(env, self.rooms[name])


def _by_environment(frame: pd.DataFrame) -> Iterator[tuple[str, np.ndarray]]:
    """Each environment's row positions, in frame order."""
    codes, names = pd.factorize(frame["env"])
    for k, name in enumerate(names):
        yield str(name), np.flatnonzero(codes == k)


def _seconds(times: pd.Series, start: dt.datetime) -> np.ndarray:
    """Seconds since the scenario's start of each time (the journal's clock)."""
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"connect_time must be tz-aware datetime64, not {times.dtype}")
    us = pd.DatetimeIndex(times).as_unit("us").asi8
    return (us - int(start.timestamp() * MICRO)) / MICRO


def _elasticity(scenario: Scenario, out: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Keep a candidate with probability demand / cap (the simulator's thinning)."""
    elasticity = scenario.traffic.elasticity
    if elasticity is None:
        return np.ones(len(out), dtype=bool)
    price = out["unit_price_micro"].to_numpy() / MICRO
    rated = out["rate_code"].notna().to_numpy()
    with np.errstate(divide="ignore"):
        demand = np.where(price > 0, (np.maximum(price, 1e-12) / elasticity.reference_price)
                          ** elasticity.coefficient, elasticity.cap)
    demand = np.where(rated, demand, 1.0)
    return rng.random(len(out)) * elasticity.cap < demand


# -- deciding, one message per kind ------------------------------------------------------
