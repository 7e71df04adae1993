"""The lab report page (`imsim.training.lab_report`): verdict first, differing messages next with
their fields named, the latency figure explained, a table that fits the page."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imsim import compare, sim
from imsim.model import scenario
from imsim.training.lab_report import differing_fields, html_report
from tests.helpers import HANDBOOK


@pytest.fixture(scope="module")
def model() -> sim.RunResult:
    return sim.run(scenario.load(HANDBOOK), seed=0)


def mismatching(model: sim.RunResult) -> compare.Comparison:
    """The lab as the model, but m2 charged 0.05 and m4 answered 480."""
    xdrs = model.xdrs.copy()
    charged = (xdrs["msg_id"] == "m2") & (xdrs["direction"] == "outgoing")
    assert charged.sum() == 1
    xdrs["charged_amount"] = xdrs["charged_amount"].astype(object)
    xdrs.loc[charged, "charged_amount"] = Decimal("0.05")
    messages = model.messages.copy()
    messages.loc[messages["msg_id"] == "m4", "code"] = 480
    # the lab answers 20 times sooner, as on loopback
    messages["delivered_at"] = messages["sent_at"] + (messages["delivered_at"]
                                                      - messages["sent_at"]) / 20
    return compare.compare(model.messages, model.xdrs, messages, xdrs,
                           meta={"scenario": "handbook"})


def test_differing_fields_are_named(model: sim.RunResult) -> None:
    result = mismatching(model)
    named = {row.msg_id: differing_fields(row) for row in result.table.itertuples(index=False)
             if not row.match}
    assert named == {"m2": ["amount"], "m4": ["code"]}


def test_verdict_then_differing_messages_then_the_table(model: sim.RunResult) -> None:
    page = html_report(mismatching(model))
    verdict = page.index("MISMATCH: 2 of 5 messages differ (amount, code).")
    differing = page.index("<h2 id='differing'>Messages that differ (2)</h2>")
    table = page.index("<h2>Every message</h2>")
    assert verdict < differing < table
    assert "<h3>m2: amount</h3>" in page and "<h3>m4: code</h3>" in page
    assert "<tr><td>amount</td><td>0.01</td><td>0.05</td></tr>" in page
    assert page.count("<tr class=bad>") == 2 and page.count("<td class=diff>") == 2


def test_an_agreeing_run_says_so_and_lists_no_differences(model: sim.RunResult) -> None:
    result = compare.compare(model.messages, model.xdrs, model.messages, model.xdrs)
    page = html_report(result)
    assert "Lab and model agree: 5 of 5 messages." in page
    assert "Messages that differ" not in page and "class=bad" not in page


def test_the_latency_figure_is_explained(model: sim.RunResult) -> None:
    page = html_report(mismatching(model))
    delivered = model.messages.dropna(subset=["delivered_at"])
    model_ms = 1000 * (delivered["delivered_at"] - delivered["sent_at"]).median()
    assert "the model's delivery times come from the scenario's timing settings" in page
    assert "measured on this machine's loopback (127.0.0.1)" in page
    assert f"the median is {round(model_ms, 3):g} ms in the model" in page
    assert "data:image/png;base64," in page


def test_the_table_is_made_to_fit(model: sim.RunResult) -> None:
    page = html_report(mismatching(model))
    assert "max-width:1160px" in page and "table-layout:fixed" in page
    header = page[page.index("<table class='cmp'>"):].split("</tr>")[0]
    assert header.count("<th>") == 9  # message, six fields, delivery, match
