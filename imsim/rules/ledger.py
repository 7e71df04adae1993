"""Balances of one virtual billing environment: debit accounts and credit customers.

Authorization holds a message's charge, accounting commits it when the message was
delivered or releases it when it failed; a bundle's included messages are held the
same way. Plain data: `imsim.rules.settle` moves the money, `imsim.rules.decide`
decides what is charged to whom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from imsim.model.config import Account, BalanceModel, Customer, Environment

ZERO: Final = Decimal(0)
ACCOUNT, CUSTOMER = "account:", "customer:"


@dataclass(frozen=True, slots=True)
class Payer:
    """Who pays a charge in a `Ledger`: its key, and what its room is measured against
    (a debit account's balance, or a credit customer's limit; no limit: unlimited)."""

    key: str
    account: str | None = None
    customer: str | None = None
    limit: Decimal | None = None

    @classmethod
    def of(cls, customer: Customer, account: Account) -> Payer:
        if customer.balance_model is BalanceModel.debit:
            return cls(Ledger.key(customer, account), account=account.id)
        return cls(Ledger.key(customer, account), customer=customer.name,
                   limit=customer.credit_limit)


class Purse:
    """One payer's money in a `Ledger`: a debit account's balance, or what a credit
    customer owes; and what authorizations hold on it (``held``). A `Payer` says which
    kind it is and what a credit customer's limit is."""

    __slots__ = ("money", "held")

    def __init__(self, money: Decimal) -> None:
        self.money = money
        self.held = ZERO

    def room(self, payer: Payer) -> Decimal | None:
        """Money that may still be charged to ``payer`` (whose purse this is); None
        means unlimited credit."""
        if payer.account is not None:
            return self.money - self.held
        if payer.limit is None:
            return None
        return payer.limit - self.money - self.held

    def hold(self, amount: Decimal) -> None:
        self.held = self.held + amount

    def close(self, amount: Decimal, charge: bool, debit: bool) -> None:
        """End a hold of ``amount``; with ``charge``, charge it: a debit account's
        balance goes down, a credit customer owes more."""
        self.held = self.held - amount
        if charge:
            self.charge(amount, debit)

    def charge(self, amount: Decimal, debit: bool) -> None:
        """`close` of a charge without its hold (the caller knows holding and closing
        ``amount`` leaves ``held`` as it is)."""
        self.money = self.money - amount if debit else self.money + amount


@dataclass
class Ledger:
    """Balances: debit accounts hold money (never below 0); credit customers owe money
    (never past their credit limit). Authorization holds; accounting commits.

    One `Purse` per payer, under its key (`Ledger.key`); ``debit``, ``owed`` and
    ``reserved`` show them as dicts (by account id, by customer name, by key)."""

    purses: dict[str, Purse] = field(default_factory=dict)
    holds: dict[str, Any] = field(default_factory=dict)   # `imsim.rules.settle.Tab`s
    """Settlements in progress, by message (`Message.hold`): held at authorization,
    committed or released at accounting (`imsim.rules.settle`)."""
    included: dict[str, int] = field(default_factory=dict)   # bundle messages used (held)

    @classmethod
    def of(cls, env: Environment) -> Ledger:
        ledger = cls()
        for customer in env.customers:
            if customer.balance_model is BalanceModel.credit:
                ledger.purses[f"{CUSTOMER}{customer.name}"] = Purse(
                    sum((a.balance for a in customer.accounts), Decimal(0)))
            else:
                for account in customer.accounts:
                    ledger.purses[f"{ACCOUNT}{account.id}"] = Purse(account.balance)
        return ledger

    @staticmethod
    def key(customer: Customer, account: Account) -> str:
        if customer.balance_model is BalanceModel.credit:
            return f"{CUSTOMER}{customer.name}"
        return f"{ACCOUNT}{account.id}"

    def purse(self, key: str) -> Purse:
        """The purse under ``key`` (an empty one for a payer the ledger did not start
        with)."""
        found = self.purses.get(key)
        if found is None:
            found = self.purses[key] = Purse(ZERO)
        return found

    @property
    def debit(self) -> dict[str, Decimal]:
        """Debit accounts' balances, by account id."""
        return {key[len(ACCOUNT):]: p.money for key, p in self.purses.items()
                if key.startswith(ACCOUNT)}

    @property
    def owed(self) -> dict[str, Decimal]:
        """What credit customers owe, by customer name."""
        return {key[len(CUSTOMER):]: p.money for key, p in self.purses.items()
                if key.startswith(CUSTOMER)}

    @property
    def reserved(self) -> dict[str, Decimal]:
        """Money held by authorizations not yet accounted, by payer key."""
        return {key: p.held for key, p in self.purses.items()}

    def available(self, customer: Customer, account: Account) -> Decimal | None:
        """Money that may still be charged; None means unlimited credit."""
        return self.room(Payer.of(customer, account))

    def room(self, payer: Payer) -> Decimal | None:
        """`available` for a payer found once."""
        return self.purse(payer.key).room(payer)

    def balance(self, customer: Customer, account: Account) -> Decimal:
        found = self.purses.get(self.key(customer, account))
        return found.money if found is not None else Decimal(0)
