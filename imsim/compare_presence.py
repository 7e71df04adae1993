"""Presence, model against lab: what each watcher was told about each presentity.

    table = compare_presence.compare(model.presence, lab_records, scenario)
    summary(table)   # {"pairs": 4, "matched": 4, "mismatched": 0}

Model: the NOTIFY rows of the run's presence frame (status ``open`` / ``closed``). Lab:
the pjsua2 watchers' ``presence`` records (`lab.clients.Watched`: ``online`` /
``offline``, one record per change) up to the clients' last ``done``, before their
end-of-run shutdown. Per environment, watcher and presentity both sides become the
states in the order told, repeats collapsed, and compared: whether the watcher is
told anything at all (a refused SUBSCRIBE: nothing), which states, in which order, so
also how many changes.

Deliberately not compared (lab/CONTRACT.md, "Presence"): the number of NOTIFYs
(pjsua2 reports changes of state, not NOTIFYs; a refresh NOTIFY carries no change),
their times, and a leading ``closed`` right before ``open``: when watcher and
presentity come online together, whether the first NOTIFY precedes the presentity's
PUBLISH is a race on both sides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from imsim.model.scenario import Scenario

STATES = {"online": "open", "offline": "closed", "open": "open", "closed": "closed"}
Key = tuple[str, str, str]
"""(environment, watcher, presentity)."""


def told(pairs: Iterable[tuple[Key, str]]) -> dict[Key, tuple[str, ...]]:
    """The states told per pair, in order: repeats collapsed, a leading racy 'closed'
    (right before 'open') dropped."""
    found: dict[Key, list[str]] = {}
    for key, status in pairs:
        states = found.setdefault(key, [])
        if status in STATES and (not states or states[-1] != STATES[status]):
            states.append(STATES[status])
    return {key: tuple(states[1:] if states[:2] == ["closed", "open"] else states)
            for key, states in found.items()}


def model_told(presence: pd.DataFrame) -> dict[Key, tuple[str, ...]]:
    notify = presence[presence["event"] == "NOTIFY"].sort_values("time", kind="stable")
    return told(((str(r.env), str(r.watcher), str(r.presentity)), str(r.status))
                for r in notify.itertuples(index=False))


def lab_told(records: Iterable[Mapping[str, Any]], scenario: Scenario
             ) -> dict[Key, tuple[str, ...]]:
    rows = list(records)
    envs = {env.domain.lower(): env.name for env in scenario.environments}
    done = [r["wall"] for r in rows if r.get("kind") == "run" and r.get("event") == "done"]
    cutoff = max(done) if done else float("inf")
    seen = sorted((r for r in rows if r.get("kind") == "presence" and r["wall"] <= cutoff),
                  key=lambda r: r["wall"])
    return told(((envs.get(str(r["domain"]).lower(), ""), str(r["watcher"]),
                  str(r["buddy"])), str(r["status"])) for r in seen)


def compare(model_presence: pd.DataFrame, records: Iterable[Mapping[str, Any]],
            scenario: Scenario) -> pd.DataFrame:
    """One row per (env, watcher, presentity) either side knows: both sides' states."""
    model, lab = model_told(model_presence), lab_told(records, scenario)
    keys = sorted(set(model) | set(lab))
    rows = [(*key, " > ".join(model.get(key, ())) or "-", " > ".join(lab.get(key, ())) or "-",
             model.get(key, ()) == lab.get(key, ())) for key in keys]
    return pd.DataFrame(rows, columns=["env", "watcher", "presentity", "model", "lab",
                                       "match"]).astype({"match": bool})


def summary(table: pd.DataFrame) -> dict[str, int]:
    matched = int(table["match"].sum()) if len(table) else 0
    return {"pairs": len(table), "matched": matched, "mismatched": len(table) - matched}
