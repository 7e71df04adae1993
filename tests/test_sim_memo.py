"""The simulator keeps each decision with what it needs again (`imsim.sim.site.Route`):
every message still passes every check, whatever came before it on the same plan."""

from __future__ import annotations

from imsim.sim import World
from tests.helpers import handbook_document, load_document

ALICE, BOB = "15551230001", "15551230002"


def codes(script: list[dict], records: str = "all") -> dict[str, int]:
    document = handbook_document()
    document["traffic"] = {"script": script}
    document.setdefault("sim", {})["records"] = {"messages": records}
    frame = World(load_document(document)).run().messages
    return dict(zip(frame["msg_id"], frame["code"], strict=True))


def test_a_wrong_password_is_refused_between_good_ones_on_the_same_plan() -> None:
    script = [{"id": "good1", "at": 10, "from": ALICE, "to": BOB, "body": "hi"},
              {"id": "bad", "at": 20, "from": ALICE, "to": BOB, "body": "hi",
               "password": "not-alice"},
              {"id": "good2", "at": 30, "from": ALICE, "to": BOB, "body": "hi"},
              {"id": "given", "at": 40, "from": ALICE, "to": BOB, "body": "hi",
               "password": "alice-secret"},
              {"id": "bad2", "at": 50, "from": ALICE, "to": BOB, "body": "hi",
               "password": "alice-secreT"}]
    found = codes(script)
    assert found == {"good1": 200, "bad": 403, "good2": 200, "given": 200, "bad2": 403}


def test_a_wrong_password_first_does_not_spoil_the_plan() -> None:
    script = [{"id": "bad", "at": 10, "from": ALICE, "to": BOB, "body": "hi",
               "password": "not-alice"},
              {"id": "good", "at": 20, "from": ALICE, "to": BOB, "body": "hi"}]
    assert codes(script) == {"bad": 403, "good": 200}
