"""Configuration objects of the nine handbook steps, in the handbook's own words.

Every object is an immutable pydantic model: the scenario loader validates a YAML
document into these, the setup trainer rebuilds them step by step with
``model_copy(update=...)``, and the decision modules (`imsim.rules.proxy`,
`imsim.rules.decide`) read them. Nothing here knows about YAML, time or pandas.

Handbook steps (``../shared/handbook/instant-messaging-setup.txt``):

1. enable the Messaging service on the configuration server      -> ConfigServer
2. create a domain service policy ("service policy A")            -> ServicePolicy
3. create the internal vendor tariff ("tariff A")                 -> Tariff(applied_to=vendor)
4. enter the wildcard rate ``|`` in tariff A                      -> Rate
5. a "Messaging to Vendor via SIP" connection, SIP-UA, tariff A   -> Vendor / Connection
6. create the customer tariff ("tariff B")                        -> Tariff(applied_to=customer)
7. enter the rates of tariff B                                    -> Rate
8. include Messaging in a product, add its usage charge           -> Product / UsageCharge
9. provision test softphones and send a test message              -> Customer / Account
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

WILDCARD = "|"
PORTASIP = "PortaSIP"
_WRITTEN = re.compile(r"[\s\-().]")
_SCHEME = re.compile(r"^sips?:", re.IGNORECASE)


def account_number(written: str) -> str:
    """An account's ID (its E.164 number) as people write it, '+1 (555) 123-0001', in
    the digits the account is: separators and the leading '+' dropped. Anything else
    is returned stripped, for the validator to refuse."""
    digits = _WRITTEN.sub("", written).lstrip("+")
    return digits if digits.isdigit() else written.strip()

def buddy_address(written: str) -> str:
    """A buddy as a softphone's list writes it: an account number (`account_number`), or
    an address 'sip:NUMBER@domain' / 'NUMBER@domain', kept as 'NUMBER@domain' (domain in
    lower case) until its environment (`Environment`) takes its own domain's off."""
    user, at, domain = _SCHEME.sub("", written.strip()).partition("@")
    number = account_number(user)
    return f"{number}@{domain.strip().lower()}" if at else number


STEP_TITLES: dict[int, str] = {
    1: "Enable the Messaging Service on the Configuration server",
    2: "Create a domain service policy (service policy A)",
    3: "Create a vendor tariff for IM services (tariff A), Routing disabled",
    4: "In tariff A, enter a rate for the wildcard destination (|)",
    5: "Create a 'Messaging to Vendor via SIP' connection (SIP-UA, tariff A)",
    6: "Create a customer tariff (tariff B)",
    7: "In tariff B, enter the rates for the destinations",
    8: "Modify a product: include Messaging, add a usage charge (PortaSIP, tariff B)",
    9: "Provision test softphones and send an instant test message",
}


class Frozen(BaseModel):
    """Base of every configuration object: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Service(StrEnum):
    voice = "voice"
    messaging = "messaging"


class AppliedTo(StrEnum):
    vendor = "vendor"
    customer = "customer"


class RateStatus(StrEnum):
    normal = "normal"
    forbidden = "forbidden"


class BalanceModel(StrEnum):
    debit = "debit"
    credit = "credit"


NonNegativeMoney = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]
Name = Annotated[str, Field(min_length=1, max_length=128)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class ConfigServer(Frozen):
    """Step 1: the BillingEngine ServiceTypes group of the configuration server."""

    service_types: tuple[Service, ...] = (Service.voice,)

    @property
    def messaging_enabled(self) -> bool:
        return Service.messaging in self.service_types


class ServicePolicy(Frozen):
    """Step 2: a Messaging domain service policy (attributes as in the handbook)."""

    name: Name
    id: Name = "im"
    description: str = ""
    match_priority: int = Field(1, ge=0)
    recipient_domain_pattern: str = Field("%", min_length=1, max_length=255)
    transport_protocol: Literal["SIP"] = "SIP"
    outgoing_aaa: bool = True
    external_routing: bool = False
    local_lookup: bool = True
    userpart_e164_translation: bool = True
    billing_unit_size: int | None = Field(None, gt=0)


class Rate(Frozen):
    """Steps 4 and 7: one row of a tariff's Edit Rates page."""

    rate_codes: tuple[str, ...] = Field(min_length=1)
    price: NonNegativeMoney = Decimal(0)
    off_peak_price: NonNegativeMoney | None = None
    effective_from: dt.datetime | None = None
    status: RateStatus = RateStatus.normal

    @field_validator("rate_codes", mode="before")
    @classmethod
    def _codes(cls, value: object) -> object:
        if isinstance(value, str | int):
            value = [value]
        if isinstance(value, list | tuple):
            return tuple(str(code).strip() for code in value)
        return value

    @field_validator("rate_codes")
    @classmethod
    def _digits(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            if code != WILDCARD and not code.isdigit():
                raise ValueError(
                    f"rate code {code!r} must be digits (a destination prefix such as 44) "
                    f"or '|' for any destination"
                )
        return codes

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("effective_from needs a time zone, e.g. 2026-01-01T00:00:00+00:00")
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class OffPeakPeriod(Frozen):
    """A weekly off-peak period of a tariff, read in the customer's time zone.

    ``start`` > ``end`` wraps over midnight (19:00 -> 07:00); ``start == end`` is all day.
    As PortaBilling reads a period (``wd{mo-fr} hr{7pm-6am}``), the day and the clock are
    both the moment's own: Monday 05:00 is in Monday-to-Friday 19:00-07:00, Saturday
    05:00 is not.
    """

    days: tuple[Weekday, ...] = WEEKDAYS  # type: ignore[assignment]
    start: dt.time = dt.time(0, 0)
    end: dt.time = dt.time(0, 0)

    def contains(self, local: dt.datetime) -> bool:
        if WEEKDAYS[local.weekday()] not in self.days:
            return False
        clock = local.time()
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end


class Tariff(Frozen):
    """Steps 3 and 6: a tariff; its currency is chosen once and never changes."""

    name: Name
    currency: Currency = "USD"
    applied_to: AppliedTo
    routing: bool = False
    service: Service = Service.messaging
    rates: tuple[Rate, ...] = ()
    off_peak: tuple[OffPeakPeriod, ...] = ()

    def with_rate(self, rate: Rate) -> Tariff:
        return self.model_copy(update={"rates": (*self.rates, rate)})


class Connection(Frozen):
    """Step 5: a vendor connection; the handbook's is 'Messaging to Vendor via SIP'."""

    description: str = ""
    service_type: Service = Service.messaging
    type: Literal["messaging_via_sip", "voip_via_sip"] = "messaging_via_sip"
    internal: Literal["SIP_UA"] | None = "SIP_UA"
    remote_gateway_id: str = "SIP-UA"
    tariff: str | None = None
    service_policy: str | None = None


class Vendor(Frozen):
    """The internal vendor (the one holding the SIP-UA connection) and others."""

    name: Name
    connections: tuple[Connection, ...] = ()


class UsageCharge(Frozen):
    """Step 8: a rating entry of a product (service, node, tariff)."""

    service: Service = Service.messaging
    node: str = PORTASIP
    tariff: str
    direction: Literal["outgoing", "incoming"] = "outgoing"


class Product(Frozen):
    """Step 8: included services and usage charges.

    ``included_messages``: a bundle of outgoing messages included per account and
    calendar month (in the customer's time zone); while an account has some left, a
    delivered message is charged 0, afterwards the usage charge's tariff applies
    (`imsim.rules.settle.BundleTab` holds the rule). 0: no bundle.
    """

    name: Name
    included_services: tuple[Service, ...] = (Service.voice,)
    usage_charges: tuple[UsageCharge, ...] = ()
    included_messages: int = Field(0, ge=0, le=10_000_000)


class Account(Frozen):
    """An end user (step 9's softphone): id is the E.164 number without '+'."""

    id: str = Field(pattern=r"^[1-9][0-9]{5,14}$")
    password: str = Field(min_length=1)
    product: str
    balance: NonNegativeMoney = Decimal(0)
    blocked: bool = False
    buddies: tuple[str, ...] = ()

    @field_validator("id", mode="before")
    @classmethod
    def _e164(cls, value: object) -> object:
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str):
            value = account_number(value)
        return value

    @field_validator("buddies", mode="before")
    @classmethod
    def _buddy_ids(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(buddy_address(str(item)) for item in value)
        return value


class Customer(Frozen):
    """A customer: debit (prepaid balance per account) or credit (owed, up to a limit)."""

    name: Name
    currency: Currency = "USD"
    balance_model: BalanceModel = BalanceModel.debit
    credit_limit: NonNegativeMoney | None = None
    time_zone: str = Field("UTC", min_length=1, max_length=64)
    accounts: tuple[Account, ...] = ()


class Environment(Frozen):
    """A virtual billing environment: one SIP domain, one copy of the nine steps."""

    name: Name
    domain: str = Field("imsim.test", min_length=1)
    country: str = Field("US", pattern=r"^[A-Z]{2}$")
    config_server: ConfigServer = ConfigServer()
    service_policies: tuple[ServicePolicy, ...] = ()
    tariffs: tuple[Tariff, ...] = ()
    vendors: tuple[Vendor, ...] = ()
    products: tuple[Product, ...] = ()
    customers: tuple[Customer, ...] = ()

    @field_validator("domain")
    @classmethod
    def _host(cls, value: str) -> str:
        return value.lower()   # SIP host names compare case-insensitively

    @field_validator("customers")
    @classmethod
    def _own_buddies(cls, customers: tuple[Customer, ...],
                     info: ValidationInfo) -> tuple[Customer, ...]:
        """A buddy at this environment's domain is the account of that number (one at
        another domain stays an address, which no account here is)."""
        suffix = f"@{info.data.get('domain', '')}"
        if not any(b.endswith(suffix) for c in customers for a in c.accounts
                   for b in a.buddies):
            return customers
        return tuple(c.model_copy(update={"accounts": tuple(
            a.model_copy(update={"buddies": tuple(b.removesuffix(suffix) for b in a.buddies)})
            for a in c.accounts)}) for c in customers)

    def tariff(self, name: str | None) -> Tariff | None:
        return next((t for t in self.tariffs if t.name == name), None)

    def policy(self, name: str | None) -> ServicePolicy | None:
        return next((p for p in self.service_policies if p.name == name), None)

    def product(self, name: str | None) -> Product | None:
        return next((p for p in self.products if p.name == name), None)

    def accounts(self) -> dict[str, tuple[Customer, Account]]:
        return {a.id: (c, a) for c in self.customers for a in c.accounts}
