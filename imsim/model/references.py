"""Cross-reference checks of a scenario: names that must exist, be unique and fit.

Each failure is a `ScenarioError` with the YAML path, its line, the handbook step and
the fix, the way the admin interface would refuse the same entry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from imsim.model.config import AppliedTo, BalanceModel, Environment
from imsim.model.problems import Path_, ScenarioError, line_of
from imsim.model.setup import SetupAction
from imsim.model.traffic import Traffic


class Scenario(Protocol):
    """What the checks read of an `imsim.model.scenario.Scenario` (which calls them while
    it loads, so they do not import it)."""

    @property
    def environments(self) -> Sequence[Environment]: ...
    @property
    def traffic(self) -> Traffic: ...
    @property
    def setup(self) -> Sequence[SetupAction]: ...
    @property
    def expected(self) -> Mapping[str, Any]: ...
    def home_of(self, account_id: str, domain: str | None = None) -> Environment | None: ...


class _Reporter:
    def __init__(self, document: Any, source: str) -> None:
        self.document, self.source = document, source

    def fail(self, path: Path_, problem: str, step: int | None, fix: str) -> None:
        line = line_of(self.document, path)
        if not _written(self.document, path[:-1]) and "setup" in self.document:
            problem += " (an object the setup journal made: fix its journal entry)"
            line = line_of(self.document, ("setup",))
        raise ScenarioError(problem, source=self.source, path=path, line=line, step=step,
                            fix=fix)


def _written(document: Any, path: Path_) -> bool:
    """Whether the file holds ``path`` (the journal's objects are only in the replay)."""
    node = document
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return False
    return True


def check(scenario: Scenario, document: Any, source: str) -> None:
    report = _Reporter(document, source)
    _unique(report, ("environments",), [e.name for e in scenario.environments], "name", None)
    _unique(report, ("environments",), [e.domain for e in scenario.environments], "domain", None)
    for index, env in enumerate(scenario.environments):
        _environment(report, ("environments", index), env)
    _script(report, scenario)
    _offline(report, scenario)


def check_journal(scenario: Scenario, document: Any, source: str) -> None:
    """Journal entries name existing environments and come in time order."""
    report = _Reporter(document, source)
    names = {env.name for env in scenario.environments}
    last = float("-inf")
    for index, action in enumerate(scenario.setup):
        if action.env is not None and action.env not in names:
            report.fail(("setup", index, "env"), f"environment {action.env!r} does not exist",
                        None, f"name one of {sorted(names)}")
        if action.at is not None:
            if action.at < last:
                report.fail(("setup", index, "at"), f"at {action.at:g} is earlier than the entry "
                            f"before it ({last:g})", None,
                            "list the journal in the order the admin worked")
            last = action.at


def _unique(report: _Reporter, where: Path_, names: list[str], key: str,
            step: int | None) -> None:
    for name, count in Counter(names).items():
        if count > 1:
            at = [i for i, n in enumerate(names) if n == name][1]
            report.fail((*where, at, key), f"duplicate {key} {name!r}", step,
                        f"give every entry its own {key}")


def _environment(report: _Reporter, here: Path_, env: Environment) -> None:
    _unique(report, (*here, "service_policies"), [p.name for p in env.service_policies],
            "name", 2)
    _unique(report, (*here, "tariffs"), [t.name for t in env.tariffs], "name", None)
    _unique(report, (*here, "vendors"), [v.name for v in env.vendors], "name", 5)
    _unique(report, (*here, "products"), [p.name for p in env.products], "name", 8)
    _unique(report, (*here, "customers"), [c.name for c in env.customers], "name", 9)
    _connections(report, here, env)
    _products(report, here, env)
    _customers(report, here, env)


def _connections(report: _Reporter, here: Path_, env: Environment) -> None:
    tariffs = {t.name: t for t in env.tariffs}
    policies = {p.name for p in env.service_policies}
    for v, vendor in enumerate(env.vendors):
        for c, conn in enumerate(vendor.connections):
            at = (*here, "vendors", v, "connections", c)
            if conn.tariff is not None and conn.tariff not in tariffs:
                report.fail((*at, "tariff"), f"tariff {conn.tariff!r} does not exist", 5,
                            f"create it first (step 3) or name one of {sorted(tariffs)}")
            if conn.tariff is not None and tariffs[conn.tariff].applied_to is AppliedTo.customer:
                report.fail((*at, "tariff"), f"tariff {conn.tariff!r} is a customer tariff; a "
                            "vendor connection needs a vendor tariff", 5,
                            "name the internal vendor tariff (tariff A, applied_to: vendor)")
            if conn.service_policy is not None and conn.service_policy not in policies:
                report.fail((*at, "service_policy"),
                            f"service policy {conn.service_policy!r} does not exist", 5,
                            f"create it first (step 2) or name one of {sorted(policies)}")


def _products(report: _Reporter, here: Path_, env: Environment) -> None:
    tariffs = {t.name: t for t in env.tariffs}
    for p, product in enumerate(env.products):
        for u, charge in enumerate(product.usage_charges):
            at = (*here, "products", p, "usage_charges", u, "tariff")
            tariff = tariffs.get(charge.tariff)
            if tariff is None:
                report.fail(at, f"tariff {charge.tariff!r} does not exist", 8,
                            f"create it first (step 6) or name one of {sorted(tariffs)}")
            elif tariff.applied_to is AppliedTo.vendor:
                report.fail(at, f"tariff {charge.tariff!r} is a vendor tariff; a usage charge "
                            "needs a customer tariff", 8,
                            "name the customer tariff (tariff B, applied_to: customer)")


def _customers(report: _Reporter, here: Path_, env: Environment) -> None:
    products = {p.name: p for p in env.products}
    tariffs = {t.name: t for t in env.tariffs}
    ids = [a.id for c in env.customers for a in c.accounts]
    for number, count in Counter(ids).items():
        if count > 1:
            c, a = _account_index(env, number, 1)
            report.fail((*here, "customers", c, "accounts", a, "id"),
                        f"account {number} appears twice in this environment", 9,
                        "give every account its own number")
    known = set(ids)
    for c, customer in enumerate(env.customers):
        at = (*here, "customers", c)
        if customer.credit_limit is not None and customer.balance_model is BalanceModel.debit:
            report.fail((*at, "credit_limit"), "a debit customer has no credit limit", 9,
                        "remove credit_limit or write balance_model: credit")
        _zone(report, (*at, "time_zone"), customer.time_zone)
        for a, account in enumerate(customer.accounts):
            product = products.get(account.product)
            if product is None:
                report.fail((*at, "accounts", a, "product"),
                            f"product {account.product!r} does not exist", 9,
                            f"create it first (step 8) or name one of {sorted(products)}")
                continue
            for charge in product.usage_charges:
                tariff = tariffs[charge.tariff]
                if tariff.currency != customer.currency:
                    report.fail((*at, "currency"), f"customer currency {customer.currency} "
                                f"differs from tariff {tariff.name!r} ({tariff.currency}) of "
                                f"product {product.name!r}", 8,
                                "use a customer tariff in the customer's currency")
            for b, buddy in enumerate(account.buddies):
                if buddy not in known:
                    report.fail((*at, "accounts", a, "buddies", b),
                                f"buddy {buddy} is not an account of this environment", 9,
                                "list accounts of the same virtual environment only")


def _account_index(env: Environment, number: str, occurrence: int) -> tuple[int, int]:
    seen = -1
    for c, customer in enumerate(env.customers):
        for a, account in enumerate(customer.accounts):
            if account.id == number:
                seen += 1
                if seen == occurrence:
                    return c, a
    return 0, 0


def _zone(report: _Reporter, at: Path_, name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        report.fail(at, f"unknown time zone {name!r}", 9,
                    "write an IANA zone such as Europe/London or America/New_York")


def _script(report: _Reporter, scenario: Scenario) -> None:
    ids = [m.id for m in scenario.traffic.script if m.id is not None]
    for msg_id, count in Counter(ids).items():
        if count > 1:
            index = [i for i, m in enumerate(scenario.traffic.script) if m.id == msg_id][1]
            report.fail(("traffic", "script", index, "id"), f"duplicate message id {msg_id!r}",
                        9, "give every scripted message its own id")
    for msg_id in scenario.expected:
        if msg_id not in ids:
            report.fail(("expected", msg_id), f"no scripted message has id {msg_id!r}", 9,
                        "expect outcomes only for messages of traffic.script")
    for index, msg in enumerate(scenario.traffic.script):
        if scenario.home_of(msg.sender, msg.sender_domain) is None:
            report.fail(("traffic", "script", index, "from"),
                        f"sender {msg.from_} is not an account of any environment", 9,
                        "send from a provisioned account (its E.164 number)")


def _offline(report: _Reporter, scenario: Scenario) -> None:
    known = {a.id for env in scenario.environments for c in env.customers for a in c.accounts}
    for index, number in enumerate(scenario.traffic.offline):
        if number not in known:
            report.fail(("traffic", "offline", index),
                        f"{number} is not an account of any environment", 9,
                        "list provisioned accounts whose softphone never starts")
