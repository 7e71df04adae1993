"""Diagnosis: every misconfiguration the handbook warns about, with its step and fix.

`diagnose` reads the configuration as the journal left it (and, for timing, the
timeline and the test messages). Each `Finding` names the message-path check it
breaks (the same names `imsim.rules.decide` puts in its decisions), so the trainer can
prove the diagnosis with test messages: a refused message is explained by a finding
with the same check.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imsim.model.config import WILDCARD, AppliedTo, Environment, Service, ServicePolicy, Tariff
from imsim.rules.decide import BillingEngine
from imsim.rules.proxy import recipient_number, select_policy

if TYPE_CHECKING:
    from imsim.model.scenario import Scenario

BREAKS, UNBILLED, NOTE = "breaks", "unbilled", "note"


@dataclass(frozen=True)
class Finding:
    env: str
    step: int | None
    check: str
    problem: str
    fix: str
    severity: str = BREAKS


def diagnose(scenario: Scenario) -> list[Finding]:
    findings: list[Finding] = []
    for env in scenario.environments:
        findings += list(_environment(scenario, env))
    findings += list(_timing(scenario))
    return findings


def _environment(scenario: Scenario, env: Environment) -> Iterator[Finding]:
    yield from _step1(env)
    policy = yield from _step2(scenario, env)
    if policy is None or not policy.outgoing_aaa:
        return
    yield from _vendor_side(env, policy)
    yield from _customer_side(scenario, env)


def _finding(env: Environment, step: int | None, check: str, problem: str, fix: str,
             severity: str = BREAKS) -> Finding:
    return Finding(env.name, step, check, problem, fix, severity)


def _step1(env: Environment) -> Iterator[Finding]:
    if not env.config_server.messaging_enabled:
        yield _finding(env, 1, "messaging_enabled",
                       "the Messaging service is not enabled on the configuration server",
                       "BillingEngine -> ServiceTypes: enable Messaging, Save, Verify, "
                       "Check / Apply")


def _step2(scenario: Scenario, env: Environment) -> Generator[Finding, None,
                                                              ServicePolicy | None]:
    fix = "Networking -> Service Policies: add a Messaging policy with pattern %"
    if not env.service_policies:
        yield _finding(env, 2, "service_policy", "there is no messaging service policy", fix)
        return None
    domains = _recipient_domains(scenario, env)
    for domain in sorted(domains):
        if select_policy(env.service_policies, domain) is None:
            patterns = ", ".join(p.recipient_domain_pattern for p in env.service_policies)
            yield _finding(env, 2, "service_policy",
                           f"no service policy pattern ({patterns}) matches the recipient "
                           f"domain {domain}", "set Recipient domain pattern to %")
    yield from _unbilled(env, domains)
    policy = select_policy(env.service_policies, env.domain)
    if policy is None:
        return None
    if not policy.local_lookup:
        yield _finding(env, 2, "local_lookup", f"policy {policy.name!r} has Local_lookup = No: "
                       "on-net recipients are not found", "set Local_lookup to Yes")
    if not policy.userpart_e164_translation:
        typed = [m.id or str(i) for i, m in enumerate(scenario.traffic.script)
                 if _home(scenario, m) is env and
                 recipient_number(m.to.split("@")[0], False, env.country) is None]
        if typed:
            yield _finding(env, 2, "recipient", f"policy {policy.name!r} has "
                           "Userpart_e164_translation = No, so numbers typed with +, spaces "
                           f"or national format are not found (messages {', '.join(typed)})",
                           "set Userpart_e164_translation to Yes")
    return policy


def _unbilled(env: Environment, domains: set[str]) -> Iterator[Finding]:
    """Each policy that serves a recipient domain (the environment's own, an alias the
    test messages use) with Outgoing_aaa = No."""
    selected = {select_policy(env.service_policies, d) for d in sorted(domains)}
    for policy in sorted((p for p in selected if p is not None and not p.outgoing_aaa),
                         key=lambda p: p.name):
        yield _finding(env, 2, "unbilled", f"policy {policy.name!r} has Outgoing_aaa = No: "
                       "messages are delivered but never authorized or billed",
                       "set Outgoing_aaa to Yes", UNBILLED)


def _recipient_domains(scenario: Scenario, env: Environment) -> set[str]:
    domains = {env.domain}
    for msg in scenario.traffic.script:
        if "@" in msg.to and _home(scenario, msg) is env:
            domains.add(msg.to.split("@", 1)[1])
    return domains


def _home(scenario: Scenario, msg: object) -> Environment | None:
    return scenario.home_of(msg.sender, msg.sender_domain)  # type: ignore[attr-defined]


# -- steps 3, 4, 5: the internal vendor --------------------------------------------------

def _vendor_side(env: Environment, policy: ServicePolicy) -> Iterator[Finding]:
    connections = [c for v in env.vendors for c in v.connections
                   if c.service_type is Service.messaging]
    good = BillingEngine(env).vendor_connection(policy)
    if good is None:
        yield from _bad_connections(env, policy, connections)
        return
    tariff = env.tariff(good.tariff)
    if tariff is None:
        yield _finding(env, 5, "vendor_connection", "the SIP-UA messaging connection has no "
                       "tariff", "choose tariff A in the connection's Tariff list")
        return
    yield from _vendor_tariff(env, tariff)


def _bad_connections(env: Environment, policy: ServicePolicy, connections: list) -> Iterator[
        Finding]:
    fix = ("Vendors -> internal vendor -> Connections -> Add: Messaging Service, 'Messaging "
           "to Vendor via SIP', tariff A, Internal SIP_UA, policy A")
    if not connections:
        yield _finding(env, 5, "vendor_connection", "the internal vendor has no Messaging "
                       "connection", fix)
    for conn in connections:
        label = f"connection {conn.description or '(no description)'!r}"
        if conn.type != "messaging_via_sip":
            yield _finding(env, 5, "vendor_connection", f"{label} is of type {conn.type}, not "
                           "'Messaging to Vendor via SIP'",
                           "set Type to Messaging to Vendor via SIP")
        elif conn.internal != "SIP_UA":
            yield _finding(env, 5, "vendor_connection", f"{label} does not route to internally "
                           "registered SIP accounts (SIP-UA)",
                           "select Internal connection: Route to internally registered SIP "
                           "accounts (SIP_UA)")
        elif conn.service_policy is None:
            yield _finding(env, 5, "vendor_connection", f"{label} has no service policy",
                           f"choose {policy.name!r} in its Service Policy list")
        elif conn.service_policy != policy.name:
            yield _finding(env, 5, "vendor_connection", f"{label} uses policy "
                           f"{conn.service_policy!r}, but messages select {policy.name!r}",
                           f"choose {policy.name!r} in its Service Policy list")


def _vendor_tariff(env: Environment, tariff: Tariff) -> Iterator[Finding]:
    if tariff.routing:
        yield _finding(env, 3, "vendor_tariff", f"vendor tariff {tariff.name!r} has Routing "
                       "enabled", "clear the Routing check box: on-net messages never leave "
                       "the network")
    if tariff.service is not Service.messaging:
        yield _finding(env, 3, "vendor_tariff", f"vendor tariff {tariff.name!r} is for "
                       f"{tariff.service.value}, not the Messaging Service",
                       "create tariff A with Service: Messaging Service")
    wildcard = [r for r in tariff.rates if WILDCARD in r.rate_codes]
    if not wildcard:
        yield _finding(env, 4, "vendor_rate", f"vendor tariff {tariff.name!r} has no rate for "
                       "the wildcard destination |", "add a rate with Rate Codes '|' and price 0")
    priced = [p for r in wildcard for p in (r.price, r.off_peak_price) if p]
    if priced:
        yield _finding(env, 4, "vendor_rate", f"vendor tariff {tariff.name!r} charges "
                       f"{priced[0]} for the wildcard destination |: on-net instant messages "
                       "have no actual cost", "set zero as the price", NOTE)


# -- steps 6, 7, 8: the customer side ----------------------------------------------------

def _customer_side(scenario: Scenario, env: Environment) -> Iterator[Finding]:
    customer_tariffs = [t for t in env.tariffs if t.applied_to is AppliedTo.customer
                        and t.service is Service.messaging]
    if not customer_tariffs:
        yield _no_customer_tariff(env)
    messaging_products = [p for p in env.products if Service.messaging in p.included_services]
    senders = _sending_products(scenario, env)
    for product in env.products:
        if product.name not in senders:
            continue
        if product not in messaging_products:
            severity = NOTE if _has_working_product(env) else BREAKS
            yield _finding(env, 8, "product", f"product {product.name!r} does not include the "
                           "Messaging service", "tick Messaging in its Included Services tab",
                           severity)
            continue
        if Service.voice not in product.included_services:
            yield _finding(env, 8, "product", f"product {product.name!r} includes Messaging "
                           "but not Voice calls", "tick Voice calls too in its Included "
                           "Services tab", NOTE)
        yield from _usage_charge(env, product)
    yield from _destinations(scenario, env)


def _no_customer_tariff(env: Environment) -> Finding:
    """Step 6 undone: no tariff B, one made for another service, or one applied to
    vendors."""
    other = [t for t in env.tariffs if t.applied_to is AppliedTo.customer]
    if other:
        return _finding(env, 6, "usage_charge", f"customer tariff {other[0].name!r} is for "
                        f"{other[0].service.value}, not the Messaging Service",
                        f"create {other[0].name} with Service: Messaging Service")
    misapplied = [t.name for t in env.tariffs if t.applied_to is AppliedTo.vendor
                  and t.service is Service.messaging and t.name != _vendor_tariff_name(env)]
    problem = ("there is no customer Messaging tariff (tariff B)" if not misapplied else
               f"tariff {misapplied[0]!r} is applied to vendors, so no product can charge "
               "customers with it")
    return _finding(env, 6, "usage_charge", problem,
                    "Tariffs -> Add: Applied To Customer, Service Messaging")


def _vendor_tariff_name(env: Environment) -> str | None:
    return next((c.tariff for v in env.vendors for c in v.connections if c.tariff), None)


def _sending_products(scenario: Scenario, env: Environment) -> set[str]:
    accounts = env.accounts()
    senders = {accounts[m.sender][1].product for m in scenario.traffic.script
               if _home(scenario, m) is env and m.sender in accounts}
    return senders or {a.product for _, a in accounts.values()}


def _has_working_product(env: Environment) -> bool:
    """Some product includes Messaging and charges it with a customer Messaging tariff."""
    engine = BillingEngine(env)
    for product in env.products:
        tariff = engine.usage_tariff(product, "outgoing")
        if (Service.messaging in product.included_services and tariff is not None
                and tariff.applied_to is AppliedTo.customer
                and tariff.service is Service.messaging):
            return True
    return False


def _usage_charge(env: Environment, product) -> Iterator[Finding]:  # type: ignore[no-untyped-def]
    charges = [c for c in product.usage_charges if c.service is Service.messaging
               and c.direction == "outgoing"]
    fix = "Usage Charges -> Add: Messaging Service, node PortaSIP, tariff B"
    if not charges:
        yield _finding(env, 8, "usage_charge", f"product {product.name!r} has no Messaging "
                       "usage charge", fix)
        return
    on_node = [c for c in charges if c.node == "PortaSIP"]
    if not on_node:
        yield _finding(env, 8, "usage_charge", f"product {product.name!r} charges Messaging on "
                       f"node {charges[0].node}, not PortaSIP", "select the PortaSIP node")
        return
    tariff = env.tariff(on_node[0].tariff)
    if tariff is None or tariff.applied_to is not AppliedTo.customer or (
            tariff.service is not Service.messaging):
        right = [t.name for t in env.tariffs if t.applied_to is AppliedTo.customer
                 and t.service is Service.messaging]
        fix = f"select {right[0]!r} in the usage charge" if right else \
            "create tariff B with Service: Messaging Service (step 6), then select it here"
        yield _finding(env, 8, "usage_charge", f"product {product.name!r} uses tariff "
                       f"{on_node[0].tariff!r}, which is not a customer Messaging tariff", fix)


def _destinations(scenario: Scenario, env: Environment) -> Iterator[Finding]:
    engine = BillingEngine(env)
    policy = select_policy(env.service_policies, env.domain)
    seen: set[str] = set()
    for msg in scenario.traffic.script:
        if _home(scenario, msg) is not env or policy is None:
            continue
        number = recipient_number(msg.to.split("@")[0], policy.userpart_e164_translation,
                                  env.country)
        found = engine.accounts.get(msg.sender)
        if number is None or found is None or number in seen:
            continue
        seen.add(number)
        product = env.product(found[1].product)
        tariff = engine.usage_tariff(product, "outgoing") if product else None
        if tariff is None or tariff.name not in engine.tables:
            continue
        rating = engine.tables[tariff.name].rate(number, scenario.start)
        if rating is None or rating.forbidden:
            what = "no rate" if rating is None else f"a forbidden rate ({rating.rate_code})"
            yield _finding(env, 7, "customer_rate", f"tariff {tariff.name!r} has {what} for "
                           f"{number}", f"add a rate for its prefix or '|' to {tariff.name!r}")
        if number not in engine.accounts:
            yield _finding(env, None, "recipient", f"{number} is not an account of "
                           f"environment {env.name}", "message provisioned accounts only "
                           "(instant messages stay inside one virtual environment)", NOTE)


# -- timing ------------------------------------------------------------------------------

def _timing(scenario: Scenario) -> Iterator[Finding]:
    """Test messages sent before a step-1 or step-2 change had propagated."""
    from imsim.model.replay import timeline

    if not scenario.setup:
        return
    versions = timeline(scenario)
    for index, msg in enumerate(scenario.traffic.script):
        env = _home(scenario, msg)
        if env is None:
            continue
        live = [e for at, e in versions[env.name] if at <= msg.at][-1]
        final_policy = select_policy(env.service_policies, env.domain)
        if env.config_server.messaging_enabled and not live.config_server.messaging_enabled:
            yield _finding(env, 1, "messaging_enabled", f"test message {msg.id or index} at "
                           f"{msg.at:g} s was sent before enabling Messaging had propagated "
                           f"({scenario.propagation_delay:g} s)",
                           "wait several minutes after Check / Apply before testing")
        elif final_policy is not None and select_policy(live.service_policies,
                                                        env.domain) is None:
            yield _finding(env, 2, "service_policy", f"test message {msg.id or index} at "
                           f"{msg.at:g} s was sent before the service policy had propagated "
                           f"({scenario.propagation_delay:g} s)",
                           "wait several minutes after saving the policy before testing")


def explains(findings: list[Finding], env: str, check: str, step: int | None) -> bool:
    """True when a finding accounts for a message refused by ``check``."""
    return any(f.env == env and f.check == check and (step is None or f.step == step)
               for f in findings)

