"""The proxy pool against queueing theory: M/M/1 and M/M/c (Erlang C) mean waits."""

from __future__ import annotations

import heapq
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsim.model import scenario
from imsim.sim import World
from imsim.sim.draws import Draws
from imsim.sim.pools import Pool, replace_min

CUSTOMERS = 25_000
SEEDS = range(10)


def erlang_c_wait(arrival: float, service: float, servers: int) -> float:
    """Mean waiting time in queue of M/M/c (Erlang C)."""
    a = arrival / service
    rho = a / servers
    tail = a ** servers / math.factorial(servers) / (1 - rho)
    head = sum(a ** k / math.factorial(k) for k in range(servers))
    return tail / (head + tail) / (servers * service - arrival)


def proxy_world(servers: int, mean_service: float, seed: int) -> World:
    text = f"""
name: queue
environments: [{{name: main}}]
sim:
  until: 1000000
  proxy: {{workers: {servers}, service: {{MESSAGE: {{dist: exponential, mean: {mean_service}}}}}}}
"""
    return World(scenario.loads(text), seed=seed)


def mean_wait(servers: int, arrival: float, service: float, seed: int) -> tuple[float, float]:
    """Poisson MESSAGE transactions into the world's proxy; (mean wait, utilization)."""
    world = proxy_world(servers, 1 / service, seed)
    proxy, clock = world.sites["main"].proxy, world.clock
    draw = world.path.proxy_time
    rng = world.streams.generator("test.arrivals")
    gaps = Draws(lambda n: rng.exponential(1 / arrival, n))
    left, last = [CUSTOMERS], [0.0]

    def arrive(_: object) -> None:
        proxy.admit(clock.now, draw.next())
        left[0] -= 1
        last[0] = clock.now
        if left[0]:
            clock.at(clock.now + gaps.next(), arrive)

    clock.at(gaps.next(), arrive)
    clock.run()
    assert left[0] == 0
    return proxy.wait_time / proxy.jobs, proxy.busy_time / servers / last[0]


@pytest.mark.parametrize(("servers", "arrival"), [(1, 0.5), (3, 1.8)])
def test_mean_wait_matches_erlang_c_within_5_percent(servers: int, arrival: float) -> None:
    runs = [mean_wait(servers, arrival, 1.0, seed) for seed in SEEDS]
    pooled = sum(w for w, _ in runs) / len(runs)
    expected = erlang_c_wait(arrival, 1.0, servers)
    assert pooled == pytest.approx(expected, rel=0.05)
    utilization = sum(u for _, u in runs) / len(runs)
    assert utilization == pytest.approx(arrival / servers, rel=0.05)


def test_erlang_c_reduces_to_mm1() -> None:
    assert erlang_c_wait(0.5, 1.0, 1) == pytest.approx(0.5 / (1.0 - 0.5))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=64),
       st.lists(st.floats(0, 1e6), max_size=64))
def test_replace_min_is_heapreplace(start: list[float], items: list[float]) -> None:
    """The pool's compiled heap step takes the same smallest value as heapq's."""
    ours, theirs = sorted(start), sorted(start)
    for item in items:
        smallest = theirs[0]
        assert ours[0] == smallest
        replace_min(ours, item)
        heapq.heapreplace(theirs, item)
        assert sorted(ours) == sorted(theirs)
        assert all(ours[(k - 1) // 2] <= ours[k] for k in range(1, len(ours)))


def heap_pool_finishes(workers: int, jobs: list[tuple[float, float]]) -> list[float]:
    """The FIFO pool by definition: each job starts when it arrives or when the server
    freed first is free, whichever is later (heapq)."""
    free = [0.0] * workers
    out = []
    for now, service in jobs:
        finish = max(now, free[0]) + service
        heapq.heapreplace(free, finish)
        out.append(finish)
    return out


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6),
       st.lists(st.tuples(st.integers(0, 6).map(lambda k: k / 4),
                          st.sampled_from([1.0, 1.0, 1.0, 1.0, 0.5, 2.0])), max_size=80),
       st.booleans())
def test_the_pool_finishes_jobs_as_a_heap_of_free_servers_does(workers: int,
                                                             steps: list[tuple[float, float]],
                                                             same: bool) -> None:
    """Ring or heap (`Pool`), the finishes of the plain definition; with ``same`` (one
    service time, arrivals in time order) the pool stays a ring."""
    jobs, now = [], 0.0
    for gap, service in steps:
        now += gap
        jobs.append((now, 1.0 if same else service))
    if not same and jobs:   # an arrival earlier than the one before
        jobs.insert(len(jobs) // 2, (jobs[-1][0] / 3, 1.0))
    pool = Pool("p", workers)
    assert [pool.admit(t, s) for t, s in jobs] == heap_pool_finishes(workers, jobs)
    assert pool.ring or not same


def test_a_pool_is_a_ring_again_once_every_server_is_free() -> None:
    pool = Pool("p", 3)
    for t, service in [(0.0, 1.0), (0.1, 2.0), (0.2, 1.0), (0.3, 1.0)]:
        pool.admit(t, service)   # 2.0 while servers are busy: a heap
    assert not pool.ring
    jobs = [(5.0, 1.0), (5.0, 1.0), (5.5, 1.0), (5.6, 1.0), (9.0, 0.5), (9.1, 0.5)]
    finishes = [pool.admit(t, s) for t, s in jobs]
    assert pool.ring   # idle at 5.0 and at 9.0
    assert finishes == [6.0, 6.0, 6.5, 7.0, 9.5, 9.6]
