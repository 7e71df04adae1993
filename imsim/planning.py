"""The vectorised planning path: a whole synthetic month rated in seconds.

For what-if questions where timing does not matter (no queues, no presence, no
registration), `synthetic_messages` draws a month of messages from a scenario's
population and traffic with numpy, and `rate_messages` bills them with
`imsim.rules.batch.rate_many` under the same rules as the event model:

- senders: every account of an environment equally active; times uniform over the
  month, thinned by the 24-hour ``traffic.profile`` on the sender's local clock;
- recipients: a buddy, or (``off_buddy_share``, and always without buddies) the
  ``destinations.mix`` (a fixed number, a prefix with random digits, any account);
  the ``domain`` of a mix entry is not modelled (the environment's own domain);
- lengths from ``traffic.length``; elasticity thins candidates by
  ``(unit price / reference) ** coefficient`` (at most ``cap``), as the simulator does;
- checks: the customer tariff must rate the destination (check 4, balances are not
  modelled), the recipient must be an account of the environment (check 6); every
  such message is delivered;
- the customer's bundle (`imsim.rules.decide.BillingEngine.bundle_of`): the first
  ``included_messages`` of an account per calendar month in its customer's time zone
  are charged 0, in time order.

``month(scenario, messages=10_000_000)`` returns the rated frame and a summary.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from imsim.rules.batch import MICRO, rate_many
from imsim.rules.decide import BillingEngine
from imsim.config import Environment, ServicePolicy
from imsim.distributions import Distribution
from imsim.rules.proxy import recipient_number, select_policy
from imsim.scenario import Scenario
from imsim.traffic import Traffic

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

def draw(dist: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` values of a scenario distribution (as the simulator draws them)."""
    mean = float(dist.mean or 0.0)
    if dist.dist == "constant":
        return np.full(n, float(dist.value or 0.0))
    if dist.dist == "uniform":
        return rng.uniform(float(dist.low or 0.0), float(dist.high or 0.0), n)
    if dist.dist == "exponential":
        return rng.exponential(mean, n)
    if dist.dist == "normal":
        return np.maximum(rng.normal(mean, float(dist.sd or 0.0), n), 0.0)
    if dist.dist == "lognormal":
        sigma2 = float(np.log1p((float(dist.sd or 0.0) / mean) ** 2))
        return rng.lognormal(float(np.log(mean)) - sigma2 / 2, sigma2 ** 0.5, n)
    if dist.dist == "gamma":
        shape = float(dist.shape or 1.0)
        return rng.gamma(shape, mean / shape, n)
    if dist.dist == "geometric":
        return rng.geometric(dist.p if dist.p is not None else 1.0 / mean, n).astype(float)
    if dist.dist == "poisson":
        return rng.poisson(mean, n).astype(float)
    raise ValueError(f"no sampler for {dist.dist}")


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
    length = np.maximum(draw(traffic.length, rng, len(sender)), 0).astype(np.int64)
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


# -- rating --------------------------------------------------------------------------------

CHECKS: tuple[str, ...] = ("delivered", "account", "service_policy", "usage_charge",
                           "customer_rate", "vendor_connection", "vendor_rate", "recipient")
_CHECK = {name: k for k, name in enumerate(CHECKS)}


def rate_messages(scenario: Scenario, frame: pd.DataFrame,
                  demand: np.random.Generator | None = None) -> pd.DataFrame:
    """Bill every message of ``frame`` (env, CLI, CLD, connect_time, length) as the
    message path would, timing aside. Adds ``check`` (the deciding check, 'delivered'
    when none), ``billed``, ``rate_code``, ``units``, ``unit_price_micro`` (the customer
    rate's price), ``included``, ``charged_amount_micro`` (charged: 0 when included or
    not billed) and ``cost_micro`` (the vendor's), money also as floats
    (``charged_amount``, ``cost``). With ``demand``, candidates are first thinned by
    the scenario's elasticity (as the simulator's Poisson stream does)."""
    names = pd.unique(frame["env"])
    if len(names) == 1:
        return _rate_env(scenario, scenario.environment(str(names[0])), frame, demand)
    parts = [_rate_env(scenario, scenario.environment(str(name)), part, demand)
             for name, part in frame.groupby("env", sort=False, observed=True)]
    if not parts:
        return frame.assign(check=pd.Series([], dtype="str"), billed=False)
    return pd.concat(parts).sort_index()


def _rate_env(scenario: Scenario, env: Environment, frame: pd.DataFrame,
              demand: np.random.Generator | None) -> pd.DataFrame:
    engine, pop = BillingEngine(env), Population.of(env)
    policy = select_policy(env.service_policies, env.domain)
    n = len(frame)
    sender = pd.Index(pop.ids).get_indexer(frame["CLI"].to_numpy(dtype=np.int64))
    check = np.where(sender < 0, _CHECK["account"], 0).astype(np.int8)
    cld = frame["CLD"].to_numpy(dtype=np.int64)
    money = {c: np.zeros(n, dtype=np.int64) for c in ("units", "unit_price_micro",
                                                      "charged_amount_micro", "cost_micro")}
    codes = np.full(n, -1, dtype=np.int64)
    names: list[str] = []
    if policy is None:
        check[:] = _CHECK["service_policy"]
    else:
        cld = _translate(cld, policy, env.country)
        rated = pd.DataFrame({"CLD": cld, "connect_time": frame["connect_time"].array,
                              "length": frame["length"].to_numpy()})
        _customer(engine, pop, policy, rated, sender, check, money, codes, names)
        _vendor(engine, policy, rated, check, money)
        known = pd.Index(pop.ids).get_indexer(cld) >= 0
        check[(check == 0) & ~known] = _CHECK["recipient"]
    out = frame.assign(CLD=cld, check=pd.Categorical.from_codes(check, CHECKS),
                       rate_code=pd.Categorical.from_codes(codes, names or ["|"]), **money)
    keep = _elasticity(scenario, out, demand) if demand is not None else None
    if keep is not None:
        out, sender = out[keep], sender[keep]
    out["billed"] = (out["check"] == "delivered").to_numpy() & bool(
        policy is not None and policy.outgoing_aaa)
    out["included"] = _included(engine, pop, out, sender)
    charged = out["billed"].to_numpy() & ~out["included"].to_numpy()
    out["charged_amount_micro"] = np.where(charged, out["charged_amount_micro"], 0)
    out["cost_micro"] = np.where(out["billed"], out["cost_micro"], 0)
    out["charged_amount"] = out["charged_amount_micro"] / MICRO
    out["cost"] = out["cost_micro"] / MICRO
    return out


def _translate(cld: np.ndarray, policy: ServicePolicy, country: str) -> np.ndarray:
    """The numbers billing sees (the policy's E.164 translation, per distinct number)."""
    if not policy.userpart_e164_translation:
        return cld
    values, inverse = np.unique(cld, return_inverse=True)
    mapped = np.array([int(recipient_number(str(v), True, country) or -1) for v in values],
                      dtype=np.int64)
    return mapped[inverse]


def _customer(engine: BillingEngine, pop: Population, policy: ServicePolicy,
              frame: pd.DataFrame, sender: np.ndarray, check: np.ndarray,
              money: dict[str, np.ndarray], codes: np.ndarray, names: list[str]) -> None:
    """Check 4 (without balances) and the customer rating, per (customer, product)."""
    key = np.where(sender >= 0, pop.customer[sender] * len(pop.products)
                   + pop.product[sender], -1)
    for k in np.flatnonzero(np.bincount(key[key >= 0])):
        rows = np.nonzero(key == k)[0]
        customer = engine.env.customers[int(k) // len(pop.products)]
        product = engine.env.product(pop.products[int(k) % len(pop.products)])
        tariff = engine.usage_tariff(product, "outgoing") if product else None
        if product is None or tariff is None or "messaging" not in product.included_services:
            check[rows] = _CHECK["usage_charge"]
            continue
        rated = rate_many(_rows(frame, rows), tariff, unit_size=policy.billing_unit_size,
                          time_zone=customer.time_zone)
        for column in ("units", "unit_price_micro", "charged_amount_micro"):
            money[column][rows] = rated[column].to_numpy()
        category = rated["rate_code"].cat
        mapping = np.array([_name_id(names, c) for c in category.categories], dtype=np.int64)
        group_codes = category.codes.to_numpy()
        codes[rows] = np.where(group_codes >= 0, mapping[group_codes], -1)
        refused = ~rated["matched"].to_numpy() | rated["forbidden"].to_numpy()
        check[rows[refused]] = _CHECK["customer_rate"]


def _rows(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    return frame if len(rows) == len(frame) else frame.iloc[rows]


def _name_id(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name)


def _vendor(engine: BillingEngine, policy: ServicePolicy, frame: pd.DataFrame,
            check: np.ndarray, money: dict[str, np.ndarray]) -> None:
    """Check 5: the vendor connection and its tariff (the cost)."""
    connection = engine.vendor_connection(policy)
    tariff = engine.env.tariff(connection.tariff) if connection else None
    rows = np.nonzero(check == 0)[0]
    if tariff is None:
        check[rows] = _CHECK["vendor_connection"]
        return
    rated = rate_many(_rows(frame, rows), tariff, unit_size=policy.billing_unit_size)
    money["cost_micro"][rows] = rated["charged_amount_micro"].to_numpy()
    refused = ~rated["matched"].to_numpy() | rated["forbidden"].to_numpy()
    check[rows[refused]] = _CHECK["vendor_rate"]


def _elasticity(scenario: Scenario, out: pd.DataFrame,
                rng: np.random.Generator) -> np.ndarray | None:
    """Keep a candidate with probability demand / cap (the simulator's thinning)."""
    elasticity = scenario.traffic.elasticity
    if elasticity is None:
        return None
    price = out["unit_price_micro"].to_numpy() / MICRO
    rated = out["rate_code"].notna().to_numpy()
    with np.errstate(divide="ignore"):
        demand = np.where(price > 0, (np.maximum(price, 1e-12) / elasticity.reference_price)
                          ** elasticity.coefficient, elasticity.cap)
    demand = np.where(rated, demand, 1.0)
    return rng.random(len(out)) * elasticity.cap < demand


def _included(engine: BillingEngine, pop: Population, out: pd.DataFrame,
              sender: np.ndarray) -> np.ndarray:
    """`BillingEngine.bundle_of`'s rule: an account's first N billed messages of each
    month (its customer's time zone), in time order, are charged 0."""
    allowance = np.array([getattr(engine.env.product(p), "included_messages", 0)
                          for p in pop.products], dtype=np.int64)
    limit = np.where(sender >= 0, allowance[pop.product[np.maximum(sender, 0)]], 0)
    rows = np.nonzero(out["billed"].to_numpy() & (limit > 0))[0]
    included = np.zeros(len(out), dtype=bool)
    if len(rows) == 0:
        return included
    times = pd.DatetimeIndex(out["connect_time"].iloc[rows])
    period = np.zeros(len(rows), dtype=np.int64)
    customer = pop.customer[sender[rows]]
    for c, entry in enumerate(engine.env.customers):
        mine = np.nonzero(customer == c)[0]
        if len(mine):
            local = times[mine].tz_convert(entry.time_zone)
            period[mine] = local.year * 12 + local.month
    order = np.lexsort((times.asi8, period, sender[rows]))
    account, month_of = sender[rows][order], period[order]
    first = np.r_[True, (account[1:] != account[:-1]) | (month_of[1:] != month_of[:-1])]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - start
    included[rows[order[rank < limit[rows][order]]]] = True
    return included


# -- a month -------------------------------------------------------------------------------

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
    billed = rated[rated["billed"]]
    revenue = int(billed["charged_amount_micro"].sum())
    cost = int(billed["cost_micro"].sum())
    by_code = billed.groupby("rate_code", observed=True).agg(
        messages=("CLI", "size"), revenue_micro=("charged_amount_micro", "sum"))
    return {"messages": len(rated), "billed": len(billed),
            "included": int(billed["included"].sum()),
            "outcomes": rated["check"].value_counts().sort_index().to_dict(),
            "revenue": revenue / MICRO, "cost": cost / MICRO, "margin": (revenue - cost) / MICRO,
            "by_rate_code": {str(k): {"messages": int(v.messages),
                                      "revenue": int(v.revenue_micro) / MICRO}
                             for k, v in by_code.iterrows()}}
