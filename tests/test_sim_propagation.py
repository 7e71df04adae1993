"""Propagation: messaging enabled at 0 takes effect after propagation_delay."""

from __future__ import annotations

from imsim import sim
from imsim.model import scenario
from tests.helpers import handbook_document, load_document


def enabled_at_zero() -> scenario.Scenario:
    document = handbook_document()
    env = document["environments"][0]
    env["config_server"] = {"service_types": ["voice"]}
    document["setup"] = [{"at": 0, "action": "enable_messaging"}]
    document["propagation_delay"] = 300
    document["traffic"]["script"] = [
        {"id": "early", "at": 100, "from": "15551230001", "to": "15551230002"},
        {"id": "late", "at": 400, "from": "15551230001", "to": "15551230002"},
    ]
    return load_document(document)


def test_message_before_propagation_is_refused_with_step_1() -> None:
    result = sim.run(enabled_at_zero())
    early = result.messages.set_index("msg_id").loc["early"]
    assert early["code"] == 403 and early["step"] == 1
    assert "Messaging service not enabled" in early["reason"]


def test_message_after_propagation_is_billed() -> None:
    result = sim.run(enabled_at_zero())
    late = result.messages.set_index("msg_id").loc["late"]
    assert late["code"] == 200
    billed = result.xdrs[result.xdrs["direction"] == "outgoing"]
    assert billed["msg_id"].tolist() == ["late"]
    assert billed["charged_amount"].tolist() == [0.01]
