"""A message to a buddy finds its plan by the (sender, buddy) pair (`Site.routes`), not
by hashing its memo key: the same answers as without, through configuration changes
(each version has its own plans) and balances running out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from ruamel.yaml import YAML

from imsim.results import RunResult
from imsim.sim import World
from tests.helpers import ROOT, load_document

TRAINING = ROOT / "scenarios" / "training" / "24_messaging_enabled_last.yaml"


def document(path: Path = TRAINING) -> dict:
    found = YAML(typ="safe").load(path.read_text())
    found["traffic"] = {"poisson": {"rate_per_hour": 400}}   # before, during, after setup
    found.pop("expected", None)
    for account in found["environments"][0]["customers"][0]["accounts"]:
        account["balance"] = 1   # fifty messages at 0.02: they run out
    found["sim"] = {"until": 1500, "seed": 7, "records": {"messages": "all"}}
    return found


def run(routes: bool) -> tuple[World, RunResult]:
    world = World(load_document(document()))
    if not routes:
        for site in world.sites.values():
            site.route_width, site.routes = 0, []
    return world, world.run()


def test_buddy_routes_give_the_answers_of_the_memo() -> None:
    routed, with_routes = run(routes=True)
    _, without = run(routes=False)
    pd.testing.assert_frame_equal(with_routes.messages, without.messages)
    pd.testing.assert_frame_equal(with_routes.xdrs, without.xdrs)
    codes = set(with_routes.messages["code"])
    assert 200 in codes and codes - {200}                     # refused, then delivered
    assert with_routes.messages["reason"].str.contains("insufficient balance").any()
    site = routed.sites["main"]
    assert len(site.versions) > 1 and site.route_width == 1
    kept = [plan for plan in site.routes if plan is not None]
    assert kept and all(plan.owner is not None and plan in plan.owner.memo.values()
                        for plan in kept)
    assert {plan.owner for plan in kept} == {site.versions[-1]}   # the last one in effect
