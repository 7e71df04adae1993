"""Simulator throughput: bare simpy events/s against messages/s through the full path.

    python benchmarks/bench_sim.py            # 10,000 accounts, about 1,000,000 messages
    python benchmarks/bench_sim.py --scale    # 1,000,000 accounts, about 10,000,000 messages
    python benchmarks/bench_sim.py --engine simpy   # the SimPy engine, its ceiling, the fast
    python benchmarks/bench_sim.py --engine simpy --long   # and 1,000,000 messages too

Prints figures only (no pass/fail). Goals (issue 3): >= 100,000 messages/s end to end
and a ratio to bare simpy events/s >= 0.2; the scale run in < 3 minutes and < 4 GiB
peak RSS. Softphones come online over ``--spread`` seconds (10 by default).

``--engine simpy`` (issue 17): messages/s of the SimPy engine through the full path for
10,000 accounts (100,000 messages, every record kept as in the fast run), beside the
fast engine's on the same load and a SimPy ceiling measured in the same run: the same
message path as bare process-per-message SimPy (a `simpy.Resource` per pool, timeouts,
a dict lookup for the decision, nothing recorded). Goal: >= 60 % of the ceiling.
With ``--long``, the same again for 1,000,000 messages over 1,000 s (the fast engine's
default load), where the softphones' registration and presence burst of the first
seconds (about 80,000 signalling jobs) weighs a tenth as much.

Every message is two proxy transactions (407 challenge, then with credentials), an
AAA authorization (`BillingEngine.authenticate/decide/settle`), a registrar lookup,
delivery and accounting (`BillingEngine.account`, two xDRs).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import simpy

from imsim import _hotpath, sim
from imsim.model import scenario
from imsim.model.memory import no_collection_at_exit

TEMPLATE = """
name: bench
start: 2026-01-05T17:00:00+00:00
environments:
  - name: main
    domain: sip.example.com
    config_server: {{service_types: [voice, messaging]}}
    service_policies: [{{name: policy A, recipient_domain_pattern: "%"}}]
    tariffs:
      - {{name: tariff A, applied_to: vendor, rates: [{{rate_codes: ["|"], price: 0}}]}}
      - name: tariff B
        applied_to: customer
        rates: [{{rate_codes: ["1"], price: 0.02}}, {{rate_codes: ["|"], price: 0.10}}]
    vendors:
      - name: internal
        connections: [{{internal: SIP_UA, tariff: tariff A, service_policy: policy A}}]
    products:
      - name: Softphone
        included_services: [voice, messaging]
        usage_charges: [{{tariff: tariff B}}]
    customers:
      - name: Retail
        generate: {{count: {accounts}, first_id: "15550000000", product: Softphone,
                   balance: 1000000, buddies_per_account: {buddies}}}
traffic:
  poisson: {{rate_per_hour: {rate}}}
sim:
  until: {until}
  proxy: {{workers: {proxy}}}
  billing: {{workers: {billing}}}
  registration: {{spread: {spread}, expires: 1d}}
  sample_interval: 10
  records: {keep}
"""


def bare_simpy(events: int = 1_000_000) -> float:
    """Events/s of a bare simpy loop of ``timeout`` events."""
    env = simpy.Environment()

    def loop(env: simpy.Environment):  # type: ignore[no-untyped-def]
        for _ in range(events):
            yield env.timeout(1)

    env.process(loop(env))
    began = time.perf_counter()
    env.run()
    return events / (time.perf_counter() - began)


def ceiling(accounts: int, messages: int, until: float) -> float:
    """Messages/s of the message path as bare process-per-message SimPy: Poisson
    arrivals, two proxy transactions, the AAA (a dict lookup for the decision), the
    answer's way back; pools sized as in `full_path`, nothing recorded."""
    env = simpy.Environment()
    workers = max(4, int(messages / until * 0.001 * 2 * 3))
    proxy, billing = simpy.Resource(env, workers), simpy.Resource(env, workers)
    decisions = {(f"1555{k:07d}", f"1555{(k + 1) % accounts:07d}"): 200
                 for k in range(accounts)}
    rng = np.random.default_rng(1)
    gaps = rng.exponential(until / messages, messages).tolist()
    senders = rng.integers(0, accounts, messages).tolist()

    def message(k: int):  # type: ignore[no-untyped-def]
        yield env.timeout(0.01)
        for wait in (0.02, 0.002):               # 407 and resent, then the AAA request
            with proxy.request() as turn:
                yield turn
                yield env.timeout(0.001)
            yield env.timeout(wait)
        code = decisions[(f"1555{k:07d}", f"1555{(k + 1) % accounts:07d}")]
        with billing.request() as turn:
            yield turn
            yield env.timeout(0.001)
        yield env.timeout(0.002 + 0.01 + 0.01 + 0.01 if code == 200 else 0.012)

    def arrivals():  # type: ignore[no-untyped-def]
        for gap, k in zip(gaps, senders, strict=True):
            yield env.timeout(gap)
            env.process(message(k))

    env.process(arrivals())
    began = time.perf_counter()
    env.run()
    return messages / (time.perf_counter() - began)


def full_path(accounts: int, messages: int, until: float, buddies: int,
              spread: float = 10.0, engine: str = "fast",
              keep: str = "{messages: failed, xdrs: false, presence: false}"
              ) -> dict[str, float]:
    """One run; both pools sized for the messages (two proxy transactions and one
    authorization each, 1 ms a transaction, x3); softphones come online over
    ``spread`` seconds."""
    rate = messages / accounts / until * 3600
    workers = max(4, int(messages / until * 0.001 * 2 * 3))
    began = time.perf_counter()
    loaded = scenario.loads(TEMPLATE.format(accounts=accounts, buddies=buddies, rate=rate,
                                            until=until, proxy=workers, billing=workers,
                                            spread=spread, keep=keep))
    world = sim.world(loaded, engine=engine)
    built = time.perf_counter()
    marks: list[tuple[float, float, int]] = []
    result = world.run(lambda now: marks.append((now, time.perf_counter(), world.sent)))
    ran = time.perf_counter()
    sent = result.summary["messages"]["sent"]
    half, before = next((t, n) for now, t, n in marks if now >= until / 2)
    return {"load_s": built - began, "run_s": ran - built, "messages": sent,
            "delivered": result.summary["messages"]["delivered"],
            "msg_per_s": sent / (ran - built),
            "first_half_s": half - built, "second_half_s": marks[-1][1] - half,
            "second_half_msg_per_s": (sent - before) / (marks[-1][1] - half)}


def peak_rss_gib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 ** 3 if sys.platform == "darwin" else 1024 ** 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true",
                        help="1,000,000 accounts and 10,000,000 messages (minutes)")
    parser.add_argument("--spread", type=float, default=10.0,
                        help="seconds over which the softphones come online (default 10; "
                             "with --scale that is a registration storm the proxy queues)")
    parser.add_argument("--engine", choices=("fast", "simpy"), default="fast",
                        help="simpy: the SimPy engine beside its ceiling and the fast one")
    parser.add_argument("--long", action="store_true",
                        help="with --engine simpy: also 1,000,000 messages over 1,000 s")
    args = parser.parse_args(argv)
    no_collection_at_exit()
    if args.engine == "simpy":
        status = simpy_engine(args.spread)
        if args.long:
            status = simpy_engine(args.spread, messages=1_000_000, until=1000.0)
        return status
    events = bare_simpy()
    print(f"imsim hot path: {_hotpath.status()}")
    print(f"bare simpy: {events:,.0f} timeout events/s")
    if args.scale:
        figures = full_path(1_000_000, 10_000_000, 1000.0, buddies=2, spread=args.spread)
    else:
        figures = full_path(10_000, 1_000_000, 1000.0, buddies=3, spread=args.spread)
    print(f"full path: {figures['messages']:,.0f} messages ({figures['delivered']:,.0f} "
          f"delivered) in {figures['run_s']:.1f} s after {figures['load_s']:.1f} s loading")
    print(f"  {figures['msg_per_s']:,.0f} messages/s, ratio {figures['msg_per_s'] / events:.3f}")
    print(f"  first half of simulated time {figures['first_half_s']:.1f} s (registrations, "
          f"presence, first decisions), second half {figures['second_half_s']:.1f} s: "
          f"{figures['second_half_msg_per_s']:,.0f} messages/s")
    total = figures["load_s"] + figures["run_s"]
    print(f"  wall {total:.1f} s, peak RSS {peak_rss_gib():.2f} GiB")
    return 0


def simpy_engine(spread: float, messages: int = 100_000, until: float = 100.0) -> int:
    """The SimPy engine, its ceiling and the fast engine on one load (10,000 accounts,
    ``messages`` over ``until`` seconds), every record kept in both engines."""
    accounts = 10_000
    keep = "{messages: all, xdrs: true, presence: true}"
    print(f"{accounts:,} accounts, {messages:,} messages over {until:,.0f} s; "
          f"imsim hot path: {_hotpath.status()}")
    events = bare_simpy()
    print(f"bare simpy: {events:,.0f} timeout events/s")
    top = ceiling(accounts, messages, until)
    print(f"SimPy ceiling (process per message, Resources, dict decision, no records): "
          f"{top:,.0f} messages/s")
    for engine in ("simpy", "fast"):
        figures = full_path(accounts, messages, until, buddies=3, spread=spread,
                            engine=engine, keep=keep)
        print(f"{engine} engine: {figures['messages']:,.0f} messages "
              f"({figures['delivered']:,.0f} delivered, every record kept) in "
              f"{figures['run_s']:.1f} s: {figures['msg_per_s']:,.0f} messages/s, "
              f"{figures['msg_per_s'] / top:.0%} of the ceiling, ratio to bare simpy "
              f"{figures['msg_per_s'] / events:.3f}")
        steady = figures["second_half_msg_per_s"]
        print(f"  second half of simulated time (softphones registered, presence done): "
              f"{steady:,.0f} messages/s, {steady / top:.0%} of the ceiling")
    print(f"  peak RSS {peak_rss_gib():.2f} GiB")
    with StepCounter() as model:   # again, untimed: counting slows every event
        sent = full_path(accounts, messages, until, buddies=3, spread=spread,
                         engine="simpy", keep=keep)["messages"]
    with StepCounter() as bare:
        ceiling(accounts, messages, until)
    print(f"  simpy events per message: SimPy engine {model.events / sent:.1f} "
          f"(registration and presence included), ceiling {bare.events / messages:.1f} "
          "(messages only)")
    return 0


class StepCounter:
    """Counts the events simpy processes (`simpy.Environment.step`) inside ``with``."""

    def __init__(self) -> None:
        self.events = 0
        self.step = simpy.Environment.step

    def __enter__(self) -> StepCounter:
        def counted(env: simpy.Environment) -> None:
            self.events += 1
            self.step(env)

        simpy.Environment.step = counted   # type: ignore[assignment,method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        simpy.Environment.step = self.step   # type: ignore[method-assign]


if __name__ == "__main__":
    sys.exit(main())
