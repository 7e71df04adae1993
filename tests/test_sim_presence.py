"""Presence: every status change NOTIFYs the active watchers; every SUBSCRIBE gets one
initial NOTIFY. Replayed from the presence frame of a run with churn and crashes."""

from __future__ import annotations

from collections import Counter

import pytest
from ruamel.yaml import YAML

from imsim import sim
from imsim.results import RunResult
from tests.helpers import ROOT, load_document


@pytest.fixture(scope="module")
def churned() -> RunResult:
    """The planning scenario with short bindings and many crashes, for four minutes."""
    document = YAML(typ="safe").load((ROOT / "scenarios" / "planning.yaml").read_text())
    document["sim"]["registration"]["expires"] = 60
    document["traffic"]["churn"]["crash_probability"] = 0.3
    document["traffic"]["churn"]["online"]["mean"] = 90
    return sim.run(load_document(document), until=240.0)


def expected_notifies(presence: list[tuple[str, str, str, str]]) -> Counter[str]:
    """Replay the presence events in the order the presence server handled them."""
    watchers: dict[str, set[str]] = {}
    status: dict[str, str] = {}
    out: Counter[str] = Counter()
    for event, presentity, watcher, new in presence:
        if event == "SUBSCRIBE":
            watchers.setdefault(presentity, set()).add(watcher)
            out["initial"] += 1
        elif event in ("UNSUBSCRIBE", "EXPIRE") and watcher:
            watchers.get(presentity, set()).discard(watcher)
        elif event in ("PUBLISH", "EXPIRE"):
            if status.get(presentity, "closed") != new:
                out["change"] += len(watchers.get(presentity, ()))
            status[presentity] = new
    return out


def test_notify_count_is_watchers_per_change_plus_one_per_subscription(
        churned: RunResult) -> None:
    frame = churned.presence
    handled = frame[frame["event"] != "NOTIFY"]
    expected = expected_notifies(list(zip(handled["event"], handled["presentity"],
                                          handled["watcher"], handled["status"], strict=True)))
    notify = frame[frame["event"] == "NOTIFY"]
    totals = churned.summary["presence"]
    assert totals["NOTIFY-initial"] == expected["initial"] == totals["SUBSCRIBE"]
    assert totals["NOTIFY"] == expected["change"]
    assert len(notify) == expected["initial"] + expected["change"]
    assert expected["change"] > 100 and totals.get("EXPIRE", 0) > 0


def test_sip_counts_match_presence_frame(churned: RunResult) -> None:
    sip = churned.sip.set_index(["method", "code"])["count"]
    assert sip[("NOTIFY", 200)] == (churned.presence["event"] == "NOTIFY").sum()


def test_conversations_start_on_buddy_coming_online(churned: RunResult) -> None:
    ids = churned.messages["msg_id"]
    assert churned.summary["conversations"] > 0
    assert ids.str.startswith("c").sum() > 0
