"""Settling a MESSAGE's money: the one settlement of the simulator, planning and the lab
billing service.

A `decide` answer that rates the sender is settled in two moves:

1. at authorization (`Tab.settle`), the balance part of check 4: the sender's charge
   must fit the room of its payer (a debit account's balance, a credit customer's
   limit), and so must the recipient's charge for incoming messages; both are held;
2. at accounting (`Tab.account`), the holds are committed when the message was
   delivered (a 2xx) and released otherwise.

A product's bundle (`BundleTab`): an account's first ``Product.included_messages``
delivered messages of each calendar month (its customer's time zone) are charged 0; an
included message is held with the charge and given back when the message fails.

Plain Python over `imsim.rules.ledger`: no simpy, no I/O, no pandas.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Final

from imsim.rules.ledger import Ledger, Payer, Purse
from imsim.rules.message import Decision, refuse
from imsim.rules.rating import zone

ZERO: Final = Decimal(0)
CANNOT_PAY: Final = refuse(403, "balance", None, "Forbidden (insufficient balance or credit)")
RECIPIENT_CANNOT_PAY: Final = refuse(403, "balance", None, "Forbidden (recipient has insufficient "
                              "balance for incoming messages)")
Charges = tuple[tuple[Payer, Decimal], ...]
"""Who pays what for a delivered message: the sender's payer and amount, then (when
incoming messages are charged) the recipient's."""


class Tab:
    """The settlement of one `decide` answer: its payers and amounts found once, so that
    a caller who sees the same answer again (the simulator's memo) settles it again
    without finding them. The sender pays ``amount`` (``payer``); with an incoming
    rating the recipient pays ``incoming`` (``payee``). Their purses are found once
    per ledger. A `Tab` keeps no state of a message: one tab settles any number of
    messages with the same answer, each `settle` followed by its `account`."""

    __slots__ = ("decision", "ok", "billed", "unpaid", "payer", "amount", "payee", "incoming",
                 "ledger", "purse", "payee_purse", "quiet")

    def __init__(self, decision: Decision, charges: Charges) -> None:
        self.decision, self.ok, self.billed = decision, decision.ok, decision.billed
        self.unpaid = decision if decision.ok else replace(decision, customer=None)
        self.payer: Payer | None = None
        self.payee: Payer | None = None
        self.amount = self.incoming = ZERO
        if charges:
            self.payer, self.amount = charges[0]
        if len(charges) > 1:
            self.payee, self.incoming = charges[1]
        self.ledger: Ledger | None = None
        self.purse: Purse | None = None
        self.payee_purse: Purse | None = None
        self.quiet: Decimal | None = None
        """A value of the payer's ``held`` that holding and closing ``amount`` gave back
        as it was (same digits and exponent; the purse keeps that object): from it,
        `settle_delivered` skips both."""

    def _bind(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.purse = ledger.purse(self.payer.key) if self.payer is not None else None
        self.payee_purse = ledger.purse(self.payee.key) if self.payee is not None else None

    def _paying(self, ledger: Ledger, payer: Payer) -> Purse | None:
        """The payer's purse in ``ledger`` (found once per ledger) if its room covers
        ``amount``, else None."""
        if ledger is not self.ledger:
            self._bind(ledger)
        purse = self.purse
        assert purse is not None
        room = purse.room(payer)
        if room is not None and not self.amount <= room:
            return None
        return purse

    def settle(self, ledger: Ledger) -> Decision:
        """The decision, or the refusal of check 4's balance part; holds the charges
        when it is the decision."""
        payer = self.payer
        if payer is None:
            return self.decision
        purse = self._paying(ledger, payer)
        if purse is None:
            return CANNOT_PAY
        if not self.ok:
            return self.unpaid
        amount = self.amount
        purse.hold(amount)
        payee = self.payee
        if payee is not None:
            other, incoming = self.payee_purse, self.incoming
            assert other is not None
            room = other.room(payee)
            if room is not None and not incoming <= room:
                purse.close(amount, False, payer.account is not None)
                return RECIPIENT_CANNOT_PAY
            other.hold(incoming)
        return self.decision

    def settle_delivered(self, ledger: Ledger) -> Decision:
        """`settle`, then, when it gives the decision, `account` of a delivery (200): for a
        caller that knows the message is delivered before anything else touches the
        ledger. Same decision, same balances, to the exponent. The hold and its closing
        leave ``held`` as it was once they have (``quiet``: decimal arithmetic gives the
        same result for the same operands), so from then on only the charge is made."""
        payer = self.payer
        if payer is None or self.payee is not None or not self.ok:
            decision = self.settle(ledger)
            if decision.ok:
                self.account(ledger, 200)
            return decision
        purse = self._paying(ledger, payer)
        if purse is None:
            return CANNOT_PAY
        amount, held = self.amount, purse.held
        if held is self.quiet:
            purse.charge(amount, payer.account is not None)
        else:
            purse.hold(amount)
            purse.close(amount, True, payer.account is not None)
            after = purse.held
            if after == held and after.as_tuple() == held.as_tuple():
                purse.held = self.quiet = held   # the same digits: the same object, so
                #                                  the purse's other tabs find theirs
        return self.decision

    def account(self, ledger: Ledger, code: int) -> bool:
        """After `settle` gave the decision (on the same ledger): commit the charges
        when ``code`` is a delivery (True), else release them."""
        delivered = 200 <= code < 300 and self.ok and self.billed
        if not self.ok or self.payer is None:
            return delivered
        if ledger is not self.ledger:
            self._bind(ledger)
        assert self.purse is not None
        self.purse.close(self.amount, delivered, self.payer.account is not None)
        if self.payee is not None:
            assert self.payee_purse is not None
            self.payee_purse.close(self.incoming, delivered, self.payee.account is not None)
        return delivered


class BundleTab(Tab):
    """The settlement of one message of a sender whose product has a bundle: while the
    account has included messages left this month (``bundle``: the ledger's key of the
    account-month, and the allowance), the message is charged 0 and takes one, held with
    the charge. Its answer depends on the messages used before it: one per message."""

    __slots__ = ("bundle", "allowance", "free", "rated")

    def __init__(self, decision: Decision, charges: Charges, bundle: str,
                 allowance: int) -> None:
        super().__init__(decision, charges)
        self.bundle, self.allowance, self.free = bundle, allowance, False
        self.rated = decision

    def settle(self, ledger: Ledger) -> Decision:
        self.free = ledger.included.get(self.bundle, 0) < self.allowance
        if self.free:
            self.amount = ZERO
            rating = self.decision.customer
            assert rating is not None
            self.rated = replace(self.decision, customer=replace(rating, unit_price=ZERO,
                                                                 amount=ZERO))
        decision = Tab.settle(self, ledger)
        if decision is not self.decision:
            self.free = False
            return decision
        if self.free:
            ledger.included[self.bundle] = ledger.included.get(self.bundle, 0) + 1
        return self.rated

    def settle_delivered(self, ledger: Ledger) -> Decision:
        decision = self.settle(ledger)
        if decision.ok:
            self.account(ledger, 200)
        return decision

    def account(self, ledger: Ledger, code: int) -> bool:
        delivered = Tab.account(self, ledger, code)
        if self.free and not 200 <= code < 300:
            ledger.included[self.bundle] -= 1   # the included message is given back
        self.free = False
        return delivered


def bundle_period(at: dt.datetime, time_zone: str) -> str:
    """The calendar month of ``at`` in ``time_zone`` (a bundle's period), 'YYYY-MM'."""
    local = at.astimezone(zone(time_zone))
    return f"{local.year:04d}-{local.month:02d}"


PAID: Final = Decision(200, "OK", None, "charged", billed=True)


def charge(ledger: Ledger, payer: Payer, amount: Decimal) -> bool:
    """Charge ``amount`` to ``payer`` at once (a delivered message's charge known from
    elsewhere, e.g. a stored xDR): False, and nothing charged, when it does not fit."""
    return Tab(PAID, ((payer, amount),)).settle_delivered(ledger) is PAID
