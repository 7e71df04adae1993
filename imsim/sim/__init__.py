"""The discrete-event model: a simpy world of registrar, presence, proxy and billing.

``run(scenario)`` plays a scenario's traffic through the same decision logic as the
billing engine (`imsim.rules.proxy`, `imsim.rules.decide`) and adds what only time shows:
network and processing delays, queues, propagation of admin changes, presence
fan-out, softphones coming and going. Modules:

- `core`: clock (a `simpy.Environment` of callback events), named random streams,
  samplers, pools
- `site`: one virtual environment: population, configuration versions, memo
- `signalling`: registrar and presence (REGISTER, PUBLISH, SUBSCRIBE, NOTIFY)
- `messaging`: the MESSAGE path (407 challenge, AAA, lookup, delivery, accounting)
- `agents`, `arrivals`: sessions, conversations, the script and the Poisson stream
- `records`, `world`: what is written down, and the run itself

Two engines run the model (``sim.engine`` in a scenario, ``engine=`` here,
``--engine`` on ``imsim run`` and ``imsim sweep``): ``fast`` (the default: the modules
above, compiled, millions of messages a minute) and ``simpy`` (`reference`,
`reference_world`: generator processes, `simpy.Resource` workers, the extension API
of ``world.env``, ``world.send``, ``world.wait``, ``world.proxy().take``). They give
the same messages, xDRs and presence counts for the same seed
(tests/test_sim_engines.py).
"""

from __future__ import annotations

from imsim.model.scenario import Scenario
from imsim.results import RunResult
from imsim.sim.world import EngineError, Progress, UntilRequired, World, run_length

ENGINES = ("fast", "simpy")


def world(scenario: Scenario, seed: int | None = None, until: float | None = None,
          trace: bool = False, engine: str | None = None) -> World:
    """The world of ``scenario`` on ``engine`` (default: ``sim.engine``, else fast; an
    engine given here is recorded in the summary's config as ``sim.engine``)."""
    scenario = with_engine(scenario, engine)
    if scenario.sim.engine == "simpy":
        from imsim.sim.reference_world import SimpyWorld

        return SimpyWorld(scenario, seed, until, trace)
    return World(scenario, seed, until, trace)


def with_engine(scenario: Scenario, engine: str | None) -> Scenario:
    """``scenario`` with ``sim.engine`` set to ``engine`` (None: as it is)."""
    if engine is None:
        return scenario
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    return scenario.model_copy(update={"sim": scenario.sim.model_copy(update={"engine": engine})})


def run(scenario: Scenario, seed: int | None = None, until: float | None = None,
        trace: bool = False, progress: Progress | None = None,
        quiet: bool = True, engine: str | None = None) -> RunResult:
    """Simulate ``scenario``; the same seed gives the same frames. ``run`` never prints
    (``quiet`` is accepted for callers that say so); ``progress(now)`` is called as
    simulated time advances."""
    return world(scenario, seed, until, trace, engine).run(progress)


__all__ = ["run", "world", "World", "RunResult", "UntilRequired", "EngineError",
           "run_length", "ENGINES", "with_engine"]
