"""The setup journal: what an admin did, in the handbook's words, replayed step by step.

A scenario's ``setup:`` is an ordered list of admin actions. Replaying it builds the
configuration one action at a time on top of the scenario's ``environments`` (the
state before the journal: the basic SIP configuration). An action the admin interface
would refuse (a rate for a tariff that does not exist yet, a currency change) is
refused the same way, with the step to do first, and the replay goes on without it.

Time: changes to the configuration server and the service policies (steps 1 and 2)
reach PortaSIP and the RADIUS side only ``propagation_delay`` seconds after they were
made; billing objects (tariffs, rates, connections, products, accounts) are in the
billing database at once. `timeline` gives, per environment, the configuration in
effect from each moment on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from imsim.model.config import (
    AppliedTo,
    ConfigServer,
    Connection,
    Currency,
    Customer,
    Environment,
    Frozen,
    Name,
    OffPeakPeriod,
    Product,
    Rate,
    Service,
    ServicePolicy,
    Tariff,
    UsageCharge,
    Vendor,
    account_number,
)
from imsim.model.units import Seconds


class _Action(Frozen):
    at: Seconds | None = None
    env: str | None = None


class EnableMessaging(_Action):
    action: Literal["enable_messaging"]


class DisableMessaging(_Action):
    action: Literal["disable_messaging"]


class CreateServicePolicy(_Action, ServicePolicy):
    action: Literal["create_service_policy"]


def _known(changes: dict[str, Any], model: type[Frozen]) -> dict[str, Any]:
    """``changes`` whose keys are fields of ``model`` (a typo is the file's, not a
    refusal of the admin interface)."""
    unknown = sorted(set(changes) - set(model.model_fields))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} in changes: write one of "
                         f"{sorted(model.model_fields)}")
    return changes


class UpdateServicePolicy(_Action):
    action: Literal["update_service_policy"]
    name: Name
    changes: dict[str, Any]

    @field_validator("changes")
    @classmethod
    def _fields(cls, changes: dict[str, Any]) -> dict[str, Any]:
        return _known(changes, ServicePolicy)


class CreateTariff(_Action):
    action: Literal["create_tariff"]
    name: Name
    currency: Currency = "USD"
    applied_to: AppliedTo
    routing: bool = False
    service: Service = Service.messaging
    off_peak: tuple[OffPeakPeriod, ...] = ()


class UpdateTariff(_Action):
    action: Literal["update_tariff"]
    name: Name
    changes: dict[str, Any]

    @field_validator("changes")
    @classmethod
    def _fields(cls, changes: dict[str, Any]) -> dict[str, Any]:
        return _known(changes, Tariff)


class AddRate(_Action, Rate):
    action: Literal["add_rate"]
    tariff: Name


class CreateVendor(_Action):
    action: Literal["create_vendor"]
    name: Name


class AddConnection(_Action, Connection):
    action: Literal["add_connection"]
    vendor: Name


class CreateProduct(_Action):
    action: Literal["create_product"]
    name: Name
    included_services: tuple[Service, ...] = (Service.voice,)


class IncludeService(_Action):
    action: Literal["include_service"]
    product: Name
    service: Service = Service.messaging


class AddUsageCharge(_Action, UsageCharge):
    action: Literal["add_usage_charge"]
    product: Name


class CreateCustomer(_Action):
    action: Literal["create_customer"]
    name: Name
    currency: Currency = "USD"
    balance_model: Literal["debit", "credit"] = "debit"
    credit_limit: Decimal | None = Field(None, ge=0)
    time_zone: str = "UTC"


class CreateAccount(_Action):
    action: Literal["create_account"]
    customer: Name
    id: str = Field(pattern=r"^\+?[1-9][0-9]{5,14}$")
    password: str = Field(min_length=1)
    product: Name
    balance: Decimal = Field(Decimal(0), ge=0)
    blocked: bool = False
    buddies: tuple[str, ...] = ()

    @field_validator("id", mode="before")
    @classmethod
    def _e164(cls, value: object) -> object:
        return account_number(value) if isinstance(value, str) else value


SetupAction = Annotated[
    EnableMessaging | DisableMessaging | CreateServicePolicy | UpdateServicePolicy
    | CreateTariff | UpdateTariff | AddRate | CreateVendor | AddConnection | CreateProduct
    | IncludeService | AddUsageCharge | CreateCustomer | CreateAccount,
    Field(discriminator="action"),
]

PROPAGATED_ACTIONS = {"enable_messaging", "disable_messaging", "create_service_policy",
                      "update_service_policy"}


class Refused(Exception):
    """The admin interface refuses an action: why, and which step to do first."""

    def __init__(self, problem: str, step: int | None) -> None:
        super().__init__(problem)
        self.problem, self.step = problem, step


@dataclass(frozen=True)
class Applied:
    """One journal entry after replay: when, where, which step, refused or not."""

    index: int
    at: float
    env: str
    action: str
    step: int | None
    refused: str | None = None
    first: int | None = None  # the step to do first when refused

    @property
    def ok(self) -> bool:
        return self.refused is None


def action_step(action: Any, env: Environment) -> int | None:
    """The handbook step an admin action belongs to (``env``: the state before it)."""
    name = action.action
    if name in ("enable_messaging", "disable_messaging"):
        return 1
    if name in ("create_service_policy", "update_service_policy"):
        return 2
    if name in ("create_tariff", "update_tariff", "add_rate"):
        tariff = env.tariff(action.tariff if name == "add_rate" else action.name)
        applied_to = action.applied_to if name == "create_tariff" else (
            tariff.applied_to if tariff is not None else None)
        vendor = applied_to is AppliedTo.vendor
        if name == "add_rate":
            return 4 if vendor else 7
        return 3 if vendor else 6
    if name in ("create_vendor", "add_connection"):
        return 5
    if name in ("create_product", "include_service", "add_usage_charge"):
        return 8
    return 9


# -- applying one action --------------------------------------------------------------

def apply(env: Environment, action: Any) -> Environment:
    """The environment after ``action``, or `Refused`."""
    handler = _HANDLERS[action.action]
    try:
        return handler(env, action)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        raise Refused(f"{where}: {error['msg']}", None) from None


def _fields(action: Any, model: type[Frozen]) -> dict[str, Any]:
    return {k: getattr(action, k) for k in model.model_fields if k in type(action).model_fields}


def _enable(env: Environment, action: Any) -> Environment:
    types = tuple(dict.fromkeys((*env.config_server.service_types, Service.messaging)))
    return env.model_copy(update={"config_server": ConfigServer(service_types=types)})


def _disable(env: Environment, action: Any) -> Environment:
    types = tuple(t for t in env.config_server.service_types if t is not Service.messaging)
    return env.model_copy(update={"config_server": ConfigServer(service_types=types)})


def _create_policy(env: Environment, action: Any) -> Environment:
    if env.policy(action.name) is not None:
        raise Refused(f"service policy {action.name!r} exists already", None)
    policy = ServicePolicy(**_fields(action, ServicePolicy))
    return env.model_copy(update={"service_policies": (*env.service_policies, policy)})


def _update_policy(env: Environment, action: Any) -> Environment:
    policy = env.policy(action.name)
    if policy is None:
        raise Refused(f"service policy {action.name!r} does not exist yet: create it first "
                      "(step 2)", 2)
    changed = ServicePolicy(**{**policy.model_dump(), **action.changes})
    policies = tuple(changed if p.name == action.name else p for p in env.service_policies)
    return env.model_copy(update={"service_policies": policies})


def _create_tariff(env: Environment, action: Any) -> Environment:
    if env.tariff(action.name) is not None:
        raise Refused(f"tariff {action.name!r} exists already", None)
    tariff = Tariff(**_fields(action, Tariff))
    return env.model_copy(update={"tariffs": (*env.tariffs, tariff)})


def _update_tariff(env: Environment, action: Any) -> Environment:
    tariff = _tariff(env, action.name)
    if "currency" in action.changes and action.changes["currency"] != tariff.currency:
        raise Refused(f"the currency of tariff {action.name!r} is {tariff.currency} and cannot "
                      "change once set: create a new tariff instead", None)
    if "rates" in action.changes:
        raise Refused("rates are added with add_rate, one entry at a time", None)
    changed = Tariff(**{**tariff.model_dump(), **action.changes})
    if changed.name != tariff.name:
        if env.tariff(changed.name) is not None:
            raise Refused(f"tariff {changed.name!r} exists already", None)
        env = _renamed_tariff(env, tariff.name, changed.name)
    return _replace_tariff(env, changed, tariff.name)


def _renamed_tariff(env: Environment, old: str, new: str) -> Environment:
    """PortaBilling refers to a tariff by its id, so a new name keeps every vendor
    connection and product rating entry on it: here they follow the name."""
    def follow(item: Any) -> Any:
        return item.model_copy(update={"tariff": new}) if item.tariff == old else item

    vendors = tuple(v.model_copy(update={"connections": tuple(map(follow, v.connections))})
                    for v in env.vendors)
    products = tuple(p.model_copy(update={"usage_charges": tuple(map(follow, p.usage_charges))})
                     for p in env.products)
    return env.model_copy(update={"vendors": vendors, "products": products})


def _tariff(env: Environment, name: str) -> Tariff:
    tariff = env.tariff(name)
    if tariff is None:
        raise Refused(f"tariff {name!r} does not exist yet: create it first (step 3 for the "
                      "vendor tariff, step 6 for the customer tariff)", None)
    return tariff


def _replace_tariff(env: Environment, tariff: Tariff, name: str | None = None) -> Environment:
    """``tariff`` in place of the tariff called ``name`` (its own name by default)."""
    tariffs = tuple(tariff if t.name == (name or tariff.name) else t for t in env.tariffs)
    return env.model_copy(update={"tariffs": tariffs})


def _add_rate(env: Environment, action: Any) -> Environment:
    tariff = _tariff(env, action.tariff)
    return _replace_tariff(env, tariff.with_rate(Rate(**_fields(action, Rate))))


def _create_vendor(env: Environment, action: Any) -> Environment:
    if any(v.name == action.name for v in env.vendors):
        raise Refused(f"vendor {action.name!r} exists already", None)
    return env.model_copy(update={"vendors": (*env.vendors, Vendor(name=action.name))})


def _add_connection(env: Environment, action: Any) -> Environment:
    vendor = next((v for v in env.vendors if v.name == action.vendor), None)
    if vendor is None:
        raise Refused(f"vendor {action.vendor!r} does not exist: the internal vendor comes "
                      "from the basic SIP configuration (create_vendor)", None)
    if action.tariff is not None:
        tariff = env.tariff(action.tariff)
        if tariff is None:
            raise Refused(f"tariff {action.tariff!r} does not exist yet: create it first "
                          "(step 3)", 3)
        if tariff.applied_to is not AppliedTo.vendor:
            raise Refused(f"tariff {action.tariff!r} is applied to customers: the connection's "
                          "Tariff list only offers vendor tariffs (step 3)", 3)
    if action.service_policy is not None and env.policy(action.service_policy) is None:
        raise Refused(f"service policy {action.service_policy!r} does not exist yet: create "
                      "it first (step 2)", 2)
    conn = Connection(**_fields(action, Connection))
    vendors = tuple(v.model_copy(update={"connections": (*v.connections, conn)})
                    if v.name == action.vendor else v for v in env.vendors)
    return env.model_copy(update={"vendors": vendors})


def _product(env: Environment, name: str) -> Product:
    product = env.product(name)
    if product is None:
        raise Refused(f"product {name!r} does not exist: create_product first", None)
    return product


def _replace_product(env: Environment, product: Product) -> Environment:
    products = tuple(product if p.name == product.name else p for p in env.products)
    return env.model_copy(update={"products": products})


def _create_product(env: Environment, action: Any) -> Environment:
    if env.product(action.name) is not None:
        raise Refused(f"product {action.name!r} exists already", None)
    product = Product(name=action.name, included_services=action.included_services)
    return env.model_copy(update={"products": (*env.products, product)})


def _include_service(env: Environment, action: Any) -> Environment:
    product = _product(env, action.product)
    services = tuple(dict.fromkeys((*product.included_services, action.service)))
    return _replace_product(env, product.model_copy(update={"included_services": services}))


def _add_usage_charge(env: Environment, action: Any) -> Environment:
    product = _product(env, action.product)
    if action.service not in product.included_services:
        raise Refused(f"product {action.product!r} does not include {action.service.value}: "
                      "tick it in the Included Services tab first (step 8)", 8)
    tariff = env.tariff(action.tariff)
    if tariff is None:
        raise Refused(f"tariff {action.tariff!r} does not exist yet: create it first (step 6)", 6)
    if tariff.applied_to is not AppliedTo.customer:
        raise Refused(f"tariff {action.tariff!r} is applied to vendors: a usage charge only "
                      "offers customer tariffs (step 6)", 6)
    charge = UsageCharge(**_fields(action, UsageCharge))
    return _replace_product(env, product.model_copy(
        update={"usage_charges": (*product.usage_charges, charge)}))


def _create_customer(env: Environment, action: Any) -> Environment:
    if any(c.name == action.name for c in env.customers):
        raise Refused(f"customer {action.name!r} exists already", None)
    customer = Customer(**_fields(action, Customer))
    return env.model_copy(update={"customers": (*env.customers, customer)})


def _create_account(env: Environment, action: Any) -> Environment:
    from imsim.model.config import Account

    customer = next((c for c in env.customers if c.name == action.customer), None)
    if customer is None:
        raise Refused(f"customer {action.customer!r} does not exist: create_customer first", 9)
    _product(env, action.product)
    account = Account(**_fields(action, Account))
    if account.id in env.accounts():
        raise Refused(f"account {account.id} exists already", None)
    customers = tuple(c.model_copy(update={"accounts": (*c.accounts, account)})
                      if c.name == customer.name else c for c in env.customers)
    return env.model_copy(update={"customers": customers})


_HANDLERS: dict[str, Callable[[Environment, Any], Environment]] = {
    "enable_messaging": _enable, "disable_messaging": _disable,
    "create_service_policy": _create_policy, "update_service_policy": _update_policy,
    "create_tariff": _create_tariff, "update_tariff": _update_tariff, "add_rate": _add_rate,
    "create_vendor": _create_vendor, "add_connection": _add_connection,
    "create_product": _create_product, "include_service": _include_service,
    "add_usage_charge": _add_usage_charge, "create_customer": _create_customer,
    "create_account": _create_account,
}
