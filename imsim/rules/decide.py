"""The billing engine's decisions: authorization, rating and accounting of a MESSAGE.

This is the one place where the message-path rules of DESIGN.md live. The simulator
wraps `BillingEngine` in simpy processes; the lab billing service calls the same
methods behind HTTP; planning and re-rating call `decide` once per kind of message.
Plain Python: no simpy, no I/O, no pandas. Money moves in `imsim.rules.settle`.

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

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Final

from imsim.model.config import (
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
from imsim.rules.ledger import Ledger, Payer
from imsim.rules.message import OK_REASON, Decision, Message, Xdr, refuse
from imsim.rules.proxy import recipient_number, select_policy
from imsim.rules.rating import RateTable, Rating
from imsim.rules.settle import BundleTab, Tab, bundle_period

_UNKNOWN: Final = "\x00unknown"
"""Not found in the numbers known ahead (no user part is this string: it is not a
number)."""
Line = tuple[str, str, Rating]
"""One xDR of a delivered message before its message fields: account_id, direction,
rating (`BillingEngine.lines`)."""


class BillingEngine:
    """One virtual billing environment's configuration, compiled for fast decisions."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.numbers: Mapping[str, str | None] | None = None
        """E.164 translations of user parts (for ``env.country``) worked out ahead by a
        caller (the simulator's `imsim.sim.prefetch.E164Prefetch`): used where they
        have one, the same answers as translating here."""
        self.prefetched = 0   # recipients whose number came from ``numbers``
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
        policy, number = self.recipient(msg.to_user, msg.to_domain)
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
        """The balance part of check 4 for a `decide` answer (`imsim.rules.settle`):
        refuse when the sender (or, for charged incoming messages, the recipient) cannot
        pay; else hold the charges in ``ledger`` under ``msg.hold`` until `account`.
        Without a ledger there are no balances: the answer, without its charge when it
        is a refusal."""
        if ledger is None:
            return decision if decision.ok else replace(decision, customer=None)
        tab = self.tab(msg.sender, decision) or self.bundle_tab(msg, decision)
        answer = tab.settle(ledger)
        if answer.ok and tab.payer is not None:
            ledger.holds[msg.hold] = tab
        return answer

    def tab(self, sender: str, decision: Decision) -> Tab | None:
        """The `Tab` that settles a `decide` answer for ``sender`` (the same for every
        message with that answer); None when the sender's product has a bundle
        (`bundle_tab`: one per message)."""
        if decision.customer is None:
            return Tab(decision, ())
        if self.bundle_of(sender) is not None:
            return None
        return Tab(decision, self._charges(sender, decision))

    def bundle_tab(self, msg: Message, decision: Decision) -> BundleTab:
        """The settlement of ``msg`` whose sender's product has a bundle."""
        found = self.bundle_of(msg.sender)
        assert found is not None
        customer, allowance = found
        key = f"{msg.sender}\x1f{bundle_period(msg.at, customer.time_zone)}"
        return BundleTab(decision, self._charges(msg.sender, decision), key, allowance)

    def _charges(self, sender: str, decision: Decision) -> tuple[tuple[Payer, Decimal], ...]:
        assert decision.customer is not None
        charges = [(self.payer(sender), decision.customer.amount)]
        if decision.ok and decision.incoming is not None:
            assert decision.recipient is not None
            charges.append((self.payer(decision.recipient), decision.incoming.amount))
        return tuple(charges)

    def bundle_of(self, sender: str) -> tuple[Customer, int] | None:
        """The sender's customer and the messages its product includes each calendar
        month (customer's time zone), or None when the product has no bundle."""
        customer, account = self.accounts[sender]
        product = self._products.get(account.product)
        if product is None or not product.included_messages:
            return None
        return customer, product.included_messages

    def payer(self, number: str) -> Payer:
        """The `Payer` of an account (found once)."""
        found = self._payers.get(number)
        if found is None:
            found = self._payers[number] = Payer.of(*self.accounts[number])
        return found

    def recipient(self, to_user: str, domain: str) -> tuple[ServicePolicy | None, str | None]:
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
        """The E.164 number of ``to_user`` known ahead (None: not a number), or
        _UNKNOWN."""
        numbers = self.numbers
        if numbers is None:
            return _UNKNOWN
        found = numbers.get(to_user, _UNKNOWN)
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

    # -- accounting --------------------------------------------------------------
    def account(self, msg: Message, decision: Decision, code: int, reason: str,
                ledger: Ledger | None = None, first_xdr: int = 1) -> list[Xdr]:
        """The xDRs of a MESSAGE's final answer ``code``; commits or releases its hold."""
        delivered = 200 <= code < 300 and decision.ok and decision.billed
        if ledger is not None:
            self._close(msg, ledger, code)
        if not delivered:
            return []
        assert decision.recipient is not None
        return self.xdrs(msg, decision.recipient, self.lines(msg.sender, decision), code,
                         reason, first_xdr)

    def release(self, msg: Message, ledger: Ledger) -> None:
        """Give back what ``msg``'s authorization held (its answer never came)."""
        self._close(msg, ledger, 0)

    @staticmethod
    def _close(msg: Message, ledger: Ledger, code: int) -> None:
        """Commit (a 2xx ``code``) or release the hold of ``msg``'s authorization."""
        tab: Tab | None = ledger.holds.pop(msg.hold, None)
        if tab is not None:
            tab.account(ledger, code)

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
