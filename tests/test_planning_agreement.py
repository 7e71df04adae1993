"""Planning bills as the billing engine does.

`planning.rate_messages` asks the engine once per kind of message, rates the money with
`rate_many` and settles whole frames at once where no payer can run short. Here it is
held to the plain path, message by message in time order: the configuration in effect
(`imsim.model.replay.timeline`), `BillingEngine.decide`, `settle` and, for an authorized
message, `account` of a delivery (200), as the lab billing service settles one; the
expected values are those xDRs. Every scenario the project ships, and generated ones
(``IMSIM_AGREEMENT_EXAMPLES=1000`` for a longer search by hand).
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsim import planning
from imsim.model import scenario
from imsim.model.config import BalanceModel, ConfigServer, OffPeakPeriod, UsageCharge
from imsim.model.replay import timeline
from imsim.model.scenario import Scenario
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Message
from tests.helpers import HANDBOOK, ROOT
from tests.test_properties import MODERATE

SHIPPED = sorted(p for p in (ROOT / "scenarios").rglob("*.yaml"))
FIELDS = ("code", "check", "step", "billed", "units", "rate_code", "charged_amount_micro",
          "cost_micro", "incoming_micro")
EXAMPLES = int(os.environ.get("IMSIM_AGREEMENT_EXAMPLES", "40"))   # more by hand
LATER = (0, 45, 290, 310, 600, 3_600, 9 * 3_600, 86_400 + 1, 15 * 86_400, 27 * 86_400)


def expected(loaded: Scenario, frame: pd.DataFrame) -> pd.DataFrame:
    """The plain path's answer for each message of ``frame``, in time order."""
    engines = {name: ([at for at, _ in versions], [BillingEngine(env) for _, env in versions])
               for name, versions in timeline(loaded).items()}
    ledgers = {env.name: Ledger.of(env) for env in loaded.environments}
    rows: dict[int, dict[str, object]] = {}
    for pos in np.argsort(pd.DatetimeIndex(frame["connect_time"]).asi8, kind="stable"):
        row = frame.iloc[pos]
        name = str(row["env"])
        since, versions = engines[name]
        at = row["connect_time"].to_pydatetime()
        engine = versions[bisect.bisect_right(since, (at - loaded.start).total_seconds()) - 1]
        domain = row["domain"] if "domain" in frame else loaded.environment(name).domain
        msg = Message(f"m{pos}", str(row["CLI"]), str(row["CLD"]), domain, at,
                      int(row["length"]))
        answer = engine.settle(msg, engine.decide(msg), ledgers[name])
        xdrs = engine.account(msg, answer, 200, "OK", ledgers[name]) if answer.ok else []
        rows[int(pos)] = _fields(answer.code, answer.check, answer.step, answer.ok, xdrs)
    return pd.DataFrame([rows[k] for k in range(len(frame))])


def _fields(code, check, step, ok, xdrs) -> dict[str, object]:
    by = {x.direction: x for x in xdrs}
    out = by.get("outgoing")

    def micro(direction: str) -> int:
        found = by.get(direction)
        return int(found.charged_amount * 1_000_000) if found is not None else 0
    return {"code": code, "check": "delivered" if ok else check, "step": step,
            "billed": out is not None, "units": out.charged_quantity if out else 0,
            "rate_code": out.rate_code if out else None,
            "charged_amount_micro": micro("outgoing"), "cost_micro": micro("vendor"),
            "incoming_micro": micro("incoming")}


def planned(loaded: Scenario, frame: pd.DataFrame) -> pd.DataFrame:
    rated = planning.rate_messages(loaded, frame)
    assert rated.index.equals(frame.index)
    out = rated.assign(step=rated["step"].astype(object).where(rated["step"].notna(), None),
                       check=rated["check"].astype(str),
                       rate_code=rated["rate_code"].astype(object).where(rated["billed"], None),
                       units=np.where(rated["billed"], rated["units"], 0))
    return out[list(FIELDS)].reset_index(drop=True).astype(object)


def assert_agree(loaded: Scenario, frame: pd.DataFrame) -> pd.DataFrame:
    want = expected(loaded, frame)[list(FIELDS)].astype(object)
    got = planned(loaded, frame)
    differ = (want != got) & ~(want.isna() & got.isna())
    bad = differ.any(axis=1)
    assert not bad.any(), (f"{int(bad.sum())} of {len(frame)} messages differ:\n"
                           f"{frame[bad.to_numpy()].head()}\nwant\n{want[bad].head()}\n"
                           f"got\n{got[bad].head()}")
    return got


def pairs(loaded: Scenario, limit: int = 12) -> pd.DataFrame:
    """Messages between the first accounts of each environment (and to a stranger and
    to numbers dialled in other forms), at times across the journal and the month."""
    rows = []
    for env in loaded.environments:
        ids = [a.id for c in env.customers for a in c.accounts][:limit]
        dialled = [f"+{i[:1]} {i[1:4]} {i[4:]}" for i in ids[:2]] + ["15559990000", "alice"]
        for k, (sender, to) in enumerate((s, t) for s in ids for t in ids + dialled if s != t):
            offset = LATER[k % len(LATER)] + k
            rows.append((env.name, int(sender), to, offset, (0, 1, 160, 161, 700)[k % 5]))
    frame = pd.DataFrame(rows, columns=["env", "CLI", "CLD", "offset", "length"])
    start = pd.Timestamp(loaded.start).tz_convert("UTC")
    return frame.assign(connect_time=start + pd.to_timedelta(frame.pop("offset"), unit="s"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_every_shipped_scenario_plans_what_the_engine_bills(path: Path) -> None:
    loaded = scenario.load(path)
    assert_agree(loaded, pairs(loaded))


def test_planning_refuses_what_the_engine_refuses() -> None:
    """The scenarios that do not work plan no revenue, with the engine's refusals."""
    for name, check, step in [("01_messaging_not_enabled", "messaging_enabled", 1),
                              ("05_local_lookup_off", "local_lookup", 2),
                              ("06_vendor_tariff_routing_on", "vendor_tariff", 3),
                              ("07_vendor_tariff_not_messaging", "vendor_tariff", 3)]:
        summary = planning.month(scenario.load(ROOT / "scenarios" / "training" / f"{name}.yaml"),
                                 messages=2000).summary
        assert summary["billed"] == 0 and summary["revenue"] == 0, name
        assert summary["outcomes"] == {check: summary["messages"]}, name
        assert [(r["check"], r["step"]) for r in summary["refusals"]] == [(check, step)], name


def test_a_payer_that_runs_short_is_refused_as_the_ledger_refuses() -> None:
    loaded = scenario.load(ROOT / "scenarios" / "training" / "00_correct_order.yaml")
    frame = pairs(loaded)
    frame = pd.concat([frame] * 200, ignore_index=True)   # ten dollars run out
    got = assert_agree(loaded, frame)
    assert (got["check"] == "balance").any() and (got["check"] == "delivered").any()


# -- generated scenarios ------------------------------------------------------------------

HANDBOOK_SCENARIO = scenario.load(HANDBOOK)
money = st.decimals("0", "0.05", places=3)


@st.composite
def variants(draw) -> Scenario:
    """The handbook with random prices, rates in the future, off-peak windows, bundles,
    balances, limits, blocked accounts, incoming charges and switches turned off."""
    env = HANDBOOK_SCENARIO.environments[0]
    start = HANDBOOK_SCENARIO.start
    tariff = env.tariff("tariff B")
    rates = tuple(r.model_copy(update={
        "price": draw(money), "off_peak_price": draw(st.none() | money),
        "effective_from": draw(st.none() | st.sampled_from(
            [start - dt.timedelta(days=1), start + dt.timedelta(hours=2),
             start + dt.timedelta(days=10)])),
        "status": draw(st.sampled_from(["normal", "normal", "forbidden"]))})
        for r in tariff.rates)
    off_peak = tuple(draw(st.lists(st.builds(
        OffPeakPeriod, start=st.sampled_from([dt.time(19), dt.time(0), dt.time(9, 30)]),
        end=st.sampled_from([dt.time(7), dt.time(0), dt.time(12)])), max_size=2)))
    model = draw(st.sampled_from(BalanceModel))
    customers = tuple(c.model_copy(update={
        "balance_model": model, "credit_limit": draw(st.none() | st.decimals("0", "0.2", places=2)),
        "time_zone": draw(st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"])),
        "accounts": tuple(a.model_copy(update={
            "balance": draw(st.decimals("0", "0.3", places=2)) if model is BalanceModel.debit
            else Decimal(0), "blocked": draw(st.integers(0, 9)) == 0}) for a in c.accounts)})
        for c in env.customers)
    products = tuple(p.model_copy(update={
        "included_messages": draw(st.sampled_from([0, 0, 1, 3])),
        "usage_charges": p.usage_charges + ((UsageCharge(tariff="tariff B",
                                                         direction="incoming"),)
                                            if draw(st.integers(0, 4)) == 0 else ())})
        for p in env.products)
    policy = env.service_policies[0].model_copy(update={
        "billing_unit_size": draw(st.none() | st.integers(1, 200)),
        "outgoing_aaa": draw(st.integers(0, 5)) > 0, "local_lookup": draw(st.integers(0, 9)) > 0,
        "userpart_e164_translation": draw(st.integers(0, 4)) > 0,
        "recipient_domain_pattern": draw(st.sampled_from(["%", "%", "sip.%", "other.net"]))})
    config = ConfigServer(service_types=("voice", "messaging") if draw(st.integers(0, 9)) > 0
                          else ("voice",))   # messaging_enabled is a property, not a field
    varied = env.model_copy(update={
        "tariffs": tuple(t if t.name != "tariff B" else t.model_copy(update={
            "rates": rates, "off_peak": off_peak}) for t in env.tariffs),
        "customers": customers, "products": products, "service_policies": (policy,),
        "config_server": config})
    return HANDBOOK_SCENARIO.model_copy(update={"environments": (varied,)})


@settings(MODERATE, max_examples=EXAMPLES)
@given(variants(), st.integers(1, 4))
def test_generated_scenarios_plan_what_the_engine_bills(loaded: Scenario, repeat: int) -> None:
    frame = pd.concat([pairs(loaded)] * repeat, ignore_index=True)
    assert_agree(loaded, frame)


def test_a_purse_past_its_money_still_pays_for_what_fits() -> None:
    """Once a $5 purse cannot pay a 0.04 message, its 0.02 and 0.03 ones may still
    fit: each is refused or delivered as the ledger decides, one by one."""
    loaded = scenario.load(ROOT / "scenarios" / "planning" / "per_message.yaml")
    uk, us, br = "447700000001", "15550000001", "5511900000001"
    to = [br, uk, us] * 60  # 0.03, 0.04, 0.02 at peak: 4.95 paid, then br leaves 0.02
    start = pd.Timestamp("2026-01-07T15:00:00Z")
    frame = pd.DataFrame({"env": "operator", "CLI": int("447700000002"), "CLD": to,
                          "connect_time": start + pd.to_timedelta(range(len(to)), unit="s"),
                          "length": 20})
    got = assert_agree(loaded, frame)
    check = got["check"].tolist()
    first_refused = check.index("balance")
    assert "delivered" in check[first_refused:], "no message fitted after a refusal"
