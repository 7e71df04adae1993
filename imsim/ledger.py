"""Balances of one virtual billing environment: debit accounts and credit customers.

Authorization reserves a message's charge (a hold), accounting commits it when the
message was delivered or releases it when it failed; a bundle's included messages are
held the same way. Plain data: `imsim.billing` decides what is charged to whom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from imsim.config import Account, BalanceModel, Customer, Environment

ZERO = Decimal(0)


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


@dataclass
class Ledger:
    """Balances: debit accounts hold money (never below 0); credit customers owe money
    (never past their credit limit). Authorization reserves; accounting commits."""

    debit: dict[str, Decimal] = field(default_factory=dict)
    owed: dict[str, Decimal] = field(default_factory=dict)
    reserved: dict[str, Decimal] = field(default_factory=dict)
    holds: dict[str, list[tuple[str, Decimal]]] = field(default_factory=dict)
    included: dict[str, int] = field(default_factory=dict)   # bundle messages used (held)
    included_holds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, env: Environment) -> Ledger:
        ledger = cls()
        for customer in env.customers:
            if customer.balance_model is BalanceModel.credit:
                ledger.owed[customer.name] = sum((a.balance for a in customer.accounts),
                                                 Decimal(0))
            for account in customer.accounts:
                if customer.balance_model is BalanceModel.debit:
                    ledger.debit[account.id] = account.balance
        return ledger

    @staticmethod
    def key(customer: Customer, account: Account) -> str:
        if customer.balance_model is BalanceModel.credit:
            return f"customer:{customer.name}"
        return f"account:{account.id}"

    def available(self, customer: Customer, account: Account) -> Decimal | None:
        """Money that may still be charged; None means unlimited credit."""
        return self.room(Payer.of(customer, account))

    def room(self, payer: Payer) -> Decimal | None:
        """`available` for a payer found once."""
        held = self.reserved.get(payer.key, ZERO)
        if payer.account is not None:
            return self.debit.get(payer.account, ZERO) - held
        if payer.limit is None:
            return None
        return payer.limit - self.owed.get(payer.customer or "", ZERO) - held

    def can_pay(self, customer: Customer, account: Account, amount: Decimal) -> bool:
        room = self.available(customer, account)
        return room is None or amount <= room

    def reserve(self, call_id: str, customer: Customer, account: Account,
                amount: Decimal) -> bool:
        if not self.can_pay(customer, account, amount):
            return False
        key = self.key(customer, account)
        self.reserved[key] = self.reserved.get(key, Decimal(0)) + amount
        self.holds.setdefault(call_id, []).append((key, amount))
        return True

    def take_included(self, call_id: str, key: str, allowance: int) -> bool:
        """Hold one included message of the bundle ``key`` if fewer than ``allowance``
        are used or held; released with the charge when the message fails."""
        used = self.included.get(key, 0)
        if used >= allowance:
            return False
        self.included[key] = used + 1
        self.included_holds[call_id] = key
        return True

    def release(self, call_id: str) -> None:
        for key, amount in self.holds.pop(call_id, []):
            self.reserved[key] -= amount
        bundle = self.included_holds.pop(call_id, None)
        if bundle is not None:
            self.included[bundle] -= 1

    def commit(self, call_id: str) -> None:
        self.included_holds.pop(call_id, None)
        for key, amount in self.holds.pop(call_id, []):
            self.reserved[key] -= amount
            kind, name = key.split(":", 1)
            if kind == "account":
                self.debit[name] -= amount
            else:
                self.owed[name] += amount

    def balance(self, customer: Customer, account: Account) -> Decimal:
        if customer.balance_model is BalanceModel.debit:
            return self.debit.get(account.id, Decimal(0))
        return self.owed.get(customer.name, Decimal(0))
