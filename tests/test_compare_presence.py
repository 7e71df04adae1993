"""Presence, model against lab (`imsim.compare_presence`), on hand-made rows: the
states each watcher was told, in order, per environment, watcher and presentity."""

import pandas as pd

from imsim import compare_presence
from imsim.model import scenario
from tests.helpers import HANDBOOK

ALICE, BOB, CAROL = "15551230001", "15551230002", "15551230003"
DOMAIN = "sip.example.com"


def model(*rows: tuple[float, str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([(t, "main", event, presentity, watcher, status)
                         for t, event, presentity, watcher, status in rows],
                        columns=["time", "env", "event", "presentity", "watcher", "status"])


def seen(wall: float, watcher: str, buddy: str, status: str) -> dict:
    return {"kind": "presence", "wall": wall, "watcher": watcher, "domain": DOMAIN,
            "buddy": buddy, "status": status}


def test_same_states_in_the_same_order_agree_and_the_start_race_is_not_a_difference():
    frame = model((0.1, "NOTIFY", BOB, ALICE, "closed"), (0.2, "NOTIFY", BOB, ALICE, "open"),
                  (0.3, "PUBLISH", BOB, "", "open"), (5.0, "NOTIFY", BOB, ALICE, "closed"))
    records = [seen(1, ALICE, BOB, "unknown"), seen(2, ALICE, BOB, "online"),
               seen(3, ALICE, BOB, "online"), seen(9, ALICE, BOB, "offline"),
               {"kind": "run", "event": "done", "wall": 10}]
    table = compare_presence.compare(frame, records, scenario.load(HANDBOOK))
    assert table.to_dict("records") == [{"env": "main", "watcher": ALICE, "presentity": BOB,
                                         "model": "open > closed", "lab": "open > closed",
                                         "match": True}]


def test_a_refused_watcher_an_order_and_the_shutdown():
    frame = model((0.1, "NOTIFY", ALICE, BOB, "open"), (0.1, "NOTIFY", ALICE, CAROL, "open"),
                  (4.0, "NOTIFY", ALICE, CAROL, "closed"))
    records = [seen(1, CAROL, ALICE, "offline"), seen(2, CAROL, ALICE, "online"),
               seen(3, CAROL, ALICE, "offline"), {"kind": "run", "event": "done", "wall": 5},
               seen(6, BOB, ALICE, "online")]   # after the last done: the clients' shutdown
    table = compare_presence.compare(frame, records, scenario.load(HANDBOOK))
    rows = {(r["watcher"], r["presentity"]): (r["model"], r["lab"], r["match"])
            for r in table.to_dict("records")}
    assert rows == {(BOB, ALICE): ("open", "-", False),
                    (CAROL, ALICE): ("open > closed", "open > closed", True)}
    assert compare_presence.summary(table) == {"pairs": 2, "matched": 1, "mismatched": 1}
