"""imsim.compare on frames (no live stack): the join, the diff, reconciliation, reports."""

from __future__ import annotations

import pandas as pd
import pytest

from imsim import compare, sim
from imsim.model import scenario
from imsim.training import lab_report
from tests.lab.billing_fixtures import HANDBOOK


@pytest.fixture(scope="module")
def model():
    return sim.run(scenario.load(HANDBOOK), seed=0)


def answered(xdrs: pd.DataFrame) -> list[dict[str, str]]:
    return [{"method": "MESSAGE", "sip_code": "200", "call_id": c, "msg_id": m}
            for c, m in xdrs[["call_id", "msg_id"]].drop_duplicates().values]


def test_identical_sides_agree_and_reconcile(model):
    result = compare.compare(model.messages, model.xdrs, model.messages, model.xdrs,
                             answered(model.xdrs))
    assert result.ok and result.summary["agreement"] == 100.0
    assert result.reconciliation == {"answered_2xx": 3, "customer_xdrs": 3, "lost": [],
                                     "unbilled": [], "duplicated": [], "orphans": [],
                                     "clean": True}
    assert list(result.table["model_units"]) == [1, 1, 1, None, None]


def test_each_differing_field_is_named(model):
    lab_messages, lab_xdrs = model.messages.copy(), model.xdrs.copy()
    lab_messages.loc[lab_messages["msg_id"] == "m5", "code"] = 480
    first = lab_xdrs.index[(lab_xdrs["msg_id"] == "m1") & (lab_xdrs["direction"] == "outgoing")]
    lab_xdrs.loc[first, ["charged_amount", "rate_code"]] = [0.010001, "1"]
    result = compare.compare(model.messages, model.xdrs, lab_messages, lab_xdrs)
    diffs = dict(result.table.loc[~result.table["match"], ["msg_id", "diff"]].values)
    assert diffs == {"m1": "amount 0.01 != 0.010001; rate_code 1555 != 1",
                     "m5": "code 404 != 480"}
    assert not result.ok and result.summary["fields"] == {"amount": 1, "rate_code": 1,
                                                          "code": 1}
    assert "m5: code 404 != 480" in compare.table(result)


def test_a_message_the_lab_never_played_is_a_mismatch(model):
    lab = model.messages[model.messages["msg_id"] != "m2"]
    result = compare.compare(model.messages, model.xdrs, lab, model.xdrs)
    assert result.table.set_index("msg_id").loc["m2", "diff"] == "not played in the lab"
    assert not result.ok


def test_reconciliation_counts_lost_duplicated_orphans_and_unbilled(model):
    xdrs = model.xdrs
    lines = answered(xdrs) + [{"method": "MESSAGE", "sip_code": "200", "call_id": "free",
                               "msg_id": "t1"},
                              {"method": "MESSAGE", "sip_code": "200", "call_id": "gone",
                               "msg_id": "m9"},
                              {"method": "MESSAGE", "sip_code": "407", "call_id": "x"}]
    lines = [line for line in lines if line.get("msg_id") != "m3"]
    doubled = pd.concat([xdrs, xdrs[xdrs["msg_id"] == "m1"].head(1)])
    found = compare.reconcile(doubled, lines, unbilled={"t1"})
    m1_call = xdrs.loc[xdrs["msg_id"] == "m1", "call_id"].iloc[0]
    m3_call = xdrs.loc[xdrs["msg_id"] == "m3", "call_id"].iloc[0]
    assert (found["lost"], found["unbilled"], found["duplicated"], found["orphans"]) == (
        ["m9"], ["t1"], [m1_call], [m3_call])
    assert not found["clean"]


def test_reports_are_written(model, tmp_path):
    result = compare.compare(model.messages, model.xdrs, model.messages, model.xdrs,
                             meta={"scenario": "handbook"})
    paths = lab_report.write_reports(result, tmp_path)
    assert [p.name for p in paths] == ["compare.csv", "report.md", "report.html"]
    markdown = paths[1].read_text()
    assert "5/5 messages agree (100.0 %)" in markdown and "- scenario: handbook" in markdown
    assert "| m1 | 200 / 200 | yes / yes | 1 / 1 | 0.01 / 0.01 |" in markdown
    assert "data:image/png;base64," in paths[2].read_text()
    assert len(pd.read_csv(paths[0])) == 5


def test_money_is_exact_to_six_places():
    assert compare.money(0.1 + 0.2) == compare.money("0.3") == compare.money(0.3)
    assert compare.money(float("nan")) is None


def test_what_the_source_does_not_hold_is_named_not_compared(model):
    """A deployment's account list: customer xDRs only, no tariff, no rate code."""
    lab = model.xdrs[model.xdrs["direction"] == "outgoing"].assign(tariff="", rate_code="")
    strict = compare.compare(model.messages, model.xdrs, model.messages, lab)
    assert strict.summary["fields"] == {"xdrs": 3, "tariff": 3, "rate_code": 3}
    result = compare.compare(model.messages, model.xdrs, model.messages, lab,
                             uncompared=["rate_code", "xdrs", "tariff"])
    assert result.ok and result.uncompared == ("xdrs", "tariff", "rate_code")
    assert "not compared (the xDR source does not hold them): xdrs, tariff, rate_code" \
        in compare.table(result)
    cheaper = lab.assign(charged_amount=lambda f: f["charged_amount"] / 2)
    assert not compare.compare(model.messages, model.xdrs, model.messages, cheaper,
                               uncompared=["xdrs", "tariff", "rate_code"]).ok


def test_an_orphan_fails_the_run_and_is_named(model):
    result = compare.compare(model.messages, model.xdrs, model.messages, model.xdrs,
                             orphans=["i_xdr 9 15551230001 -> 447700900123"])
    assert result.summary["mismatched"] == 0 and not result.ok
    assert "orphans: 1 xDRs bill no test message: i_xdr 9 15551230001 -> 447700900123" \
        in compare.markdown(result)
