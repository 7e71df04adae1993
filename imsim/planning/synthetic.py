"""A synthetic month of messages, drawn with numpy from a scenario's population and
traffic, for planning questions where timing does not matter (no queues, no presence,
no registration); `imsim.planning.bill` bills them.

- senders: every account of an environment equally active; times uniform over the
  month, thinned by the 24-hour ``traffic.profile`` on the sender's local clock;
- recipients: a buddy, or (``off_buddy_share``, and always without buddies) the
  ``destinations.mix`` (a fixed number, a prefix with random digits, any account);
  the ``domain`` of a mix entry is not modelled (the environment's own domain);
- lengths from ``traffic.length``, drawn as the simulator draws them
  (`imsim.model.distributions.draws`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from imsim.model.config import Environment
from imsim.model.distributions import draws
from imsim.model.scenario import Scenario
from imsim.model.traffic import Traffic

DAY = 86_400
US = 1_000_000


@dataclass
class Population:
    """One environment's accounts as arrays: ids, customer, product, buddies (CSR)."""

    env: Environment
    ids: np.ndarray            # int64 E.164 numbers
    customer: np.ndarray       # index into env.customers
    product: np.ndarray        # index into ``products``
    products: list[str]
    offsets: np.ndarray        # buddies of account i: targets[offsets[i]:offsets[i+1]]
    targets: np.ndarray

    @classmethod
    def of(cls, env: Environment) -> Population:
        pairs = [(c, a) for c, customer in enumerate(env.customers) for a in customer.accounts]
        index = {a.id: i for i, (_, a) in enumerate(pairs)}
        products = sorted({a.product for _, a in pairs})
        buddies = [[index[b] for b in a.buddies if b in index] for _, a in pairs]
        counts = np.array([len(b) for b in buddies], dtype=np.int64)
        return cls(env, np.array([int(a.id) for _, a in pairs], dtype=np.int64),
                   np.array([c for c, _ in pairs], dtype=np.int64),
                   np.array([products.index(a.product) for _, a in pairs], dtype=np.int64),
                   products, np.r_[0, np.cumsum(counts)],
                   np.fromiter((t for b in buddies for t in b), dtype=np.int64,
                               count=int(counts.sum())))

    @property
    def size(self) -> int:
        return len(self.ids)


# -- drawing ---------------------------------------------------------------------------

def synthetic_messages(scenario: Scenario, messages: int,
                       seed: int | np.random.SeedSequence | None = None,
                       days: float = 30.0, start: dt.datetime | None = None) -> pd.DataFrame:
    """About ``messages`` candidate messages over ``days`` from ``start`` (default: the
    scenario's), shared among environments by their number of accounts. Columns:
    env, CLI, CLD (int64), connect_time (UTC), length; in no particular order."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(
        scenario.sim.seed if seed is None else seed)
    pops = [Population.of(env) for env in scenario.environments]
    total = sum(p.size for p in pops) or 1
    frames = [_env_messages(pop, scenario.traffic, np.random.default_rng(child),
                            round(messages * pop.size / total), start or scenario.start, days)
              for pop, child in zip(pops, root.spawn(len(pops)), strict=True)]
    return pd.concat(frames, ignore_index=True)


def _env_messages(pop: Population, traffic: Traffic, rng: np.random.Generator, n: int,
                  start: dt.datetime, days: float) -> pd.DataFrame:
    if pop.size == 0 or n <= 0:
        return pd.DataFrame({"env": pd.Series([], dtype="str"), "CLI": np.array([], np.int64),
                             "CLD": np.array([], np.int64),
                             "connect_time": pd.Series([], dtype="datetime64[us, UTC]"),
                             "length": np.array([], np.int64)})
    sender, at_us = _senders_and_times(pop, traffic, rng, n, start, days)
    cld, keep = _recipients(pop, traffic, rng, sender)
    length = np.maximum(draws(traffic.length, rng)(len(sender)), 0).astype(np.int64)
    return pd.DataFrame({
        "env": pd.Categorical.from_codes(np.zeros(int(keep.sum()), dtype=np.int8),
                                 [pop.env.name]),
        "CLI": pop.ids[sender][keep], "CLD": cld[keep],
        "connect_time": pd.to_datetime(at_us[keep], unit="us", utc=True),
        "length": length[keep]})


def _senders_and_times(pop: Population, traffic: Traffic, rng: np.random.Generator, n: int,
                       start: dt.datetime, days: float) -> tuple[np.ndarray, np.ndarray]:
    """Senders uniform, times uniform over the period and thinned by the local profile."""
    begin = int(start.timestamp() * US)
    span = int(days * DAY * US)
    if traffic.profile is None:
        return rng.integers(0, pop.size, n), begin + rng.integers(0, span, n)
    profile = np.asarray(traffic.profile) / max(traffic.profile)
    zones = [c.time_zone for c in pop.env.customers]
    senders, times, have = [], [], 0
    while have < n:
        batch = int((n - have) / profile.mean() * 1.05) + 1000
        sender = rng.integers(0, pop.size, batch)
        at = begin + rng.integers(0, span, batch)
        hour = _local_hours(at, pop.customer[sender], zones)
        ok = rng.random(batch) < profile[hour]
        senders.append(sender[ok])
        times.append(at[ok])
        have += int(ok.sum())
    return np.concatenate(senders)[:n], np.concatenate(times)[:n]


def _local_hours(at_us: np.ndarray, customer: np.ndarray, zones: list[str]) -> np.ndarray:
    """The local hour of each time in its customer's zone (one offset per zone when it
    does not change within the period, else pandas' conversion)."""
    hours = np.empty(len(at_us), dtype=np.int64)
    span = (int(at_us.min()), int(at_us.max())) if len(at_us) else (0, 0)
    for c, zone in enumerate(zones):
        rows = np.nonzero(customer == c)[0]
        if not len(rows):
            continue
        offset = _fixed_offset_us(zone, *span)
        if offset is not None:
            hours[rows] = (at_us[rows] + offset) // (3600 * US) % 24
        else:
            utc = pd.DatetimeIndex(at_us[rows].astype("datetime64[us]")).tz_localize("UTC")
            hours[rows] = utc.tz_convert(zone).hour
    return hours


def _fixed_offset_us(zone: str, first: int, last: int) -> int | None:
    """The zone's UTC offset (us) if it is the same at every hour from first to last."""
    checks = pd.date_range(pd.Timestamp(first, unit="us", tz="UTC"),
                           pd.Timestamp(last, unit="us", tz="UTC") + pd.Timedelta(hours=1),
                           freq="h").tz_convert(zone)
    offsets = {ts.utcoffset() for ts in checks}
    if len(offsets) != 1:
        return None
    delta = offsets.pop()
    return None if delta is None else int(delta.total_seconds() * US)


def _recipients(pop: Population, traffic: Traffic, rng: np.random.Generator,
                sender: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(CLD as int64, keep): a buddy, or the destination mix, as the simulator picks."""
    n, spec = len(sender), traffic.destinations
    count = np.diff(pop.offsets)[sender]
    use_buddy = count > 0
    if spec.mix and spec.off_buddy_share:
        use_buddy &= rng.random(n) >= spec.off_buddy_share
    pick = pop.offsets[sender] + (rng.random(n) * count).astype(np.int64)
    cld = np.where(use_buddy, pop.ids[pop.targets[np.minimum(pick, len(pop.targets) - 1)]]
                   if len(pop.targets) else 0, 0)
    if not spec.mix:
        return cld, use_buddy
    weights = np.cumsum([d.weight for d in spec.mix])
    entry = np.searchsorted(weights, rng.random(n) * weights[-1], side="right")
    for k, d in enumerate(spec.mix):
        rows = np.nonzero(~use_buddy & (entry == k))[0]
        if d.number is not None:
            cld[rows] = int(d.number.lstrip("+"))
        elif d.prefix is not None:
            free = d.digits - len(d.prefix)
            cld[rows] = int(d.prefix) * 10 ** free + rng.integers(0, 10 ** free, len(rows))
        else:
            cld[rows] = pop.ids[rng.integers(0, pop.size, len(rows))]
    return cld, np.ones(n, dtype=bool)
