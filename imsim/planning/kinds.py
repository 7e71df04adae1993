"""Deciding, one message per kind: which messages the billing engine must be asked about.

A message's answer depends on (`imsim.rules.decide`):

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
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from imsim.model.config import Environment, Tariff
from imsim.rules.batch import MICRO, rate_many
from imsim.rules.decide import BillingEngine
from imsim.rules.message import Decision, Message
from imsim.rules.rating import Rating

DELIVERED = "delivered"
"""The ``check`` of a message billing authorized (planning has no timing: delivered)."""
_NONE, _RATED, _FORBIDDEN = 0, 1, 2   # what a tariff says of a number (`Kinds._rate`)
_MONEY = ("units", "unit_price_micro", "charged_amount_micro", "cost_micro",
          "incoming_micro")
# the currency of each amount: the sender's customer tariff, the vendor's, the recipient's
CURRENCIES = {"currency": "customer", "cost_currency": "vendor",
              "incoming_currency": "incoming"}


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


class Purses:
    """Who pays for each account: its purse (``of``, an index) and each purse's payer."""

    def __init__(self, engine: BillingEngine, accounts: Accounts) -> None:
        payers = [engine.payer(str(number)) for number in accounts.ids]
        self.of, keys = pd.factorize(np.array([p.key for p in payers], dtype=object))
        first = np.full(len(keys), len(payers), dtype=np.int64)
        np.minimum.at(first, self.of, np.arange(len(payers)))
        self.payers = [payers[i] for i in first]


def micro_floor(room: Decimal | None) -> float:
    """A purse's room in whole micro-units, rounded down (inf: no limit)."""
    return float("inf") if room is None else float(int((room * MICRO).to_integral_value(
        rounding="ROUND_FLOOR")))


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
        return with_answers(frame, self._answers(codes, self.answers))

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
        currencies = {column: _currencies(codes, [getattr(a, side) for a in answers])
                      for column, side in CURRENCIES.items()}
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
                **currencies, **money}


def _currencies(codes: np.ndarray, ratings: list[Rating | None]) -> pd.Categorical:
    """Per message, the currency of its kind's rating (NaN where none rated it)."""
    names = sorted({r.currency for r in ratings if r is not None})
    per_kind = np.array([-1 if r is None else names.index(r.currency) for r in ratings],
                        dtype=np.int8)
    return pd.Categorical.from_codes(per_kind[codes], names)


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


def with_answers(frame: pd.DataFrame, answers: dict[str, object]) -> pd.DataFrame:
    """``frame`` with the answer columns (their empty forms for an empty frame)."""
    n = len(frame)
    if not answers:   # an empty frame
        answers = {"code": np.zeros(n, np.int16), "check": pd.Categorical([DELIVERED] * n),
                   "step": np.full(n, -1, np.int16), "billed": np.zeros(n, bool),
                   "rate_code": pd.Categorical([None] * n, categories=["|"]),
                   "allowance": np.zeros(n, np.int64),
                   **{c: pd.Categorical([None] * n) for c in CURRENCIES},
                   **{c: np.zeros(n, np.int64) for c in _MONEY}}
    steps = np.asarray(answers["step"], dtype=np.int16)
    step = pd.arrays.IntegerArray(steps, steps < 0)
    columns = ("code", "check", "step", "billed", "rate_code", "allowance", "included",
               *CURRENCIES, *_MONEY)
    given = {**answers, "step": step, "included": np.zeros(n, dtype=bool)}
    return frame.assign(**{c: given[c] for c in columns})
