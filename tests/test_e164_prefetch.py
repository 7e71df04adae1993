"""E.164 translations worked out ahead in a helper process (`imsim.sim.prefetch.E164Prefetch`):
the same numbers as `to_e164`, and a run that takes them from there gives the same
results as one that translates each recipient itself."""

from __future__ import annotations

import multiprocessing
import sys

import pandas as pd
import pytest

from imsim.rules.proxy import to_e164
from imsim.sim import World, site
from imsim.sim.prefetch import E164Prefetch
from tests.helpers import handbook_document, load_document

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the helper is forked")

USERS = ["15551230001", "+44 20 7946 0958", "442079460958", "0044 20 7946 0958",
         "5551230002", "911", "alice", "", "1-555-123-0003", "39 06 1234 5678",
         "+390612345678", "123456789012345678"]


def test_the_helper_translates_as_to_e164_does() -> None:
    prefetch = E164Prefetch(USERS, "US")
    table = prefetch.wait(60)
    assert table == {user: to_e164(user, "US") for user in USERS}
    assert prefetch.complete and prefetch.known() is table


def test_a_number_equal_to_its_user_part_is_that_string() -> None:
    user = "".join(["1555", "1230001"])   # not an interned literal
    table = E164Prefetch([user], "US").wait(60)
    assert table is not None and table[user] is user


NUMBERS = [str(15550000000 + n) for n in range(200_000)]   # about two seconds of parsing


def test_translations_arrive_as_the_helper_goes() -> None:
    prefetch = E164Prefetch(NUMBERS, "US")
    first = None
    for _ in range(10_000):   # bounded: 10 s at most
        first = prefetch.known()
        if first is not None:
            break
        prefetch.wait(0.001)
    assert first is not None
    partial = len(first)
    assert 0 < partial < len(NUMBERS) and not prefetch.complete
    assert first == {user: to_e164(user, "US") for user in NUMBERS[:partial]}  # in order
    table = prefetch.wait(60)
    assert prefetch.complete and table is first and len(table) == len(NUMBERS)
    assert all(table[user] == to_e164(user, "US") for user in NUMBERS[::997])


def test_close_ends_the_helper_and_keeps_what_arrived() -> None:
    prefetch = E164Prefetch(NUMBERS, "US")
    prefetch.wait(0.05)
    prefetch.close()
    arrived = dict(prefetch.known() or {})
    assert len(arrived) < len(NUMBERS) and not prefetch.complete
    assert (prefetch.wait(0.1) or {}) == arrived   # nothing more comes


def test_a_prefetch_dropped_unread_ends_its_helper() -> None:
    prefetch = E164Prefetch(NUMBERS, "US")
    process = prefetch._process
    assert process is not None and process.is_alive()
    del prefetch       # terminated now, not after its two seconds of parsing
    process.join(1)
    assert not process.is_alive()


def _in_a_worker(users: list[str]) -> tuple[bool, dict[str, str | None] | None]:
    prefetch = E164Prefetch(users, "US")
    return prefetch._process is None, prefetch.wait(5)


def test_a_pool_worker_translates_by_itself() -> None:
    # a sweep runs in daemonic workers, which may not start processes of their own
    with multiprocessing.get_context("fork").Pool(1) as pool:
        alone, table = pool.apply(_in_a_worker, (USERS,))
    assert alone and table is None


def run(monkeypatch: pytest.MonkeyPatch, prefetch: bool) -> tuple[World, pd.DataFrame]:
    monkeypatch.setattr(site, "PREFETCH_MIN", 1 if prefetch else 10**9)
    document = handbook_document()
    document["traffic"] = {"script": [
        {"id": f"m{k}", "at": 10 + k, "from": "15551230001", "to": to, "body": "hi"}
        for k, to in enumerate(["15551230002", "1 (555) 123-0002", "+1 555 123 0002",
                                "alice", "5551230002", "15559990000"])]}
    document.setdefault("sim", {})["records"] = {"messages": "all"}
    world = World(load_document(document))
    for place in world.sites.values():
        if place.prefetch is not None:
            assert place.prefetch.wait(60) is not None
    return world, world.run().messages


def test_a_run_with_the_prefetch_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    ahead, with_prefetch = run(monkeypatch, prefetch=True)
    plain, without = run(monkeypatch, prefetch=False)
    pd.testing.assert_frame_equal(with_prefetch, without)
    assert set(with_prefetch["code"]) > {200}   # not only deliveries
    used = sum(v.engine.prefetched for s in ahead.sites.values() for v in s.versions
               if v._engine is not None)
    assert used > 0
    assert all(s.prefetch is None for s in plain.sites.values())
