"""The simulator against the plain decision, on generated scenarios (issue 15, item 6).

For every generated scenario (`imsim.model.generate`) the simulator's per-message outcome
(final code, delivered or not) and its xDRs (who, direction, tariff, rate code, units,
unit price, amount, currency) equal a plain sequential replay of the script through
`BillingEngine.authenticate`, `authorize` and `account` with one `Ledger` per
environment, message after message.

Why the replay is well defined for these scenarios (the generator's timing):
- messages are sent `SPACING` s apart, and each one's whole path (two proxy
  transactions, AAA, delivery, accounting) takes a few tens of ms in the model, so
  every message is accounted before the next is authorized;
- no stochastic traffic, churn, setup journal or softphone failure: every account of
  ``traffic.offline`` never registers (480), every other one is online throughout;
- every calendar boundary (effective date, off-peak start or end, month end in a
  customer's zone) is a whole minute and messages are sent `EDGE` s or more away from
  one, so the moment billing decides in the model (the send time plus its delays)
  and the send time the replay uses fall on the same side of every boundary.

`make test` runs 50 examples; IMSIM_FUZZ_EXAMPLES=1000 runs the issue's thousand.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imsim import compare, sim
from imsim.model import generate
from imsim.model.scenario import Scenario
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Message

EXAMPLES = int(os.environ.get("IMSIM_FUZZ_EXAMPLES", "50"))
XDR_FIELDS = ("msg_id", "env", "account_id", "CLI", "CLD", "direction", "tariff", "rate_code",
              "charged_quantity", "unit_price", "charged_amount", "currency", "sip_code")
Outcomes = dict[str, tuple[int, bool]]
Rows = list[tuple[Any, ...]]


def replay(scenario: Scenario) -> tuple[Outcomes, Rows]:
    """The script, message after message, through the plain engine and ledgers."""
    engines = {env.name: BillingEngine(env) for env in scenario.environments}
    ledgers = {env.name: Ledger.of(env) for env in scenario.environments}
    outcomes: Outcomes = {}
    rows: Rows = []
    for line in sorted(scenario.traffic.script, key=lambda m: m.at):
        env = scenario.home_of(line.sender, line.sender_domain)
        assert env is not None and line.id is not None
        engine, ledger = engines[env.name], ledgers[env.name]
        user, _, domain = line.to.partition("@")
        msg = Message(line.id, line.sender, user, domain or env.domain,
                      scenario.start + dt.timedelta(seconds=line.at), line.size, line.id)
        password = line.password or engine.accounts[line.sender][1].password
        decision = engine.authenticate(line.sender, password) or engine.authorize(msg, ledger)
        if not decision.ok:
            outcomes[line.id] = (decision.code, False)
            continue
        code = 480 if decision.recipient in scenario.traffic.offline else 200
        rows += [_xdr(x) for x in engine.account(msg, decision, code, "", ledger)]
        outcomes[line.id] = (code, code == 200)
    return outcomes, sorted(rows)


def simulated(scenario: Scenario) -> tuple[Outcomes, Rows]:
    """The same script through the simulator (`imsim.sim.run`)."""
    result = sim.run(scenario, seed=1)
    outcomes = {str(m.msg_id): (int(m.code), m.delivered_at == m.delivered_at)
                for m in result.messages.itertuples(index=False)}
    rows = [_xdr(x) for x in result.xdrs.itertuples(index=False)]
    return outcomes, sorted(rows)


def _xdr(row: Any) -> tuple[Any, ...]:
    values = []
    for name in XDR_FIELDS:
        value = getattr(row, name)
        if name in ("unit_price", "charged_amount"):
            value = compare.money(value)
        elif name in ("charged_quantity", "sip_code"):
            value = int(value)
        else:
            value = str(value)
        values.append(value)
    return tuple(values)


@st.composite
def with_offline(draw: Any) -> Scenario:
    """A generated scenario, sometimes with accounts whose softphone never starts."""
    document = draw(generate.documents())
    numbers = sorted({a["id"] for env in document["environments"]
                      for c in env["customers"] for a in c["accounts"]})
    offline = draw(st.lists(st.sampled_from(numbers), max_size=2, unique=True))
    if offline:
        document["traffic"]["offline"] = offline
    return generate.load(document)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(with_offline())
def test_simulator_agrees_with_a_sequential_replay(scenario):
    model_outcomes, model_rows = simulated(scenario)
    plain_outcomes, plain_rows = replay(scenario)
    assert model_outcomes == plain_outcomes
    assert model_rows == plain_rows


def test_the_replay_bills_a_known_case():
    """The replay itself, on a case worked out by hand from the handbook's rules: 11
    bytes to an alias domain billed by 5-byte units at 0.02 -> 3 units, 0.06."""
    document = _one_alias_domain()
    outcomes, rows = replay(generate.load(document))
    assert outcomes == {"m1": (200, True), "m2": (403, False)}
    customer = [r for r in rows if r[5] == "outgoing"]
    assert [(r[0], r[7], r[8], r[10]) for r in customer] == \
        [("m1", "1555", 3, Decimal("0.060000"))]


def _one_alias_domain() -> dict[str, Any]:
    charge = {"service": "messaging", "node": "PortaSIP", "tariff": "tariff B"}
    return {
        "name": "alias", "start": "2026-01-05T09:00:00+00:00", "propagation_delay": 0,
        "environments": [{
            "name": "env0", "domain": "env0.imsim.test",
            "config_server": {"service_types": ["voice", "messaging"]},
            "service_policies": [
                {"name": "policy A", "recipient_domain_pattern": "%"},
                {"name": "alias", "recipient_domain_pattern": "units.alias.test",
                 "match_priority": 2, "billing_unit_size": 5}],
            "tariffs": [
                {"name": "tariff A", "applied_to": "vendor",
                 "rates": [{"rate_codes": ["|"], "price": "0"}]},
                {"name": "tariff B", "applied_to": "customer",
                 "rates": [{"rate_codes": ["1555"], "price": "0.02"}]}],
            "vendors": [{"name": "internal", "connections": [
                {"tariff": "tariff A", "service_policy": "policy A"},
                {"tariff": "tariff A", "service_policy": "alias"}]}],
            "products": [{"name": "Softphone", "included_services": ["voice", "messaging"],
                          "usage_charges": [charge]}],
            "customers": [{"name": "c", "accounts": [
                {"id": "15551230001", "password": "a", "product": "Softphone",
                 "balance": "0.07"},
                {"id": "15551230002", "password": "b", "product": "Softphone"}]}]}],
        "traffic": {"script": [
            {"id": "m1", "at": 10, "from": "15551230001", "length": 11,
             "to": "+1 555 123 0002@units.alias.test"},
            {"id": "m2", "at": 20, "from": "15551230001", "length": 11,
             "to": "15551230002@units.alias.test"}]},
    }
