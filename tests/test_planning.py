"""The vectorised planning path (`imsim.planning`) against the event model."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from imsim import planning, sim
from imsim.model import scenario
from imsim.model.scenario import Scenario
from tests.helpers import ROOT

PLANNING = ROOT / "scenarios" / "planning.yaml"
OPERATOR = ROOT / "scenarios" / "planning" / "per_message.yaml"
BUNDLE = ROOT / "scenarios" / "planning" / "bundle.yaml"


def with_records(loaded: Scenario, **changes: object) -> Scenario:
    records = loaded.sim.records.model_copy(update={"messages": "all", "xdrs": True})
    return loaded.model_copy(update={"sim": loaded.sim.model_copy(
        update={"records": records, **changes})})


def delivered_messages(xdrs: pd.DataFrame) -> pd.DataFrame:
    """The simulator's billed messages as the planning path's input frame."""
    out = xdrs[xdrs["direction"] == "outgoing"].sort_values("i_xdr")
    return pd.DataFrame({"env": out["env"].to_numpy(),
                         "CLI": out["CLI"].astype("int64").to_numpy(),
                         "CLD": out["CLD"].astype("int64").to_numpy(),
                         "connect_time": out["connect_time"].to_numpy(),
                         "length": 0}).assign(
        connect_time=lambda f: pd.to_datetime(f["connect_time"], utc=True))


def assert_same_bill(loaded: Scenario) -> pd.DataFrame:
    xdrs = sim.run(loaded).xdrs
    rated = planning.rate_messages(loaded, delivered_messages(xdrs))
    outgoing = xdrs[xdrs["direction"] == "outgoing"].sort_values("i_xdr")
    vendor = xdrs[xdrs["direction"] == "vendor"].sort_values("i_xdr")
    assert len(outgoing) > 100 and rated["billed"].all()
    assert rated["rate_code"].astype(str).tolist() == outgoing["rate_code"].tolist()
    micro = (outgoing["charged_amount"] * 1_000_000).round().astype("int64")
    assert rated["charged_amount_micro"].tolist() == micro.tolist()
    cost = (vendor["charged_amount"] * 1_000_000).round().astype("int64")
    assert rated["cost_micro"].tolist() == cost.tolist()
    return rated


def test_rate_many_bills_the_simulators_messages_as_its_xdrs() -> None:
    assert_same_bill(scenario.load(PLANNING))


def test_operator_with_four_countries_and_three_products() -> None:
    rated = assert_same_bill(with_records(scenario.load(OPERATOR)))
    assert set(rated["rate_code"].astype(str)) >= {"1", "44", "49", "55"}


def test_bundles_agree_with_the_billing_engine() -> None:
    loaded = scenario.load(BUNDLE)
    env = loaded.environments[0]
    small = tuple(p.model_copy(update={"included_messages": 1}) for p in env.products)
    loaded = loaded.model_copy(update={"environments": (env.model_copy(
        update={"products": small}),)})
    rated = assert_same_bill(with_records(loaded, until=60.0))
    assert 0 < rated["included"].sum() < len(rated)


def test_synthetic_month_is_seeded_and_follows_the_profile() -> None:
    loaded = scenario.load(OPERATOR)
    first = planning.synthetic_messages(loaded, 200_000, seed=3, days=7)
    assert first.equals(planning.synthetic_messages(loaded, 200_000, seed=3, days=7))
    assert abs(len(first) - 200_000) < 5
    us = first[first["CLI"].between(15550000000, 15559999999)]
    local = us["connect_time"].dt.tz_convert("America/New_York").dt.hour
    share = local.value_counts(normalize=True)
    profile = np.array(loaded.traffic.profile)
    assert share[20] == pytest.approx(profile[20] / profile.sum(), rel=0.1)
    assert share[3] < share[12] / 10


def test_month_summary_and_elasticity_direction() -> None:
    loaded = scenario.load(OPERATOR)
    base = planning.month(loaded, messages=300_000, days=30, keep=False).summary
    assert base["revenue"] > base["cost"] > 0
    assert base["outcomes"]["delivered"] == base["billed"]
    env = loaded.environments[0]
    dearer = tuple(t.model_copy(update={"rates": tuple(
        r.model_copy(update={"price": r.price * 2}) for r in t.rates)})
        if t.applied_to == "customer" else t for t in env.tariffs)
    higher = loaded.model_copy(update={"environments": (env.model_copy(
        update={"tariffs": dearer}),)})
    doubled = planning.month(higher, messages=300_000, days=30, keep=False).summary
    assert doubled["messages"] < base["messages"]   # coefficient -0.4: fewer messages
    assert doubled["revenue"] > base["revenue"]     # inelastic: revenue still rises


def test_a_vendor_paid_in_another_currency_is_never_added_to_revenue() -> None:
    """PortaBilling keeps each tariff's currency: revenue in the customers' USD and a
    vendor cost in EUR have no margin in one figure. Planning's totals per currency are
    the simulator's (its xDRs, summed by their own currency column)."""
    text = PLANNING.read_text().replace(
        'applied_to: vendor\n        rates: [{rate_codes: ["|"], price: 0}]',
        'applied_to: vendor\n        currency: EUR\n'
        '        rates: [{rate_codes: ["|"], price: 0.004}]')
    loaded = with_records(scenario.loads(text))
    xdrs = sim.run(loaded).xdrs
    summary = planning.summarize(planning.rate_messages(loaded, delivered_messages(xdrs)))
    by = xdrs.groupby(["direction", "currency"])["charged_amount"].sum().round(6)
    assert summary["totals"] == {"revenue": {"USD": str(Decimal(str(by["outgoing", "USD"])))},
                                 "cost": {"EUR": str(Decimal(str(by["vendor", "EUR"])))}}
    assert by["vendor", "EUR"] == pytest.approx(0.004 * len(xdrs[xdrs["direction"] == "vendor"]))
    assert summary["currency"] == "EUR+USD"
    assert np.isnan(summary["revenue"]) and np.isnan(summary["margin"])
    assert summary["margin_USD"] == by["outgoing", "USD"]
    assert summary["margin_EUR"] == -by["vendor", "EUR"]


def test_bundle_month_includes_messages_per_account() -> None:
    month = planning.month(scenario.load(BUNDLE), messages=200_000, days=30)
    rated = month.messages
    assert rated is not None
    per_account = rated[rated["included"]].groupby("CLI").size()
    assert per_account.max() <= 300 and month.summary["included"] == per_account.sum()


def test_one_billing_rates_frame_after_frame_from_the_starting_balances():
    """Re-rating bills a month part by part through one `Billing`: each frame starts
    from the scenario's balances. Three $5.00 debit accounts each send 200 messages
    to UK accounts at 0.04: 125 are billed (5.00 / 0.04) and 75 refused for balance,
    every time the frame is rated."""
    loaded = scenario.load(OPERATOR)
    senders = [15550000000, 15550000001, 15550000002]
    at = pd.Timestamp("2026-01-07 12:00", tz="UTC")
    frame = pd.DataFrame({
        "env": "operator", "CLI": np.repeat(senders, 200),
        "CLD": 447700000000 + np.arange(600),
        "connect_time": [at + pd.Timedelta(seconds=s) for s in range(600)],
        "length": 10})
    billing = planning.Billing(loaded)
    first, again = billing.rate(frame), billing.rate(frame)
    for rated in (first, again):
        billed = rated[rated["billed"]].groupby("CLI").size()
        assert billed.to_dict() == {cli: 125 for cli in senders}
        assert (rated.loc[~rated["billed"], "check"] == "balance").all()
        assert rated.loc[rated["billed"], "charged_amount_micro"].eq(40_000).all()
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, planning.rate_messages(loaded, frame))
