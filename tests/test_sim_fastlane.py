"""The fast lane (`MessagePath.certain`): event 4 folded into event 3 when its outcome
is already certain. With churn, crashes, expiring bindings, conversations and
refusals, a run with the fast lane equals the run without it, frame for frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imsim.model import scenario
from imsim.sim import World

ROOT = Path(__file__).resolve().parent.parent
KEPT = "records: {messages: all, xdrs: true}"


def world(records: str, until: float = 1800.0) -> World:
    text = (ROOT / "scenarios" / "planning.yaml").read_text()
    assert KEPT in text
    return World(scenario.loads(text.replace(KEPT, records)), until=until)


def run(w: World) -> tuple[dict, dict[str, pd.DataFrame]]:
    result = w.run()
    summary = {k: v for k, v in result.summary.items() if k != "runtime_s"}
    return summary, {f: getattr(result, f) for f in ("messages", "presence", "sip",
                                                     "utilization")}


BUSY = """
name: busy softphones
start: 2026-01-05T17:00:00+00:00
environments:
  - name: main
    domain: sip.example.com
    config_server: {service_types: [voice, messaging]}
    service_policies: [{name: policy A, recipient_domain_pattern: "%"}]
    tariffs:
      - {name: tariff A, applied_to: vendor, rates: [{rate_codes: ["|"], price: 0}]}
      - {name: tariff B, applied_to: customer, rates: [{rate_codes: ["|"], price: 0.01}]}
    vendors:
      - name: internal
        connections: [{internal: SIP_UA, tariff: tariff A, service_policy: policy A}]
    products:
      - {name: Softphone, included_services: [voice, messaging],
         usage_charges: [{tariff: tariff B}]}
    customers:
      - name: Retail
        generate: {count: 200, first_id: "15550000000", product: Softphone,
                   balance: 0.20, buddies_per_account: 3}
traffic:
  poisson: {rate_per_hour: 3600}
  churn:
    online: {dist: exponential, mean: 2s}
    offline: {dist: exponential, mean: 1s}
    crash_probability: 0.3
sim:
  until: 60
  registration: {expires: 3s, spread: 1}
  records: {messages: failed, xdrs: false}
"""


def test_the_fast_lane_changes_nothing_but_the_number_of_events() -> None:
    """Planning-like traffic: churn, crashes, conversations, refusals."""
    records = "records: {messages: failed, xdrs: false}"
    fast, slow = world(records), world(records)
    assert fast.path.certain
    slow.path.certain = False
    compare(fast, slow)


def test_recipients_leaving_while_billing_answers_take_the_slow_lane() -> None:
    """Sessions of 2 s, bindings of 3 s, balances running out: recipients often go
    offline or lose their binding while billing's answer is on its way (``Site.stays``
    keeps those messages off the fast lane), and refusals for balance depend on when
    holds are released."""
    fast, slow = World(scenario.loads(BUSY)), World(scenario.loads(BUSY))
    slow.path.certain = False
    summary = compare(fast, slow)
    checks = {o["check"] for o in summary["outcomes"]}
    assert {"registration", "timeout", "balance", "delivered"} <= checks, checks


def compare(fast: World, slow: World) -> dict:
    (fast_summary, fast_frames), (slow_summary, slow_frames) = run(fast), run(slow)
    assert 0 < fast.path.early <= fast_summary["messages"]["delivered"]
    assert slow.path.early == 0
    assert fast_summary == slow_summary
    for name, frame in fast_frames.items():
        pd.testing.assert_frame_equal(frame, slow_frames[name], obj=name)
    return fast_summary


def test_no_fast_lane_when_rows_are_kept_or_softphones_fail() -> None:
    assert not world("records: {messages: all, xdrs: false}").path.certain
    assert not world("records: {messages: failed, xdrs: true}").path.certain
    text = (ROOT / "scenarios" / "planning.yaml").read_text().replace(
        KEPT, "records: {messages: failed, xdrs: false}\n  user_agent: {failure_probability: 0.1}")
    assert not World(scenario.loads(text)).path.certain
