"""What a run keeps never changes what it computes: with xDRs and delivered messages
only counted (the large-run setting, `Recorder.counter` / `fold`), the summary and the
failed messages are those of a run that keeps every row; so are runs in chunks."""

from __future__ import annotations

from typing import Any

from pandas.testing import assert_frame_equal

from imsim import sim
from imsim.sim import World
from tests.helpers import ROOT, load_document

PLANNING = ROOT / "scenarios" / "planning.yaml"


def planning(records: dict[str, Any]) -> World:
    from ruamel.yaml import YAML

    document = YAML(typ="safe").load(PLANNING.read_text())
    document["sim"]["records"] = records
    document["sim"]["until"] = 300
    return World(load_document(document))


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in summary.items() if k not in ("runtime_s", "config")}
    assert out["money"], "the run should bill something"
    return out


def test_counted_xdrs_sum_as_kept_ones() -> None:
    kept = planning({"messages": "all", "xdrs": True}).run()
    counted = planning({"messages": "failed", "xdrs": False}).run()
    assert comparable(counted.summary) == comparable(kept.summary)
    assert counted.xdrs.empty and len(kept.xdrs) > 100
    failed = kept.messages[~kept.messages["code"].between(200, 299)].reset_index(drop=True)
    assert_frame_equal(counted.messages, failed)


def test_a_run_in_chunks_equals_one_run() -> None:
    seen: list[float] = []
    chunked = planning({"messages": "all", "xdrs": True}).run(seen.append)
    whole = planning({"messages": "all", "xdrs": True}).run()
    assert len(seen) == 200 and seen[-1] == 300
    assert comparable(chunked.summary) == comparable(whole.summary)
    for name, frame in whole.frames().items():
        assert_frame_equal(chunked.frames()[name], frame, obj=name)


def test_run_returns_the_same_as_world() -> None:
    result = sim.run(planning({"messages": "all", "xdrs": True}).scenario)
    assert comparable(result.summary) == comparable(planning(
        {"messages": "all", "xdrs": True}).run().summary)
