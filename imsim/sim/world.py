"""A simpy world built from a `Scenario`, and a run of it into a `RunResult`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import simpy

from imsim import __version__
from imsim.model.config import Environment
from imsim.model.memory import paused_gc
from imsim.model.replay import timeline
from imsim.model.scenario import Scenario
from imsim.results import RunResult
from imsim.sim.agents import Agents
from imsim.sim.arrivals import PoissonStream, play_script
from imsim.sim.core import Clock
from imsim.sim.draws import Streams
from imsim.sim.messaging import MessagePath
from imsim.sim.records import Recorder
from imsim.sim.signalling import Signalling
from imsim.sim.site import Site

Progress = Callable[[float], None]


class EngineError(NotImplementedError):
    """The fast engine has no extension API (it runs plain simpy processes, though)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"world.{name}(...) is the SimPy engine's: set sim.engine: simpy "
                         "in the scenario (or --engine simpy, or run(..., engine='simpy'))")


class UntilRequired(ValueError):
    """Stochastic traffic never stops by itself: the run needs ``until``."""


def run_length(scenario: Scenario, until: float | None = None) -> float:
    """Seconds to simulate: the argument, ``sim.until``, or (scripted traffic only)
    the last scripted message plus ``sim.drain``."""
    chosen = until if until is not None else scenario.sim.until
    if chosen is not None:
        return float(chosen)
    if scenario.traffic.stochastic:
        raise UntilRequired("this scenario has random traffic: give sim.until in the "
                            "scenario or --until")
    last = max((m.at for m in scenario.traffic.script), default=0.0)
    return last + scenario.sim.drain


class World:
    """Every environment of a scenario, wired to one clock and one seed: the fast
    engine (`imsim.sim.reference_world.SimpyWorld` is the SimPy one)."""

    engine = "fast"

    def __init__(self, scenario: Scenario, seed: int | None = None,
                 until: float | None = None, trace: bool = False) -> None:
        with paused_gc():   # a million accounts: tens of millions of objects, no cycles
            self._build(scenario, seed, until, trace)

    def _build(self, scenario: Scenario, seed: int | None, until: float | None,
               trace: bool) -> None:
        self.scenario = scenario
        self.seed = scenario.sim.seed if seed is None else seed
        self.until = run_length(scenario, until)
        settings = scenario.sim
        self.streams = Streams(self.seed)
        self.recorder = Recorder(settings.records, trace)
        self.sites = {env.name: self._site(env, versions)
                      for env, versions in zip(scenario.environments, _versions(scenario),
                                               strict=True)}
        self._wire()

    def _wire(self) -> None:
        """The engine's parts: the fast clock, message path, signalling and agents."""
        scenario, settings = self.scenario, self.scenario.sim
        self.clock = Clock(self.until)
        self.path = MessagePath(self.clock, settings, self.streams, self.recorder)
        self.signalling = Signalling(self.clock, settings, self.streams, self.recorder)
        self.agents = Agents(self.clock, scenario, self.streams, self.signalling, self.path)
        self.poisson = [PoissonStream(self.clock, scenario.traffic, site, self.path,
                                      self.streams, scenario.start)
                        for site in self.sites.values()] if scenario.traffic.poisson else []

    @property
    def env(self) -> simpy.Environment:
        """The world's `simpy.Environment` (the fast clock is one: a simpy process
        started on it runs in its place among the model's events)."""
        return self.clock

    def _site(self, env: Environment, versions: list[tuple[float, Environment]]) -> Site:
        sim = self.scenario.sim
        return Site(env, versions, self.scenario.start, self.until, sim.proxy.workers,
                    sim.billing.workers, self.recorder)

    def run(self, progress: Progress | None = None) -> RunResult:
        return self.finish_run(lambda: self._play(progress))

    def _play(self, progress: Progress | None) -> None:
        for site in self.sites.values():
            self.agents.start(site)
        play_script(self.scenario, self.sites, self.path)
        for stream in self.poisson:
            stream.begin()
        self.clock.at(0.0, self._sample)
        self.clock.play(progress)

    def finish_run(self, play: Callable[[], None]) -> RunResult:
        """``play()`` the run, then fold the counts and build the frames and summary."""
        began = time.perf_counter()
        with paused_gc():
            play()
        for site in self.sites.values():
            site.fold()
            if site.prefetch is not None:
                site.prefetch.close()
        self.recorder.fold()
        frames = self.recorder.frames()
        summary = self.summary(time.perf_counter() - began)
        trace = sorted(self.recorder.trace, key=lambda e: e[0]) \
            if self.recorder.trace is not None else None
        return RunResult(**frames, summary=summary, trace=trace)

    @property
    def sent(self) -> int:
        """Messages sent so far."""
        return self.path.sent

    def talks(self) -> int:
        """Conversations started so far."""
        return self.agents.conversations

    def pools(self) -> list[Any]:
        """Every site's proxy and billing pools (``name``, ``stats(elapsed)``)."""
        return [p for s in self.sites.values() for p in (s.proxy, s.billing)]

    # -- the extension API: the SimPy engine's (`imsim.sim.reference_world`) -------------
    def send(self, *args: Any, **kwargs: Any) -> simpy.Event:
        raise EngineError("send")

    def wait(self, what: str) -> simpy.Event:
        raise EngineError("wait")

    def proxy(self, site: str | None = None) -> Any:
        raise EngineError("proxy")

    def billing(self, site: str | None = None) -> Any:
        raise EngineError("billing")

    def _sample(self, _: object = None) -> None:
        now = self.clock.now
        for site in self.sites.values():
            for pool in (site.proxy, site.billing):
                busy, queue = pool.sample(now)
                self.recorder.samples.append((now, site.name, pool.name.split("/")[1],
                                              busy, queue))
        self.clock.at(now + self.scenario.sim.sample_interval, self._sample)

    def summary(self, runtime: float) -> dict[str, Any]:
        rec, scenario = self.recorder, self.scenario
        finished = sum(rec.outcomes.values())
        return {
            "scenario": scenario.name, "imsim": __version__, "seed": self.seed,
            "until": self.until, "runtime_s": round(runtime, 3),
            "messages": {"sent": self.sent, "finished": finished,
                         "in_flight": self.sent - finished,
                         "delivered": sum(n for (_, code, _), n in rec.outcomes.items()
                                          if 200 <= code < 300)},
            "outcomes": rec.outcome_summary(),
            "money": rec.money_summary(), "totals": rec.totals(),
            "latency": rec.latency_summary(),
            "presence": dict(sorted(rec.notifies.items())),
            "conversations": self.talks(),
            "sip": [{"env": e, "method": m, "code": c, "count": n}
                    for (e, m, c), n in sorted(rec.sip.items())],
            "pools": {p.name: p.stats(self.until) for p in self.pools()},
            "config": config_used(scenario),
        }


def _versions(scenario: Scenario) -> list[list[tuple[float, Environment]]]:
    if not scenario.setup:
        return [[(float("-inf"), env)] for env in scenario.environments]
    found = timeline(scenario)
    return [found[env.name] for env in scenario.environments]


def config_used(scenario: Scenario) -> dict[str, Any]:
    """The run's settings with every default filled in (script and accounts left out)."""
    traffic = scenario.traffic.model_dump(mode="json", exclude_none=True,
                                          exclude={"script"})
    return {"start": scenario.start.isoformat(), "propagation_delay": scenario.propagation_delay,
            "sim": scenario.sim.model_dump(mode="json", exclude_none=True),
            "traffic": traffic, "scripted_messages": len(scenario.traffic.script),
            "setup_actions": len(scenario.setup), "counts": scenario.counts()}
