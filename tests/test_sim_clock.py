"""The clock: events in (time, order of scheduling), whether scheduled before it
started (queued as one lane when it starts) or while it runs, in a lane or not."""

from __future__ import annotations

import itertools

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from imsim.sim.core import Call, Clock, Lane

TIMES = st.lists(st.integers(0, 20).map(lambda k: k / 4), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(before=TIMES, later=st.lists(st.integers(0, 8).map(lambda k: k / 4), max_size=60))
def test_events_run_in_time_then_scheduling_order(before: list[float],
                                                  later: list[float]) -> None:
    clock = Clock(until=10.0)
    made = itertools.count()
    seen: list[tuple[float, int]] = []
    follow = iter(later)

    def record(number: int) -> None:
        seen.append((clock.now, number))
        gap = next(follow, None)
        if gap is not None:   # scheduled while running, often at the same time
            clock.at(clock.now + gap, record, next(made))

    ticks = [next(made)]

    def tick(_: object) -> None:   # in the clock's heap from the start, as traffic is
        record(ticks[-1])
        ticks.append(next(made))
        clock.again(ticker, clock.now + 0.25)

    ticker = Call(tick, None)
    clock.again(ticker, 0.0)
    for when in before:
        clock.at(when, record, next(made))
    clock.run()
    times = {n: t for t, n in seen}
    assert seen == sorted(seen)                      # by time, then by scheduling order
    assert all(t < 10.0 for t in times.values())
    assert len(seen) == len(times)                   # each once
    assert set(range(len(before) + 1)) <= set(times)
    assert ticks[0] == 0


def _program(gaps: list[tuple[int, float]], lanes: bool) -> list[tuple[float, int]]:
    """Events that schedule the next ones at ``now + gap``, each through one of three
    lanes (or `Clock.at` for all when ``lanes`` is False): what ran, when."""
    clock = Clock(until=10.0)
    made = itertools.count()
    seen: list[tuple[float, int]] = []
    follow = iter(gaps)
    chosen = [Lane(), Lane(), Lane()]

    def schedule(k: int, when: float) -> None:
        if lanes:
            clock.at_lane(chosen[k], when, record, next(made))
        else:
            clock.at(when, record, next(made))

    def record(number: int) -> None:
        seen.append((clock.now, number))
        for _ in range(2):
            step = next(follow, None)
            if step is not None:
                schedule(step[0], clock.now + step[1])

    schedule(0, 0.0)
    schedule(1, 0.25)
    clock.run()
    return seen


@settings(max_examples=150, deadline=None)
@given(gaps=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 8).map(lambda k: k / 4)),
                     max_size=80))
def test_lanes_keep_the_order_of_one_queue(gaps: list[tuple[int, float]]) -> None:
    # times in a lane may go back (a gap shorter than the one before): those events go
    # to the queue itself; either way the run is the one without lanes
    assert _program(gaps, lanes=True) == _program(gaps, lanes=False)


def test_a_lane_keeps_only_its_first_event_in_the_queue() -> None:
    clock = Clock(until=100.0)
    lane = Lane()
    ran: list[float] = []
    clock.at(0.0, lambda _: [clock.at_lane(lane, 1.0 + k / 1000, ran.append, 1.0 + k / 1000)
                             for k in range(3000)])
    sizes: list[int] = []
    clock.at(0.5, lambda _: sizes.append(len(clock.queue)))
    clock.run()
    assert ran == [1.0 + k / 1000 for k in range(3000)]   # in order, each once
    assert sizes[0] <= 3 and len(lane) == 0


def _mixed(on_clock: bool) -> tuple[list[tuple[float, str]], float]:
    """Model events and a simpy process that schedule each other, at shared times: on
    a `Clock` (the model's events in its heap, the process in simpy's queue) or all in
    plain simpy."""
    seen: list[tuple[float, str]] = []
    clock = Clock(until=3.0)
    env = clock.env if on_clock else simpy.Environment()

    def now() -> float:   # the model reads the clock's time, a process env.now
        return clock.now if on_clock else env.now

    def model(when: float, name: str) -> None:
        def fire(_: object) -> None:
            seen.append((now(), name))
            if name.startswith("m"):
                model(now() + 0.5, "after " + name)
        if on_clock:
            clock.at(when, fire)
        else:
            env.timeout(when - env.now).callbacks.append(fire)

    def process():  # type: ignore[no-untyped-def]
        for k in range(8):
            yield env.timeout(0.5)
            seen.append((env.now, f"p{k}"))
            model(now(), f"m{k}")          # same time: after what was already queued
            model(now() + 0.25, f"n{k}")

    model(0.5, "x")
    model(1.0, "y")
    env.process(process())
    model(0.5, "z")
    if on_clock:
        clock.run()
    else:
        env.run(until=3.0)
    return seen, env.now


def test_simpy_processes_run_in_their_place() -> None:
    # the clock keeps its own heap; simpy's events interleave exactly as in plain simpy
    # (one id counter), and nothing at or after ``until`` runs
    on_clock, plain = _mixed(True), _mixed(False)
    assert on_clock == plain
    assert plain[1] == 3.0 and ("after m4" not in {name for _, name in plain[0]})
    assert [name for t, name in plain[0] if t == 0.5] == ["x", "z", "p0", "m0"]


def test_the_clock_needs_none_of_simpys_private_attributes() -> None:
    # the clock overrides simpy's public extension points (now, schedule, peek, step,
    # run) and keeps its own queue and counter: simpy's private ones can go (a simpy
    # release may rename them) and a mixed run is the same
    clock = Clock(until=3.0)
    for name in ("_queue", "_eid", "_now"):
        delattr(clock, name)
    assert not any(hasattr(clock, name) for name in ("_queue", "_eid", "_now"))
    seen: list[tuple[float, str]] = []

    def process(env: simpy.Environment):  # type: ignore[no-untyped-def]
        for k in range(4):
            yield env.timeout(0.5)
            seen.append((env.now, f"p{k}"))
            clock.at(env.now, lambda name: seen.append((clock.now, name)), f"m{k}")

    clock.process(process(clock))
    assert clock.peek() == 0.0   # the process starts now
    clock.run()
    assert seen == [(t / 2, f"{kind}{k}") for k, t in zip(range(4), range(1, 5), strict=True)
                    for kind in ("p", "m")]
    assert clock.now == 3.0
