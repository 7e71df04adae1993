"""The billing engine's decisions: authorization, rating and accounting of a MESSAGE.

This is the one place where the message-path rules of DESIGN.md live. The simulator
wraps `BillingEngine` in simpy processes; the lab billing service calls the same
methods behind HTTP. Plain Python: no simpy, no I/O, no pandas.

Checks, in order (the first failing one decides the answer to the sender):

==  ====================================================  =====  ====
#   check                                                 code   step
==  ====================================================  =====  ====
1   digest credentials of the sender (`authenticate`)     403    --
2   messaging enabled on the configuration server         403    1
3   a messaging service policy matches the domain         403    2
4   outgoing_aaa: account, product, usage charge,         403    6-8
    customer rate, balance or credit
5   vendor connection to SIP_UA, vendor tariff and rate   404/403  3-5
6   local lookup: the recipient exists in the environment 404    2
==  ====================================================  =====  ====

Registration (480) and the recipient's own answer are the proxy's business.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final, NamedTuple

from imsim.config import (
    PORTASIP,
    Account,
    AppliedTo,
    Connection,
    Customer,
    Environment,
    Product,
    Service,
    ServicePolicy,
    Tariff,
)
from imsim.ledger import Ledger, Payer, Purse
from imsim.proxy import E164Prefetch, recipient_number, select_policy
from imsim.rating import RateTable, Rating, zone

OK_REASON: Final = "OK"
ZERO: Final = Decimal(0)
_UNKNOWN: Final = "\x00unknown"
"""Not found in a prefetched table (no user part is this string: it is not a number)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One MESSAGE as the proxy sees it after authentication."""

    msg_id: str
    sender: str
    to_user: str
    to_domain: str
    at: dt.datetime
    length: int = 0
    call_id: str = ""

    @property
    def hold(self) -> str:
        """The ledger key of this message's reservation: one per message, even when
        messages share a Call-ID (or leave it empty)."""
        return f"{self.call_id}\x1f{self.msg_id}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a MESSAGE: SIP code, reason phrase naming the check, handbook step."""

    code: int
    reason: str
    step: int | None
    check: str
    recipient: str | None = None
    billed: bool = False
    customer: Rating | None = None
    vendor: Rating | None = None
    incoming: Rating | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


def refuse(code: int, check: str, step: int | None, reason: str) -> Decision:
    return Decision(code, reason, step, check)


CANNOT_PAY: Final = refuse(403, "balance", None, "Forbidden (insufficient balance or credit)")
RECIPIENT_CANNOT_PAY: Final = refuse(403, "balance", None, "Forbidden (recipient has insufficient "
                              "balance for incoming messages)")


class Xdr(NamedTuple):
    """One billing record, PortaBilling column names (DESIGN.md)."""

    i_xdr: int
    env: str
    account_id: str
    CLI: str
    CLD: str
    connect_time: dt.datetime
    call_id: str
    msg_id: str
    service: str
    direction: str
    tariff: str
    rate_code: str
    charged_quantity: int
    unit_price: Decimal
    charged_amount: Decimal
    currency: str
    sip_code: int
    reason: str


XDR_COLUMNS: tuple[str, ...] = Xdr._fields
Line = tuple[str, str, Rating]
"""One xDR of a delivered message before its message fields: account_id, direction,
rating (`BillingEngine.lines`)."""


class Tab:
    """`BillingEngine.settle` and `account` of one `decide` answer for one sender, with
    the payers and amounts found once: the simulator keeps a tab with its memoized
    decision. Same rules, same ledger balances (tests/test_billing_tab.py); no holds
    are written, the caller keeps the tab instead. Built by `BillingEngine.tab`, never
    for a sender with a bundle (that answer depends on the month). The sender pays
    ``amount`` (``payer``); with an incoming rating the recipient pays ``incoming``
    (``payee``). Their purses are found once per ledger."""

    __slots__ = ("decision", "ok", "billed", "unpaid", "payer", "amount", "payee", "incoming",
                 "ledger", "purse", "payee_purse", "quiet")

    def __init__(self, decision: Decision, charges: tuple[tuple[Payer, Decimal], ...]) -> None:
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
        """`settle`: the decision, or a refusal; reserves the charges when it is the
        decision."""
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
            if decision is self.decision:
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
        """`account` after `settle` gave the decision (on the same ledger): commit
        (delivered, True) or release the charges."""
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


def bundle_period(at: dt.datetime, time_zone: str) -> str:
    """The calendar month of ``at`` in ``time_zone`` (a bundle's period), 'YYYY-MM'."""
    local = at.astimezone(zone(time_zone))
    return f"{local.year:04d}-{local.month:02d}"


class BillingEngine:
    """One virtual billing environment's configuration, compiled for fast decisions."""

    def __init__(self, env: Environment, prefetch: E164Prefetch | None = None) -> None:
        """``prefetch``: E.164 translations of user parts worked out ahead (for
        ``env.country``), used once they have arrived."""
        self.env = env
        self._prefetch = prefetch if prefetch is not None and \
            prefetch.country == env.country else None
        self.prefetched = 0   # recipients whose number came from the prefetch
        self.accounts = env.accounts()
        self._passwords = {number: account.password
                           for number, (_, account) in self.accounts.items()}
        self.tables = {t.name: RateTable(t) for t in env.tariffs}
        self._numbers: dict[str, dict[str, str | None]] = {}   # by domain, by user part
        self._products: dict[str, Product] = {}
        self._tariffs: dict[str, Tariff] = {}
        for product in env.products:
            self._products.setdefault(product.name, product)   # `Environment.product`
        for tariff in env.tariffs:
            self._tariffs.setdefault(tariff.name, tariff)
        self._connections: dict[str, Connection | None] = {}
        self._policies: dict[str, ServicePolicy | None] = {}
        self._vendor_names: dict[str | None, str] = {}
        self._payers: dict[str, Payer] = {}

    # -- check 1 -----------------------------------------------------------------
    def authenticate(self, user: str, password: str) -> Decision | None:
        """None when the credentials are good, else the 403 to answer."""
        known = self._passwords.get(user)
        if known is None or known != password:
            return refuse(403, "auth", None, "Forbidden (wrong credentials)")
        return None

    # -- checks 2 to 6 -----------------------------------------------------------
    def authorize(self, msg: Message, ledger: Ledger | None = None) -> Decision:
        """Decide a MESSAGE; with a ledger, reserve the charge under ``msg.hold``."""
        return self.settle(msg, self.decide(msg), ledger)

    def decide(self, msg: Message) -> Decision:
        """Checks 2 to 6 without balances (`settle` does those).

        The answer depends only on the sender, the recipient, the length and the rates
        in effect at ``msg.at``; a caller may reuse it for another message with the same
        ones (the simulator memoizes it). A refusal after the customer rating carries
        that rating, so that `settle` puts the balance check first, as check 4 is.
        """
        if not self.env.config_server.messaging_enabled:
            return refuse(403, "messaging_enabled", 1,
                          "Forbidden (Messaging service not enabled on the configuration server)")
        policy, number = self._recipient(msg.to_user, msg.to_domain)
        if policy is None:
            return refuse(403, "service_policy", 2,
                          f"Forbidden (no messaging service policy matches domain {msg.to_domain})")
        if number is None:
            return refuse(404, "recipient", 2, f"Not Found (cannot translate {msg.to_user})")
        if not policy.outgoing_aaa:
            return self._unknown(policy, number) or Decision(200, OK_REASON, None, "authorized",
                                                             number, False)
        sender = self.accounts.get(msg.sender)
        if sender is None:
            return refuse(403, "account", None, f"Forbidden (unknown account {msg.sender})")
        customer, account = sender
        refusal, customer_rating = self._customer_rating(customer, account, number, msg, policy)
        if refusal is not None:
            return refusal
        refusal, vendor_rating = self._vendor_rating(policy, number, msg)
        if refusal is not None:
            return replace(refusal, customer=customer_rating)
        unknown = self._unknown(policy, number)
        if unknown is not None:
            return replace(unknown, customer=customer_rating)
        incoming = self._incoming_rating(number, msg, policy)
        return Decision(200, OK_REASON, None, "authorized", number, True,
                        customer_rating, vendor_rating, incoming)

    def settle(self, msg: Message, decision: Decision, ledger: Ledger | None = None) -> Decision:
        """The balance part of check 4 for a `decide` answer: refuse when the sender
        cannot pay; else, with a ledger, reserve the charge under ``msg.hold``. While the
        sender's product bundle has included messages left (`bundle_of`), the customer
        rating is charged 0 and one included message is held with the charge."""
        rating = decision.customer
        if rating is None:
            return decision
        customer, account = self.accounts[msg.sender]
        bundle = self._bundle_left(ledger, customer, account, msg.at)
        if bundle is not None:
            rating = replace(rating, unit_price=Decimal(0), amount=Decimal(0))
        if ledger is not None and not ledger.can_pay(customer, account, rating.amount):
            return CANNOT_PAY
        if not decision.ok:
            return replace(decision, customer=None)
        assert decision.recipient is not None
        if ledger is not None and not self._reserve(ledger, msg, customer, account, rating,
                                                    decision.recipient, decision.incoming):
            return RECIPIENT_CANNOT_PAY
        if bundle is not None and ledger is not None:
            ledger.take_included(msg.hold, *bundle)
            return replace(decision, customer=rating)
        return decision

    def tab(self, sender: str, decision: Decision) -> Tab | None:
        """A `Tab` of a `decide` answer for ``sender``; None when the sender's product
        has a bundle."""
        rating = decision.customer
        if rating is None:
            return Tab(decision, ())
        account = self.accounts[sender][1]
        product = self._products.get(account.product)
        if product is not None and product.included_messages:
            return None
        charges = [(self.payer(sender), rating.amount)]
        if decision.ok and decision.incoming is not None:
            assert decision.recipient is not None
            charges.append((self.payer(decision.recipient), decision.incoming.amount))
        return Tab(decision, tuple(charges))

    def payer(self, number: str) -> Payer:
        """The `Payer` of an account (found once)."""
        found = self._payers.get(number)
        if found is None:
            found = self._payers[number] = Payer.of(*self.accounts[number])
        return found

    def _bundle_left(self, ledger: Ledger | None, customer: Customer, account: Account,
                     at: dt.datetime) -> tuple[str, int] | None:
        bundle = self.bundle_of(customer, account, at) if ledger is not None else None
        if bundle is None or ledger is None or ledger.included.get(bundle[0], 0) >= bundle[1]:
            return None
        return bundle

    def bundle_of(self, customer: Customer, account: Account,
                  at: dt.datetime) -> tuple[str, int] | None:
        """The sender's bundle this month, (ledger key, included messages), or None.

        The rule: an account's first ``Product.included_messages`` delivered messages of
        each calendar month (customer's time zone) are charged 0; a refused or failed
        message gives its included message back. Bundles need a ledger (the state);
        `imsim.planning` applies the same rule to whole months with numpy."""
        product = self.env.product(account.product)
        if product is None or not product.included_messages:
            return None
        return (f"{account.id}\x1f{bundle_period(at, customer.time_zone)}",
                product.included_messages)

    def _recipient(self, to_user: str, domain: str) -> tuple[ServicePolicy | None, str | None]:
        """The service policy of ``domain`` and the number ``to_user`` stands for
        (found once each: the policy depends on the domain only)."""
        numbers = self._numbers.get(domain)
        if numbers is None:
            numbers = self._numbers[domain] = {}
            self._policies[domain] = select_policy(self.env.service_policies, domain)
        policy = self._policies[domain]
        if policy is None:
            return None, None
        if to_user in numbers:
            return policy, numbers[to_user]
        number = self._prefetched(to_user) if policy.userpart_e164_translation else _UNKNOWN
        if number is _UNKNOWN:
            number = recipient_number(to_user, policy.userpart_e164_translation,
                                      self.env.country)
        if number == to_user:
            number = to_user   # one string, not two equal ones (large populations)
        numbers[to_user] = number
        return policy, number

    def _prefetched(self, to_user: str) -> str | None:
        """The prefetched E.164 number of ``to_user`` (None: not a number), or _UNKNOWN
        (no table yet, or not in it)."""
        table = self._prefetch.known() if self._prefetch is not None else None
        if table is None:
            return _UNKNOWN
        found = table.get(to_user, _UNKNOWN)
        if found is not _UNKNOWN:
            self.prefetched += 1
        return found

    def _unknown(self, policy: ServicePolicy, number: str) -> Decision | None:
        """The refusal when the recipient is not looked up locally or has no account."""
        if not policy.local_lookup:
            return refuse(404, "local_lookup", 2,
                          "Not Found (local lookup disabled in the service policy)")
        if number not in self.accounts:
            return refuse(404, "recipient", None,
                          f"Not Found (no account {number} in environment {self.env.name})")
        return None

    def _customer_rating(self, customer: Customer, account: Account, number: str, msg: Message,
                         policy: ServicePolicy) -> tuple[Decision | None, Rating | None]:
        if account.blocked:
            return refuse(403, "account", None,
                          f"Forbidden (account {account.id} is blocked)"), None
        product = self._products.get(account.product)
        if product is None or Service.messaging not in product.included_services:
            return refuse(403, "product", 8,
                          f"Forbidden (product {account.product} does not include Messaging)"), None
        tariff = self.usage_tariff(product, "outgoing")
        if tariff is None:
            return refuse(403, "usage_charge", 8, f"Forbidden (product {product.name} has no "
                          f"Messaging usage charge on {PORTASIP})"), None
        if tariff.applied_to is not AppliedTo.customer or tariff.service is not Service.messaging:
            return refuse(403, "usage_charge", 8, f"Forbidden (the Messaging usage charge names "
                          f"tariff {tariff.name}, which is not a customer Messaging tariff)"), None
        rating = self.tables[tariff.name].rate(number, msg.at, msg.length,
                                               policy.billing_unit_size, customer.time_zone)
        if rating is None:
            return refuse(403, "customer_rate", 7,
                          f"Forbidden (no rate for {number} in tariff {tariff.name})"), None
        if rating.forbidden:
            return refuse(403, "customer_rate", 7,
                          f"Forbidden (destination {rating.rate_code} is forbidden)"), None
        return None, rating

    def usage_tariff(self, product: Product, direction: str) -> Tariff | None:
        for charge in product.usage_charges:
            if (charge.service is Service.messaging and charge.node == PORTASIP
                    and charge.direction == direction):
                return self._tariffs.get(charge.tariff)
        return None

    def vendor_connection(self, policy: ServicePolicy) -> Connection | None:
        """The first messaging connection to SIP_UA naming the policy (found once)."""
        if policy.name not in self._connections:
            self._connections[policy.name] = self._connection(policy.name)
        return self._connections[policy.name]

    def _connection(self, policy: str) -> Connection | None:
        for vendor in self.env.vendors:
            for conn in vendor.connections:
                if (conn.service_type is Service.messaging and conn.type == "messaging_via_sip"
                        and conn.internal == "SIP_UA" and conn.service_policy == policy):
                    return conn
        return None

    def _vendor_rating(self, policy: ServicePolicy, number: str,
                       msg: Message) -> tuple[Decision | None, Rating | None]:
        conn = self.vendor_connection(policy)
        if conn is None:
            return refuse(404, "vendor_connection", 5, "Not Found (no 'Messaging to Vendor via "
                          f"SIP' connection to SIP-UA with policy {policy.name})"), None
        tariff = self._tariffs.get(conn.tariff) if conn.tariff is not None else None
        if tariff is None:
            return refuse(404, "vendor_connection", 5,
                          "Not Found (the SIP-UA messaging connection has no tariff)"), None
        if (tariff.applied_to is not AppliedTo.vendor or tariff.routing
                or tariff.service is not Service.messaging):
            return refuse(404, "vendor_tariff", 3, f"Not Found (vendor tariff {tariff.name} must "
                          "be applied to vendors, Messaging, Routing disabled)"), None
        rating = self.tables[tariff.name].rate(number, msg.at, msg.length,
                                               policy.billing_unit_size)
        if rating is None or rating.forbidden:
            return refuse(403, "vendor_rate", 4, f"Forbidden (no rate for {number} in vendor "
                          f"tariff {tariff.name}: add the wildcard rate '|')"), None
        return None, rating

    def _incoming_rating(self, number: str, msg: Message, policy: ServicePolicy) -> Rating | None:
        customer, account = self.accounts[number]
        product = self._products.get(account.product)
        tariff = self.usage_tariff(product, "incoming") if product else None
        if tariff is None:
            return None
        return self.tables[tariff.name].rate(msg.sender, msg.at, msg.length,
                                             policy.billing_unit_size, customer.time_zone)

    def _reserve(self, ledger: Ledger, msg: Message, customer: Customer, account: Account,
                 rating: Rating, number: str, incoming: Rating | None) -> bool:
        if not ledger.reserve(msg.hold, customer, account, rating.amount):
            return False
        if incoming is not None:
            r_customer, r_account = self.accounts[number]
            if not ledger.reserve(msg.hold, r_customer, r_account, incoming.amount):
                ledger.release(msg.hold)
                return False
        return True

    # -- accounting --------------------------------------------------------------
    def account(self, msg: Message, decision: Decision, code: int, reason: str,
                ledger: Ledger | None = None, first_xdr: int = 1) -> list[Xdr]:
        """The xDRs of a MESSAGE's final answer ``code``; commits or releases the hold."""
        delivered = 200 <= code < 300 and decision.ok and decision.billed
        if ledger is not None:
            (ledger.commit if delivered else ledger.release)(msg.hold)
        if not delivered:
            return []
        assert decision.recipient is not None
        return self.xdrs(msg, decision.recipient, self.lines(msg.sender, decision), code,
                         reason, first_xdr)

    def lines(self, sender: str, decision: Decision) -> list[Line]:
        """The xDRs a delivered message writes: the sender's, the vendor's, the
        recipient's when incoming messages are charged."""
        assert decision.customer is not None and decision.recipient is not None
        rows = [(sender, "outgoing", decision.customer)]
        if decision.vendor is not None:
            rows.append((self._vendor_name(decision), "vendor", decision.vendor))
        if decision.incoming is not None:
            rows.append((decision.recipient, "incoming", decision.incoming))
        return rows

    def xdrs(self, msg: Message, number: str, lines: list[Line], code: int, reason: str,
             first_xdr: int = 1) -> list[Xdr]:
        """The xDRs of ``lines`` for ``msg`` to ``number``, numbered from ``first_xdr``."""
        return [self._xdr(first_xdr + k, account_id, msg, number, direction, rating, code,
                          reason) for k, (account_id, direction, rating) in enumerate(lines)]

    def _vendor_name(self, decision: Decision) -> str:
        tariff = decision.vendor.tariff if decision.vendor else None
        found = self._vendor_names.get(tariff)
        if found is None:
            found = self._vendor_names[tariff] = self._vendor_of(tariff)
        return found

    def _vendor_of(self, tariff: str | None) -> str:
        for vendor in self.env.vendors:
            if any(c.tariff == tariff for c in vendor.connections):
                return vendor.name
        return ""

    def _xdr(self, i_xdr: int, account_id: str, msg: Message, number: str, direction: str,
             rating: Rating, code: int, reason: str) -> Xdr:
        return Xdr(i_xdr, self.env.name, account_id, msg.sender, number, msg.at, msg.call_id,
                   msg.msg_id, Service.messaging.value, direction, rating.tariff,
                   rating.rate_code, rating.units, rating.unit_price, rating.amount,
                   rating.currency, code, reason)
