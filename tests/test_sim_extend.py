"""The extension API on the SimPy engine (``world.env``, ``send``, ``wait``, taking
workers away and back), and what the fast engine says of it.

Expected latencies are worked out by hand from the handbook scenario's settings (the
defaults): network delay 10 ms, proxy 1 ms a transaction, billing latency 2 ms one
way and 1 ms of service. A delivered MESSAGE: 10 (to the proxy) + 1 (407) + 20 (407
back, resent) + 1 + 2 (AAA request) + 1 + 2 (answer) + 10 (to B) + 10 (B's 200 back)
+ 10 (200 to A) = 67 ms.
"""

from __future__ import annotations

from typing import Any

import pytest
import simpy

from imsim import sim
from imsim.model import scenario
from imsim.sim.reference import Answer, Workers
from tests.helpers import HANDBOOK, handbook_document, load_document

DELIVERED = 0.067


def handbook_world(engine: str = "simpy") -> Any:
    return sim.world(scenario.load(HANDBOOK), engine=engine)


def test_send_fires_with_the_answer() -> None:
    world = handbook_world()
    answers: list[tuple[float, Answer]] = []

    def user(env: simpy.Environment):  # type: ignore[no-untyped-def]
        yield env.timeout(5)
        answer = yield world.send("15551230001", "15551230002", "Hi")
        answers.append((env.now, answer))
        answer = yield world.send("15551230003", "15551230001", "Hi")  # voice-only product
        answers.append((env.now, answer))

    world.env.process(user(world.env))
    result = world.run()
    (t1, first), (t2, second) = answers
    assert first.code == 200 and first.latency == pytest.approx(DELIVERED, abs=1e-9)
    assert t1 == pytest.approx(5 + DELIVERED, abs=1e-9)
    assert second.code == 403 and t2 > t1
    assert {"user-1", "user-2"} <= set(result.messages["msg_id"])


def test_taking_every_proxy_worker_delays_messages_by_the_outage() -> None:
    world = handbook_world()
    answers: list[Answer] = []

    def outage(env: simpy.Environment):  # type: ignore[no-untyped-def]
        yield env.timeout(5)
        yield world.proxy().take(4)                      # all four workers
        sending = world.send("15551230001", "15551230002", "Hi")
        yield env.timeout(2)
        world.proxy().give_back()
        answers.append((yield sending))

    world.env.process(outage(world.env))
    world.run()
    # the MESSAGE waits 2 s for a worker, then goes its usual way
    assert answers[0].code == 200
    assert answers[0].latency == pytest.approx(DELIVERED + 2 - 0.01, abs=1e-9)


def test_taking_billing_workers_queues_the_aaa() -> None:
    world = handbook_world()
    answers: list[Answer] = []

    def outage(env: simpy.Environment):  # type: ignore[no-untyped-def]
        yield env.timeout(5)
        yield world.billing().take(2)
        sending = world.send("15551230001", "15551230002", "Hi")
        yield env.timeout(1)
        world.billing().give_back(2)
        answers.append((yield sending))

    world.env.process(outage(world.env))
    world.run()
    # the AAA request reaches billing 34 ms after sending, and waits to 1 s
    assert answers[0].latency == pytest.approx(1 + DELIVERED - 0.034, abs=1e-9)


def test_waiting_for_notify_and_answers() -> None:
    world = handbook_world()
    seen: list[tuple[str, Any]] = []

    def watch(env: simpy.Environment, what: str):  # type: ignore[no-untyped-def]
        seen.append((what, (yield world.wait(what))))

    world.env.process(watch(world.env, "notify"))
    world.env.process(watch(world.env, "answer"))
    result = world.run()
    kinds = dict(seen)
    notifies = result.presence[result.presence["event"] == "NOTIFY"].sort_values("time")
    first = notifies.iloc[0]
    assert kinds["notify"] == (first["env"], first["watcher"], first["presentity"],
                               first["status"])
    assert kinds["answer"].msg_id == "m1" and kinds["answer"].code == 200
    with pytest.raises(ValueError, match="one of 'answer', 'notify', 'expired'"):
        world.wait("anything")


def test_the_fast_engine_runs_processes_but_has_no_extension_api() -> None:
    world = handbook_world("fast")
    ticks: list[float] = []

    def ticker(env: simpy.Environment):  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield env.timeout(1.5)
            ticks.append(env.now)

    world.env.process(ticker(world.env))
    world.run()
    assert ticks == [1.5, 3.0, 4.5]
    with pytest.raises(sim.EngineError, match="sim.engine: simpy"):
        world.send("15551230001", "15551230002", "Hi")


def test_waiting_for_an_expired_registration() -> None:
    from tests.test_sim_engines import BUSY

    world = sim.world(scenario.loads(BUSY.replace("SEED", "1")), engine="simpy")
    told: list[tuple[float, Any]] = []

    def watch(env: simpy.Environment):  # type: ignore[no-untyped-def]
        value = yield world.wait("expired")
        told.append((env.now, value))

    world.env.process(watch(world.env))
    result = world.run()
    [(when, (env_name, account))] = told
    expired = result.presence[(result.presence["event"] == "EXPIRE")
                              & (result.presence["watcher"] == "")]
    first = expired.sort_values("time").iloc[0]
    assert (when, env_name, account) == (first["time"], first["env"], first["presentity"])


def test_workers_given_back_before_they_were_taken_leave_the_queue() -> None:
    env = simpy.Environment()
    proxy = Workers(env, "main/proxy", 1)
    done: list[tuple[str, float]] = []

    def job(name: str, service: float):  # type: ignore[no-untyped-def]
        yield from proxy.serve(service)
        done.append((name, env.now))

    def outage():  # type: ignore[no-untyped-def]
        yield env.timeout(0.5)
        proxy.take(1)                    # the worker is busy: the outage waits first
        yield env.timeout(0.2)
        proxy.give_back()                # before it got the worker

    env.process(job("a", 1.0))
    env.process(outage())
    env.process(job("b", 1.0))
    env.run()
    assert done == [("a", 1.0), ("b", 2.0)] and proxy.count == 0 and not proxy.queue


def test_an_outage_goes_ahead_of_queued_jobs() -> None:
    env = simpy.Environment()
    proxy = Workers(env, "main/proxy", 1)
    done: list[tuple[str, float]] = []

    def job(name: str):  # type: ignore[no-untyped-def]
        yield from proxy.serve(1.0)
        done.append((name, env.now))

    def outage():  # type: ignore[no-untyped-def]
        yield env.timeout(0.5)
        yield proxy.take(1)              # at 1.0, before "b" that queued at 0
        assert proxy.sample() == (1, 1)  # busy with the outage; "b" waits
        yield env.timeout(3.0)
        proxy.give_back()

    for name in ("a", "b"):
        env.process(job(name))
    env.process(outage())
    env.run()
    assert done == [("a", 1.0), ("b", 5.0)]


def test_a_wait_until_the_runs_end_or_later_is_never_queued() -> None:
    # nothing at or past `until` is processed: the SimPy engine keeps it out of simpy's
    # queue (a day-long registration refresh per softphone), as the fast engine does
    world = handbook_world()
    env, platform, until = world.env, world.platform, world.until
    assert env.peek() == float("inf")   # nothing started yet
    for when in (until, until + 86_400):
        assert not platform.at(when).triggered
    assert env.peek() == float("inf")
    platform.at(until - 1)
    assert env.peek() == until - 1


def test_a_sender_is_read_as_a_script_reads_it() -> None:
    # '+1 555 123 0001' and 'number@domain' are how a script's `from` may be written;
    # send takes them the same way (it raised StopIteration inside the user's process)
    world = handbook_world()
    answers: list[Answer] = []

    def user(env: simpy.Environment):  # type: ignore[no-untyped-def]
        yield env.timeout(5)
        for sender in ("+1 555 123 0001", "15551230001@SIP.example.com"):
            answers.append((yield world.send(sender, "15551230002", "Hi")))

    world.env.process(user(world.env))
    world.run()
    assert [a.code for a in answers] == [200, 200]


def test_an_unknown_sender_is_one_clear_error() -> None:
    world = handbook_world()
    with pytest.raises(ValueError, match=r"send: no account 15559999999 in the scenario"):
        world.send("15559999999", "15551230002", "Hi")


def test_a_body_is_billed_by_its_utf8_bytes_as_a_scripts_body() -> None:
    # six 'ü' are 12 bytes (the lab's Content-Length, a script's size): with units of
    # 10 that is ceil(12 / 10) = 2 units, not the 1 of its 6 characters
    document = handbook_document()
    document["environments"][0]["service_policies"][0]["billing_unit_size"] = 10
    document["traffic"]["script"] = [
        {"id": "s1", "at": 1, "from": "15551230001", "to": "15551230002", "body": "ü" * 6}]
    world = sim.world(load_document(document), engine="simpy")

    def user(env: simpy.Environment):  # type: ignore[no-untyped-def]
        yield env.timeout(5)
        yield world.send("15551230001", "15551230002", "ü" * 6, msg_id="u1")

    world.env.process(user(world.env))
    xdrs = world.run().xdrs
    billed = xdrs[xdrs["direction"] == "outgoing"].set_index("msg_id")["charged_quantity"]
    assert (billed["s1"], billed["u1"]) == (2, 2)


def test_giving_back_more_than_was_taken_is_one_clear_error() -> None:
    env = simpy.Environment()
    proxy = Workers(env, "main/proxy", 4)
    proxy.take(1)
    with pytest.raises(ValueError, match=r"main/proxy: give_back\(2\): only 1 worker taken"):
        proxy.give_back(2)
    proxy.give_back(1)
    proxy.give_back()                    # nothing taken, nothing given back
    with pytest.raises(ValueError, match=r"give_back\(1\): only 0 workers taken"):
        proxy.give_back(1)
    env.run()
    assert proxy.count == 0 and not proxy.queue and not proxy.taken


def test_taking_more_workers_than_there_are_is_one_clear_error() -> None:
    # 4 workers: an outage of 5 would never be complete, and the user's process would
    # wait for it silently until the run's end
    env = simpy.Environment()
    proxy = Workers(env, "main/proxy", 4)
    proxy.take(3)
    with pytest.raises(ValueError, match=r"main/proxy: take\(2\): 1 of 4 workers left"):
        proxy.take(2)
    with pytest.raises(ValueError, match=r"take\(-1\)"):
        proxy.take(-1)
    done = proxy.take(1)                 # the last one: every worker taken
    env.run()
    assert done.triggered and proxy.count == 4 and len(proxy.taken) == 4
