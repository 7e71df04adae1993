"""Bill a frame of messages through the rulebook, vectorised: planning and re-rating.

The billing engine decides; this module only finds out which messages it needs to ask
about. A message's answer depends on (`imsim.rules.decide`):

- the configuration version in effect at its time (the setup journal, propagated);
- the sender's account: its customer, product and whether it is blocked;
- the recipient domain, through the service policy it selects;
- the recipient: not a number, no account of this environment, or an account (and
  its customer and product, for charged incoming messages);
- whether the customer tariff, the vendor tariff and (for charged incoming messages)
  the recipient's tariff rate the number at that time, and whether that rate is
  forbidden.

Messages alike in all of these get the same answer: `BillingEngine.decide` is asked
once per kind (one message stands for its kind), and only the money is vectorised
(`imsim.rules.batch.rate_many`: rate code, units, prices, in micro-units).

Settlement follows `imsim.rules.settle`, each message settled as delivered in time
order (planning has no timing, so holds never overlap): a bundle's first included
messages of each account-month are charged 0 (`bundle_left`); a payer whose
charges could outrun its balance or credit limit has its messages settled one by one
through the engine and the ledger themselves (`_settle_in_order`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from imsim.model.config import Environment, Tariff
from imsim.model.replay import timeline
from imsim.model.scenario import Scenario
from imsim.rules.batch import MICRO, rate_many
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger, Payer
from imsim.rules.message import Decision, Message
from imsim.rules.settle import CANNOT_PAY, Tab, charge

DELIVERED = "delivered"
"""The ``check`` of a message billing authorized (planning has no timing: delivered)."""
_NONE, _RATED, _FORBIDDEN = 0, 1, 2   # what a tariff says of a number (`Kinds._rate`)
_MONEY = ("units", "unit_price_micro", "charged_amount_micro", "cost_micro",
          "incoming_micro")



def rate_messages(scenario: Scenario, frame: pd.DataFrame,
                  demand: np.random.Generator | None = None) -> pd.DataFrame:
    """Bill every message of ``frame`` (env, CLI, CLD, connect_time, length; optionally
    ``domain``, the recipient's, by default the environment's) as the message path
    would, timing aside.

    Adds ``code``, ``check`` ('delivered' when billing authorized the message, else
    the engine's check), ``step`` (the handbook step; <NA> when none), ``billed``,
    ``rate_code``, ``units``, ``unit_price_micro`` (the customer rate's price),
    ``included``, ``charged_amount_micro`` (charged: 0 when included or not billed),
    ``cost_micro`` (the vendor's) and ``incoming_micro`` (charged to the recipient);
    money also as floats (``charged_amount``, ``cost``). ``CLD`` becomes the number
    billing sees (E.164 when the policy translates; -1 when not a number). With
    ``demand``, candidates are first thinned by the scenario's elasticity (as the
    simulator's Poisson stream does). Billing many frames of one scenario: `Billing`."""
    return Billing(scenario).rate(frame, demand)


class Prepared:
    """One configuration version of an environment, prepared once for every frame it
    bills: its engine, its accounts as arrays, who pays for each account and each
    account's monthly allowance (found when first needed), and the recipients the
    engine was asked about so far (by user part and domain: policy index, number)."""

    def __init__(self, env: Environment) -> None:
        self.env, self.engine = env, BillingEngine(env)
        self.recipients: dict[tuple[str, str], tuple[int, int]] = {}

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts.of(self.env)

    @cached_property
    def purses(self) -> Purses:
        return Purses(self.engine, self.accounts)

    @cached_property
    def allowances(self) -> np.ndarray:
        """Per account, the messages its product includes each month (0: no bundle)."""
        out = np.zeros(max(len(self.accounts.ids), 1), dtype=np.int64)
        for i, number in enumerate(self.accounts.ids):
            bundle = self.engine.bundle_of(str(number))
            out[i] = bundle[1] if bundle is not None else 0
        return out


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
        out = pd.concat(parts).sort_index() if parts else _columns(work.iloc[:0], {})
        out["check"], out["rate_code"] = (out["check"].astype("category"),
                                          out["rate_code"].astype("category"))
        out.index = frame.index[out.index.to_numpy()]
        return out.drop(columns=["_version", "_to_user", "_kind"], errors="ignore")

    def _start(self, name: str) -> Start:
        """Environment ``name``'s balances at the scenario's start; what each purse (of
        its last version) can spend is found once."""
        env = self.scenario.environment(name)
        if name not in self.rooms:
            ledger = Ledger.of(env)
            self.rooms[name] = np.array([_micro_floor(ledger.room(payer)) for payer
                                         in self.versions[name][1][-1].purses.payers],
                                        dtype=np.float64)
        return Start(env, self.rooms[name])


class Start:
    """An environment's balances at the scenario's start: what each purse can spend
    (``room``, in whole micro-units rounded down, inf when unlimited: `Ledger.room`),
    and the `Ledger` to settle in, made only when a message may find a purse short."""

    def __init__(self, env: Environment, room: np.ndarray) -> None:
        self.env, self.room = env, room

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger.of(self.env)


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

@dataclass
class Accounts:
    """An environment's accounts as arrays: E.164 ids and each one's class (accounts of
    one customer with the same product and blocked flag get the same answers); per
    class, its customer (index), product and blocked flag."""

    ids: pd.Index
    klass: np.ndarray
    classes: list[tuple[int, str, bool]]

    @classmethod
    def of(cls, env: Environment) -> Accounts:
        pairs = [(c, a) for c, customer in enumerate(env.customers) for a in customer.accounts]
        classes = list(dict.fromkeys((c, a.product, a.blocked) for c, a in pairs))
        index = {k: i for i, k in enumerate(classes)}
        return cls(pd.Index(np.array([int(a.id) for _, a in pairs], dtype=np.int64)),
                   np.array([index[(c, a.product, a.blocked)] for c, a in pairs], np.int64),
                   classes)

    def class_of(self, numbers: np.ndarray) -> np.ndarray:
        """Per number, its account's class; -1 when it is no account here."""
        found = self.ids.get_indexer(numbers)
        return np.where(found >= 0, self.klass[np.maximum(found, 0)], -1)

    def customer_of(self) -> np.ndarray:
        """Per account, its customer's index."""
        return np.array([c for c, _, _ in self.classes], dtype=np.int64)[self.klass]


class Kinds:
    """The messages of one configuration version, sorted into kinds (what the answer
    depends on) and decided by the engine once per kind."""

    def __init__(self, prepared: Prepared, frame: pd.DataFrame) -> None:
        self.prepared, self.frame = prepared, frame
        self.engine, self.env, self.accounts = prepared.engine, prepared.env, prepared.accounts
        self.cli = frame["CLI"].to_numpy(dtype=np.int64)
        self.times = frame["connect_time"].array
        self.length = frame["length"].to_numpy()
        self.sender = self.accounts.class_of(self.cli)
        if "domain" in frame:
            cld, domain = frame["CLD"].to_numpy(), frame["domain"].astype(str).to_numpy()
            self.address, first = together(cld, domain)
            addresses = list(zip(cld[first].tolist(), domain[first].tolist(), strict=True))
        else:   # one domain: the user parts are the addresses
            self.address, users = pd.factorize(frame["CLD"].to_numpy())
            addresses = [(user, self.env.domain) for user in users.tolist()]
        self.addresses = addresses   # (user part as dialled, domain)
        policy, number = self._recipients(addresses)
        self.policy, self.number = policy[self.address], number[self.address]
        self.recipient = self.accounts.class_of(number)[self.address]
        self.money = {c: np.zeros(len(frame), dtype=np.int64) for c in _MONEY}
        self.codes = np.full(len(frame), -1, dtype=np.int64)   # into ``self.code_names``
        self.code_names: list[str] = []
        self.answers: list[Decision] = []   # the engine's, per kind (`decided`)

    def _recipients(self, addresses: list[tuple[Any, str]]) -> tuple[np.ndarray, np.ndarray]:
        """Per address: the index of the policy its domain selects (-1: none) and the
        number billing sees (-1: not a number), each asked once per version."""
        policies = {id(p): i for i, p in enumerate(self.env.service_policies)}
        known = self.prepared.recipients
        policy = np.empty(len(addresses), dtype=np.int64)
        number = np.empty(len(addresses), dtype=np.int64)
        for k, address in enumerate(addresses):
            answer = known.get(address)
            if answer is None:
                found, translated = self.engine.recipient(str(address[0]), address[1])
                answer = known[address] = (
                    policies[id(found)] if found is not None else -1, _as_int(translated))
            policy[k], number[k] = answer
        return policy, number

    # -- the money, vectorised ---------------------------------------------------------
    def _groups(self, klass: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """(account class, policy, row positions) of the messages with a number."""
        codes, first = together(klass, self.policy)
        for k, (kind, policy) in enumerate(zip(klass[first], self.policy[first], strict=True)):
            rows = np.flatnonzero((codes == k) & (self.number >= 0))
            if kind >= 0 and policy >= 0 and len(rows):
                yield int(kind), int(policy), rows

    def _rate(self, rows: np.ndarray, tariff: Tariff, numbers: np.ndarray, policy: int,
              time_zone: str) -> tuple[pd.DataFrame, np.ndarray]:
        """`rate_many` of ``rows`` (to ``numbers``), and what the tariff says of each."""
        every = len(rows) == len(self.frame)
        rated = rate_many(pd.DataFrame({
            "CLD": numbers, "connect_time": self.times if every else self.times[rows],
            "length": self.length if every else self.length[rows]}),
                          tariff, unit_size=self.env.service_policies[policy].billing_unit_size,
                          time_zone=time_zone)
        state = np.where(~rated["matched"].to_numpy(), _NONE,
                         np.where(rated["forbidden"].to_numpy(), _FORBIDDEN, _RATED))
        return rated, state

    def _usage(self, klass: int, direction: str) -> tuple[Tariff | None, str]:
        """A class's usage tariff for ``direction`` and its customer's time zone."""
        customer, product_name, _ = self.accounts.classes[klass]
        product = self.env.product(product_name)
        tariff = self.engine.usage_tariff(product, direction) if product else None
        return tariff, self.env.customers[customer].time_zone

    def _customer_states(self) -> np.ndarray:
        """What the sender's customer tariff says of the number; its money and code."""
        state = np.zeros(len(self.frame), dtype=np.int64)
        for klass, policy, rows in self._groups(self.sender):
            tariff, time_zone = self._usage(klass, "outgoing")
            if tariff is None:
                continue
            rated, state[rows] = self._rate(rows, tariff, self.number[rows], policy, time_zone)
            for column in ("units", "unit_price_micro", "charged_amount_micro"):
                self.money[column][rows] = rated[column].to_numpy()
            self.codes[rows] = self._code_ids(rated["rate_code"])
        return state

    def _code_ids(self, rate_code: pd.Series) -> np.ndarray:
        """Categorical rate codes as indexes into ``code_names`` (-1: none)."""
        mapping = np.array([self._code_id(str(c)) for c in rate_code.cat.categories],
                           dtype=np.int64)
        local = rate_code.cat.codes.to_numpy()
        return np.where(local >= 0, mapping[np.maximum(local, 0)] if len(mapping) else -1, -1)

    def _code_id(self, name: str) -> int:
        if name not in self.code_names:
            self.code_names.append(name)
        return self.code_names.index(name)

    def _vendor_states(self) -> np.ndarray:
        """What the vendor tariff of the policy's connection says of the number; the cost."""
        state = np.zeros(len(self.frame), dtype=np.int64)
        for policy in np.unique(self.policy[self.policy >= 0]):
            connection = self.engine.vendor_connection(self.env.service_policies[policy])
            tariff = self.env.tariff(connection.tariff) if connection and connection.tariff \
                else None
            rows = np.flatnonzero((self.policy == policy) & (self.number >= 0))
            if tariff is not None and len(rows):
                rated, state[rows] = self._rate(rows, tariff, self.number[rows], int(policy),
                                                "UTC")
                self.money["cost_micro"][rows] = rated["charged_amount_micro"].to_numpy()
        return state

    def _incoming_states(self) -> np.ndarray:
        """What the recipient's incoming tariff says of the sender; its charge."""
        state = np.zeros(len(self.frame), dtype=np.int64)
        for klass, policy, rows in self._groups(self.recipient):
            tariff, time_zone = self._usage(klass, "incoming")
            if tariff is not None:
                rated, state[rows] = self._rate(rows, tariff, self.cli[rows], policy, time_zone)
                self.money["incoming_micro"][rows] = rated["charged_amount_micro"].to_numpy()
        return state

    # -- the kinds ---------------------------------------------------------------------
    def kinds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per message its kind (0..k-1), and one message (a row position) per kind."""
        recipient = np.where(self.number < 0, -2, self.recipient)
        columns = [self.sender, self.policy, recipient, self._customer_states(),
                   self._vendor_states(), self._incoming_states()]
        return together(*columns)

    def decided(self, version: int) -> pd.DataFrame:
        """The frame with the engine's answer and the money of each message."""
        codes, examples = self.kinds()
        self.answers = [self.engine.decide(self._message(row)) for row in examples]
        frame = self.frame.assign(CLD=self.number, _to_user=self.frame["CLD"].to_numpy(),
                                  _version=version, _kind=codes)
        return _columns(frame, self._answers(codes, self.answers))

    def _message(self, row: int) -> Message:
        return row_message(self.frame, row, *self.addresses[self.address[row]])

    def _answers(self, codes: np.ndarray, answers: list[Decision]) -> dict[str, object]:
        def per_kind(values: list[Any], dtype: Any = bool) -> np.ndarray:
            return np.array(values, dtype=dtype)[codes]
        ok = per_kind([a.ok for a in answers])
        rated = per_kind([a.customer is not None for a in answers])
        checks = list(dict.fromkeys(DELIVERED if a.ok else a.check for a in answers))
        money = dict(self.money)
        for column in ("units", "unit_price_micro", "charged_amount_micro"):
            money[column] = np.where(rated, money[column], 0)
        money["cost_micro"] = np.where(per_kind([a.vendor is not None for a in answers]) & ok,
                                       money["cost_micro"], 0)
        money["incoming_micro"] = np.where(per_kind([a.incoming is not None for a in answers])
                                           & ok, money["incoming_micro"], 0)
        return {"code": per_kind([a.code for a in answers], np.int16),
                "check": pd.Categorical.from_codes(per_kind(
                    [checks.index(DELIVERED if a.ok else a.check) for a in answers], np.int8),
                    checks),
                "step": per_kind([-1 if a.step is None else a.step for a in answers], np.int16),
                "billed": ok & per_kind([a.billed for a in answers]),
                "rate_code": pd.Categorical.from_codes(np.where(rated, self.codes, -1),
                                                       self.code_names or ["|"]),
                "allowance": self.prepared.allowances[np.maximum(
                    self.accounts.ids.get_indexer(self.cli), 0)] * (self.sender >= 0),
                **money}


def together(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the index of its distinct combination of ``columns``' values, and the
    first row of each combination: the columns' codes as one integer (a small integer
    column's values are its codes; others are factorized first), factorized."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        small = column.dtype.kind in "iu" and len(column) > 0
        low, high = (int(column.min()), int(column.max())) if small else (0, 0)
        if small and high - low < 1024:   # its values are its codes
            codes, count = column.astype(np.int64) - low, high - low + 1
        else:
            codes, uniques = pd.factorize(column)
            count = len(uniques)
        key = key * (count + 1) + codes
    codes, keys = pd.factorize(key)
    first = np.full(len(keys), len(key), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(key)))
    return codes, first


def row_message(frame: pd.DataFrame, row: int, to_user: object, domain: object) -> Message:
    """The `Message` billing sees for row ``row`` (a position) of ``frame``, sent to
    ``to_user`` (as dialled) at ``domain``."""
    return Message(f"plan-{row}", str(frame["CLI"].iloc[row]), str(to_user), str(domain),
                   frame["connect_time"].iloc[row].to_pydatetime(),
                   int(frame["length"].iloc[row]))


def _as_int(number: str | None) -> int:
    return int(number) if number is not None and len(number) <= 18 else -1


def _columns(frame: pd.DataFrame, answers: dict[str, object]) -> pd.DataFrame:
    """``frame`` with the answer columns (their empty forms for an empty frame)."""
    n = len(frame)
    if not answers:   # an empty frame
        answers = {"code": np.zeros(n, np.int16), "check": pd.Categorical([DELIVERED] * n),
                   "step": np.full(n, -1, np.int16), "billed": np.zeros(n, bool),
                   "rate_code": pd.Categorical([None] * n, categories=["|"]),
                   "allowance": np.zeros(n, np.int64),
                   **{c: np.zeros(n, np.int64) for c in _MONEY}}
    steps = np.asarray(answers["step"], dtype=np.int16)
    step = pd.arrays.IntegerArray(steps, steps < 0)
    columns = ("code", "check", "step", "billed", "rate_code", "allowance", "included",
               *_MONEY)
    given = {**answers, "step": step, "included": np.zeros(n, dtype=bool)}
    return frame.assign(**{c: given[c] for c in columns})


# -- settling ---------------------------------------------------------------------------

def settle(decided: pd.DataFrame, prepared: list[Prepared],
           answers: dict[int, list[Decision]], start: Start) -> pd.DataFrame:
    """Settle an environment's decided messages as delivered, in time order: a bundle's
    included messages, then the balances (`imsim.rules.settle`'s rules); adds the float
    money columns."""
    out = decided
    accounts, engines = prepared[-1].accounts, [p.engine for p in prepared]
    sender = accounts.ids.get_indexer(out["CLI"].to_numpy(dtype=np.int64))
    out["_free"] = bundle_left(out, sender, accounts, engines[-1].env)
    out["included"] = out["billed"] & out["_free"]
    purses = prepared[-1].purses
    risky, slow = _risky(out, sender, accounts, purses, start.room)
    if risky.any():
        order = np.argsort(pd.DatetimeIndex(out["connect_time"]).asi8, kind="stable")
        rows = order[risky[order]]
        if not out["incoming_micro"].to_numpy().any():
            rows = _past_the_safe_start(out, rows[~slow[rows]], sender, purses, start,
                                        keep=rows[slow[rows]])
        InOrder(out, engines, answers, start.ledger).settle(rows, slow, sender, purses)
    billed = out["billed"].to_numpy()
    charged = billed & ~out["included"].to_numpy()
    out["charged_amount_micro"] = np.where(charged, out["charged_amount_micro"], 0)
    out["cost_micro"] = np.where(billed, out["cost_micro"], 0)
    out["incoming_micro"] = np.where(billed, out["incoming_micro"], 0)
    out["charged_amount"] = out["charged_amount_micro"] / MICRO
    out["cost"] = out["cost_micro"] / MICRO
    return out.drop(columns=["allowance", "_free"])


def bundle_left(out: pd.DataFrame, sender: np.ndarray, accounts: Accounts,
                env: Environment) -> np.ndarray:
    """`BundleTab`'s rule over a frame settled as delivered in time order: whether an
    included message is left for each message, its account having had fewer than
    ``allowance`` billed messages before it in its calendar month (its customer's time
    zone). A billed message with one left is included (charged 0); a refusal with one
    left is checked against 0. tests/test_planning_agreement.py holds it to the
    engine."""
    rows = np.flatnonzero((out["allowance"].to_numpy() > 0) & (sender >= 0))
    left = np.zeros(len(out), dtype=bool)
    if not len(rows):
        return left
    times = pd.DatetimeIndex(out["connect_time"].iloc[rows])
    customer = accounts.customer_of()[sender[rows]]
    month = np.zeros(len(rows), dtype=np.int64)
    for c in np.unique(customer):
        mine = np.flatnonzero(customer == c)
        local = times[mine].tz_convert(env.customers[c].time_zone)
        month[mine] = local.year * 12 + local.month
    order = np.lexsort((rows, times.asi8, month, sender[rows]))
    account, month_of = sender[rows][order], month[order]
    first = np.r_[True, (account[1:] != account[:-1]) | (month_of[1:] != month_of[:-1])]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    billed = out["billed"].to_numpy()[rows][order].astype(np.int64)
    before = np.cumsum(billed) - billed   # billed messages before each, from the first
    limit = out["allowance"].to_numpy()[rows][order]
    left[rows[order]] = before - before[start] < limit
    return left


def _risky(out: pd.DataFrame, sender: np.ndarray, accounts: Accounts, purses: Purses,
           room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Messages touching a purse whose charges, all made, might not leave room for one of
    its messages: those are settled one by one (a refusal changes what comes after).
    The others cannot be refused for money: every charge they make fits, and so does
    every refused message's rating (a refusal after the customer rating is a balance
    refusal when its payer cannot pay that rating: check 4 comes first). Also which of
    the risky ones need the engine's whole path."""
    payer_of, none = purses.of, len(purses.payers)
    billed = out["billed"].to_numpy()
    rating = out["charged_amount_micro"].to_numpy()
    free = out["_free"].to_numpy()
    charged = np.where(billed & ~free, rating, 0)
    incoming = np.where(billed, out["incoming_micro"].to_numpy(), 0)
    recipient = accounts.ids.get_indexer(out["CLD"].to_numpy(dtype=np.int64))
    pays = np.where(sender >= 0, payer_of[np.maximum(sender, 0)], none)
    gets = np.where(recipient >= 0, payer_of[np.maximum(recipient, 0)], none)
    total = np.zeros(none + 1, dtype=np.int64)   # the last: no payer
    np.add.at(total, pays, charged)
    np.add.at(total, gets, incoming)
    asked = np.zeros(none + 1, dtype=np.int64)   # the largest refused rating
    np.maximum.at(asked, pays, np.where(billed | free, 0, rating))
    short = np.r_[total[:-1] + asked[:-1] > room, False]   # room: whole micro-units
    # the engine's whole path where the recipient may not pay; then for every message
    # of a sender with a bundle (such a refusal gives its included message back)
    slow = short[gets] & (incoming > 0)
    bundled = out["allowance"].to_numpy() > 0
    slow |= bundled & np.isin(sender, sender[slow & bundled])
    return short[pays] | slow, slow


class Purses:
    """Who pays for each account: its purse (``of``, an index) and each purse's payer."""

    def __init__(self, engine: BillingEngine, accounts: Accounts) -> None:
        payers = [engine.payer(str(number)) for number in accounts.ids]
        self.of, keys = pd.factorize(np.array([p.key for p in payers], dtype=object))
        first = np.full(len(keys), len(payers), dtype=np.int64)
        np.minimum.at(first, self.of, np.arange(len(payers)))
        self.payers = [payers[i] for i in first]


def _past_the_safe_start(out: pd.DataFrame, rows: np.ndarray, sender: np.ndarray,
                         purses: Purses, start: Start, keep: np.ndarray) -> np.ndarray:
    """Of a payer's messages in time order, those up to the one whose charges so far,
    plus the largest refused rating so far, still fit its room cannot be refused: they
    keep their answers, and their charges are made at once (`imsim.rules.settle.charge`).
    The rest (and ``keep``), in time order, are left to settle one by one."""
    billed = out["billed"].to_numpy()[rows]
    free = out["_free"].to_numpy()[rows]
    rating = np.where(free, 0, out["charged_amount_micro"].to_numpy()[rows])
    charged = np.where(billed, rating, 0)
    purse = purses.of[sender[rows]]
    spent = pd.Series(charged).groupby(purse).cumsum().to_numpy()
    asked = pd.Series(np.where(billed, 0, rating)).groupby(purse).cummax().to_numpy()
    safe = spent + asked <= start.room[purse]
    totals = pd.Series(np.where(safe, charged, 0)).groupby(purse).sum()
    for k, total in totals.items():
        if total:
            assert charge(start.ledger, purses.payers[k], Decimal(int(total)).scaleb(-6))
    rest = np.concatenate([rows[~safe], keep])
    order = np.argsort(pd.DatetimeIndex(out["connect_time"].iloc[rest]).asi8, kind="stable")
    return rest[order]


def _micro_floor(room: Decimal | None) -> float:
    return float("inf") if room is None else float(int((room * MICRO).to_integral_value(
        rounding="ROUND_FLOOR")))


class InOrder:
    """Settle messages one by one, in time order, as the lab billing service settles a
    delivered message: each through a `Tab` of its kind's answer and its own amount
    (`Tab.settle_delivered`; a refusal that carries a rating, `Tab.settle`), or,
    where a recipient may not pay, through the engine's whole path."""

    def __init__(self, out: pd.DataFrame, engines: list[BillingEngine],
                 answers: dict[int, list[Decision]], ledger: Ledger) -> None:
        self.out, self.engines, self.answers, self.ledger = out, engines, answers, ledger
        self.code = out["code"].to_numpy().copy()
        self.billed = out["billed"].to_numpy().copy()
        self.included = out["included"].to_numpy().copy()
        check = pd.Categorical(out["check"])
        self.check_names = list(check.categories)
        self.checks = check.codes.astype(np.int16)
        self.steps = out["step"].fillna(-1).to_numpy(dtype=np.int16)
        self.tabs: dict[tuple[int, int, str, int], Tab] = {}

    def settle(self, rows: np.ndarray, slow: np.ndarray, sender: np.ndarray,
               purses: Purses) -> None:
        """Settle ``rows`` (in time order). A purse none of whose messages takes the
        engine's whole path is settled on its own, in its own time order: nothing else
        touches it (`_purse`). The others, all together in time order: a purse whose
        room is below every amount still to come is done, its later messages that ask
        for money refused without asking it again (room only shrinks)."""
        out = self.out
        amount = np.where(out["_free"], 0, out["charged_amount_micro"].to_numpy())[rows]
        purse = purses.of[np.maximum(sender[rows], 0)]
        version, kind = out["_version"].to_numpy()[rows], out["_kind"].to_numpy()[rows]
        refused: list[int] = []
        mixed = np.isin(purse, purse[slow[rows]])
        alone = np.flatnonzero(~mixed)
        alone = alone[np.argsort(purse[alone], kind="stable")]   # by purse, in time order
        bounds = np.flatnonzero(np.r_[True, purse[alone][1:] != purse[alone][:-1], True]) \
            if len(alone) else np.zeros(1, dtype=np.int64)
        for first, last in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            mine = alone[first:last]
            self._purse(rows[mine], version[mine], kind[mine], amount[mine],
                        purses.payers[purse[mine[0]]], refused)
        together = np.flatnonzero(mixed)
        smallest = pd.Series(np.where(amount > 0, amount, np.iinfo(np.int64).max)[together][::-1]) \
            .groupby(purse[together][::-1]).cummin().to_numpy()[::-1]   # from here on, per purse
        done = [False] * len(purses.payers)
        for row, whole, v, k, p, micro, least in zip(
                rows[together].tolist(), slow[rows[together]].tolist(), version[together].tolist(),
                kind[together].tolist(), purse[together].tolist(), amount[together].tolist(),
                smallest.tolist(), strict=True):
            if whole:
                self._whole(row, self.engines[v])
            elif done[p]:
                if micro:
                    refused.append(row)
            else:
                after = self._step(row, v, k, purses.payers[p], micro, refused)
                done[p] = after is not None and after < least
        if refused:
            self._write(np.array(refused), CANNOT_PAY, included=False)
        self._done()

    def _purse(self, rows: np.ndarray, version: np.ndarray, kind: np.ndarray,
               amount: np.ndarray, payer: Payer, refused: list[int]) -> None:
        """Settle one purse's messages, in time order. Its room only shrinks, so only a
        message asking no more than the room has now is settled through its tab; after
        each charge, the messages that still fit are found again. The others that ask
        for money cannot pay. (Stacked months of traffic run purses dry: asking the tab
        of every message past the money was half of re-rating them.)"""
        asked = np.zeros(len(rows), dtype=bool)
        room, k = _micro_floor(self.ledger.room(payer)), 0
        while k < len(rows):
            fits, k = (np.flatnonzero(amount[k:] <= room) + k).tolist(), len(rows)
            for j in fits:
                if amount[j] > room:
                    continue
                asked[j] = True
                after = self._step(int(rows[j]), int(version[j]), int(kind[j]), payer,
                                   int(amount[j]), refused)
                if after is not None and after < room:
                    room, k = after, j + 1
                    break
        unpaid = ~asked & (amount > 0) & self._priced(version, kind)
        refused.extend(rows[unpaid].tolist())

    def _priced(self, version: np.ndarray, kind: np.ndarray) -> np.ndarray:
        """Whether each message's answer has a customer rating to pay."""
        priced = np.zeros(len(kind), dtype=bool)
        for v in np.unique(version).tolist():
            has = np.array([d.customer is not None for d in self.answers[v]], dtype=bool)
            mine = version == v
            priced[mine] = has[kind[mine]]
        return priced

    def _step(self, row: int, version: int, kind: int, payer: Payer, micro: int,
              refused: list[int]) -> float | None:
        """Settle one message through its tab; the room its purse has left after a
        charge, in whole micro-units (None: nothing was charged)."""
        decision = self.answers[version][kind]
        if decision.customer is None:
            return None
        tab = self._tab(version, kind, payer, micro, decision)
        answer = tab.settle_delivered(self.ledger) if decision.ok else tab.settle(self.ledger)
        if answer is CANNOT_PAY:
            refused.append(row)
        elif decision.ok and micro:
            return _micro_floor(self.ledger.room(payer))
        return None

    def _tab(self, version: int, kind: int, payer: Payer, micro: int, decision: Decision) -> Tab:
        """The tab of a kind's answer for a payer and amount (found once)."""
        key = (version, kind, payer.key, micro)
        found = self.tabs.get(key)
        if found is None:
            found = self.tabs[key] = Tab(decision, ((payer, Decimal(micro).scaleb(-6)),))
        return found

    def _whole(self, row: int, engine: BillingEngine) -> None:
        out = self.out
        domain = out["domain"].iloc[row] if "domain" in out else engine.env.domain
        msg = row_message(out, row, out["_to_user"].iloc[row], domain)
        decision = engine.decide(msg)
        answer = engine.settle(msg, decision, self.ledger)
        if answer.ok:
            engine.account(msg, answer, 200, "OK", self.ledger)
        # a bundle's included message is settled as another answer: the rating at 0
        self._write(row, answer, included=answer.ok and answer is not decision)

    def _write(self, row: int | np.ndarray, answer: Decision, included: bool) -> None:
        self.code[row] = answer.code
        check = DELIVERED if answer.ok else answer.check
        if check not in self.check_names:
            self.check_names.append(check)
        self.checks[row] = self.check_names.index(check)
        self.steps[row] = -1 if answer.step is None else answer.step
        self.billed[row] = answer.ok and answer.billed
        self.included[row] = included

    def _done(self) -> None:
        out = self.out
        out["code"], out["billed"], out["included"] = self.code, self.billed, self.included
        out["check"] = pd.Categorical.from_codes(self.checks, self.check_names)
        out["step"] = pd.array(self.steps, dtype="Int16")
        out.loc[self.steps < 0, "step"] = pd.NA
