"""Virtual environments: nothing is delivered or billed across them."""

from __future__ import annotations

import copy

from imsim import sim
from tests.helpers import handbook_document, load_document


def two_environments() -> sim.Scenario:
    document = handbook_document()
    other = copy.deepcopy(document["environments"][0])
    other["name"], other["domain"] = "second", "sip.second.example"
    customer = other["customers"][0]
    customer["accounts"] = [
        {"id": "15557770001", "password": "x", "product": "Softphone", "balance": 5},
        {"id": "15551230001", "password": "y", "product": "Softphone", "balance": 5}]
    document["environments"].append(other)
    document["traffic"]["script"] = [
        {"id": "to-other-number", "at": 1, "from": "15551230001", "to": "15557770001"},
        {"id": "to-other-domain", "at": 2, "from": "15551230001",
         "to": "15557770001@sip.second.example"},
        {"id": "inside-second", "at": 3, "from": "15557770001@sip.second.example",
         "to": "15551230001"},
        {"id": "inside-main", "at": 4, "from": "15551230002", "to": "15551230001"},
    ]
    return load_document(document)


def test_nothing_crosses_environments() -> None:
    result = sim.run(two_environments())
    outcome = result.messages.set_index("msg_id")
    assert outcome.loc["to-other-number", "code"] == 404
    assert outcome.loc["to-other-domain", "code"] == 404
    assert outcome.loc["inside-second", ["env", "code"]].tolist() == ["second", 200]
    assert outcome.loc["inside-main", ["env", "code"]].tolist() == ["main", 200]
    xdrs = result.xdrs.set_index("msg_id")
    assert set(xdrs.index) == {"inside-second", "inside-main"}
    assert set(xdrs.loc["inside-second", "env"]) == {"second"}
    assert set(xdrs.loc["inside-main", "env"]) == {"main"}


def test_same_number_in_two_environments_is_two_accounts() -> None:
    result = sim.run(two_environments())
    second = result.xdrs[(result.xdrs["env"] == "second")
                         & (result.xdrs["direction"] == "outgoing")]
    assert second["CLD"].tolist() == ["15551230001"]
    registered = result.sip[result.sip["method"] == "REGISTER"].set_index("env")["count"]
    assert registered.to_dict() == {"main": 3, "second": 2}
