"""Two engines, one answer: the fast engine (`imsim.sim.messaging`, ...) and the SimPy
reference model (`imsim.sim.reference`) on every shipped scenario, on generated ones
and on a busy one (churn, crashes, conversations, failing softphones, random service
times): the same messages, xDRs and presence events for the same seed.

Tolerance: times are equal within 1e-9 s. Both engines compute each moment from the
same values, but not always with the same association of sums (the fast engine
schedules ``now + (finish + 2 x delay - now)``, simpy ``now + service`` then
``+ 2 x delay``), so a time may differ in its last bits (about 1e-15 s here).

What is compared is what is over by ``until``: the fast engine writes a message's
outcome down when it decides it (the answer's time is known then), the SimPy engine
when the answer reaches the sender, so a message answered after ``until`` is finished
in the first and in flight in the second (and a NOTIFY sent across ``until`` likewise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from imsim import sim
from imsim.model import generate, scenario
from imsim.model.scenario import Scenario
from imsim.results import RunResult
from tests.goldens import SCENARIOS, scenario_files

TOLERANCE = 1e-9
ALL = {"messages": "all", "xdrs": True, "presence": True}


def keep_all(loaded: Scenario) -> Scenario:
    """Every row kept (the fast engine's row-by-row path)."""
    records = loaded.sim.records.model_copy(update=ALL)
    return loaded.model_copy(update={"sim": loaded.sim.model_copy(update={"records": records})})


def over(result: RunResult, until: float) -> dict[str, pd.DataFrame]:
    """The run's messages answered, and presence events, before ``until``, sorted;
    its xDRs sorted."""
    messages = result.messages[result.messages["sent_at"] + result.messages["latency"] < until]
    presence = result.presence[result.presence["time"] < until]
    return {"messages": messages.sort_values("msg_id").reset_index(drop=True),
            "xdrs": result.xdrs.sort_values(["i_xdr"]).reset_index(drop=True),
            "presence": presence.sort_values(list(presence.columns)).reset_index(drop=True)}


def assert_agree(loaded: Scenario) -> tuple[RunResult, RunResult]:
    fast, reference = sim.run(loaded, engine="fast"), sim.run(loaded, engine="simpy")
    until = fast.summary["until"]
    a, b = over(fast, until), over(reference, until)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=False, rtol=0,
                                      atol=TOLERANCE, obj=name)
    assert len(b["messages"]) == reference.summary["messages"]["finished"]
    assert fast.summary["messages"]["sent"] == reference.summary["messages"]["sent"]
    for key in ("money", "totals", "conversations"):
        assert fast.summary[key] == reference.summary[key], key
    signalling = [row for row in fast.summary["sip"] if row["method"] != "MESSAGE"]
    assert signalling == [row for row in reference.summary["sip"]
                          if row["method"] != "MESSAGE"]
    return fast, reference


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: str(p.relative_to(SCENARIOS)))
def test_engines_agree_on_every_shipped_scenario(path: Path) -> None:
    fast, reference = assert_agree(keep_all(scenario.load(path)))
    assert len(fast.messages) > 0


@pytest.mark.parametrize("path", [SCENARIOS / "planning.yaml"], ids=["planning.yaml"])
def test_engines_agree_with_rows_not_kept(path: Path) -> None:
    # the fast engine's counted path (delivered messages folded into counts)
    fast, reference = sim.run(scenario.load(path), engine="fast"), \
        sim.run(scenario.load(path), engine="simpy")
    assert fast.summary["presence"] == reference.summary["presence"]
    assert fast.summary["money"] == reference.summary["money"]
    assert fast.summary["outcomes"] == reference.summary["outcomes"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=generate.documents())
def test_engines_agree_on_generated_scenarios(document: dict[str, Any]) -> None:
    assert_agree(keep_all(generate.load(document)))


BUSY = """
name: busy
start: 2026-03-28T23:40:00+00:00
environments:
  - name: main
    domain: sip.example.com
    config_server: {service_types: [voice, messaging]}
    service_policies: [{name: policy A, recipient_domain_pattern: "%"}]
    tariffs:
      - {name: tariff A, applied_to: vendor, rates: [{rate_codes: ["|"], price: 0.001}]}
      - name: tariff B
        applied_to: customer
        rates: [{rate_codes: ["1"], price: 0.02}, {rate_codes: ["|"], price: 0.10}]
    vendors:
      - name: internal
        connections: [{internal: SIP_UA, tariff: tariff A, service_policy: policy A}]
    products:
      - name: Softphone
        included_services: [voice, messaging]
        usage_charges: [{tariff: tariff B}]
    customers:
      - name: Retail
        generate: {count: 40, first_id: "15550000000", product: Softphone,
                   balance: 0.5, buddies_per_account: 3}
traffic:
  poisson: {rate_per_hour: 120}
  churn: {online: {dist: exponential, mean: 300}, offline: {dist: exponential, mean: 60},
          crash_probability: 0.3, initially_online: 0.7}
  conversations: {probability: 0.5, messages: {dist: uniform, low: 1, high: 6},
                  think_time: {dist: exponential, mean: 5}}
sim:
  until: 900
  seed: SEED
  proxy: {workers: 1, service: {MESSAGE: {dist: exponential, mean: 0.002},
                                REGISTER: {dist: exponential, mean: 0.002}}}
  billing: {workers: 1, service: {dist: exponential, mean: 0.003}}
  registration: {spread: 5, expires: 120}
  user_agent: {failure_probability: 0.1}
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engines_agree_on_a_busy_scenario(seed: int) -> None:
    fast, _ = assert_agree(scenario.loads(BUSY.replace("SEED", str(seed))))
    codes = set(fast.messages["code"])
    assert {200, 403, 408, 480, 486} <= codes or {200, 480, 486} <= codes
    assert fast.summary["conversations"] > 0


def test_different_seeds_give_different_runs() -> None:
    # the comparison can fail: two seeds of the same scenario differ
    one, two = (sim.run(scenario.loads(BUSY.replace("SEED", s)), engine="simpy")
                for s in ("1", "2"))
    assert not one.messages["msg_id"].equals(two.messages["msg_id"])


def test_the_engine_comes_from_the_scenario() -> None:
    loaded = scenario.loads(BUSY.replace("seed: SEED", "seed: 1\n  engine: simpy"))
    assert loaded.sim.engine == "simpy"
    assert sim.world(loaded).engine == "simpy"
    assert sim.world(loaded, engine="fast").engine == "fast"


def test_a_recipient_whose_first_register_is_queued_is_not_registered() -> None:
    # regression (found by this comparison under bench_sim's registration storm): the
    # fast engine bound a softphone when its first REGISTER reached the proxy, not when
    # the proxy had processed it. Here: 2 proxy workers, REGISTER takes 20 s. At 0.01
    # Alice's MESSAGE (scheduled first) is challenged at once, Alice's and Bob's
    # REGISTERs take the workers to 20.01 and 20.011, Carol's waits to 20.01 (processed
    # at 40.01). The resent MESSAGE (0.031) waits to 20.011, done 20.012; AAA there
    # and back, 20.017: the lookup finds Carol not registered, 480 to Alice at 20.027.
    from tests.helpers import handbook_document, load_document

    document = handbook_document()
    document["sim"] = {"proxy": {"workers": 2, "service": {"REGISTER": 20}}}
    document["traffic"]["script"] = [{"id": "m1", "at": 0, "from": "15551230001",
                                      "to": "15551230003", "body": "Carol?"}]
    fast, reference = assert_agree(load_document(document))
    for run in (fast, reference):
        [row] = run.messages.itertuples()
        assert (row.code, row.check) == (480, "registration")
        assert row.latency == pytest.approx(20.027, abs=TOLERANCE)
