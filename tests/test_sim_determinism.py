"""Same seed, same frames; and the simulator's decision memo never changes a decision."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
from pandas.testing import assert_frame_equal

from imsim import sim
from imsim.model import scenario
from imsim.rules.decide import BillingEngine
from imsim.rules.message import Message
from imsim.sim.periods import breakpoints
from imsim.sim.site import Version
from tests.helpers import HANDBOOK, ROOT

PLANNING = ROOT / "scenarios" / "planning.yaml"


def frames(seed: int) -> dict[str, pd.DataFrame]:
    return sim.run(scenario.load(PLANNING), seed=seed, until=120.0).frames()


def test_same_seed_gives_identical_frames() -> None:
    first, second = frames(3), frames(3)
    for name, frame in first.items():
        assert_frame_equal(frame, second[name], obj=name)
    assert len(first["messages"]) > 100


def test_another_seed_gives_other_traffic() -> None:
    assert not frames(3)["messages"].equals(frames(4)["messages"])


def test_parallel_runs_equal_sequential_ones() -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(frames, [5, 6]))
    for seed, result in zip([5, 6], parallel, strict=True):
        assert_frame_equal(result["xdrs"], frames(seed)["xdrs"])


def test_memoized_decision_equals_a_fresh_one_around_every_breakpoint() -> None:
    loaded = scenario.load(HANDBOOK)
    env, start = loaded.environments[0], loaded.start
    version = Version(float("-inf"), env, start, 3 * 86400.0)
    fresh = BillingEngine(env)
    points = breakpoints(env, start, 3 * 86400.0)
    assert len(points) > 6
    for point in points:
        for offset in (-1_000_000, -1, 0, 1, 59_000_000):
            micros = point + offset
            at = start + dt.timedelta(microseconds=micros)
            msg = Message("m", "15551230001", "15551230002", env.domain, at, 10, "c")
            assert version.decide(msg, "15551230002", micros) == fresh.decide(msg)
