"""Settling decided messages as delivered, in time order: bundles, then balances.

Settlement follows `imsim.rules.settle`, each message settled as delivered in time
order (planning has no timing, so holds never overlap): a bundle's first included
messages of each account-month are charged 0 (`bundle_left`); a payer whose
charges could outrun its balance or credit limit has its messages settled one by one
through its tabs and the ledger (`InOrder`), or through the engine's whole path where
a recipient may not pay.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property

import numpy as np
import pandas as pd

from imsim.model.config import Environment
from imsim.planning.kinds import DELIVERED, Accounts, Prepared, Purses, micro_floor, row_message
from imsim.rules.batch import MICRO
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger, Payer
from imsim.rules.message import Decision
from imsim.rules.settle import CANNOT_PAY, Tab, charge


class Start:
    """An environment's balances at the scenario's start: what each purse can spend
    (``room``, in whole micro-units rounded down, inf when unlimited: `Ledger.room`),
    and the `Ledger` to settle in, made only when a message may find a purse short."""

    def __init__(self, env: Environment, room: np.ndarray) -> None:
        self.env, self.room = env, room

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger.of(self.env)


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
        asked = np.zeros(len(rows), dtype=bool)
        for first, last in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            mine = alone[first:last]
            asked[mine] = self._purse(rows[mine], version[mine], kind[mine], amount[mine],
                                      purses.payers[purse[mine[0]]], refused)
        unpaid = ~mixed & ~asked & (amount > 0) & self._priced(version, kind)
        refused.extend(rows[unpaid].tolist())
        if mixed.any():
            self._together(rows, np.flatnonzero(mixed), slow, version, kind, purse, amount,
                           purses, refused)
        if refused:
            self._write(np.array(refused), CANNOT_PAY, included=False)
        self._done()

    def _together(self, rows: np.ndarray, together: np.ndarray, slow: np.ndarray,
                  version: np.ndarray, kind: np.ndarray, purse: np.ndarray,
                  amount: np.ndarray, purses: Purses, refused: list[int]) -> None:
        """Settle the purses some of whose messages take the engine's whole path, all
        together in time order."""
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

    def _purse(self, rows: np.ndarray, version: np.ndarray, kind: np.ndarray,
               amount: np.ndarray, payer: Payer, refused: list[int]) -> np.ndarray:
        """Settle one purse's messages, in time order; which were settled through their
        tab. Its room only shrinks, so only a message asking no more than the room has
        now is; after each charge, the messages that still fit are found again. The
        others that ask for money cannot pay (`settle`). (Stacked months of traffic run
        purses dry: asking the tab of every message past the money was half of
        re-rating them.)"""
        asked = np.zeros(len(rows), dtype=bool)
        room, k = micro_floor(self.ledger.room(payer)), 0
        while k < len(rows):
            fits, k = (np.flatnonzero(amount[k:] <= room) + k).tolist(), len(rows)
            for j in fits:   # the room holds until a charge: then they are found again
                asked[j] = True
                after = self._step(int(rows[j]), int(version[j]), int(kind[j]), payer,
                                   int(amount[j]), refused)
                if after is not None:
                    room, k = after, j + 1
                    break
        return asked

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
            return micro_floor(self.ledger.room(payer))
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
