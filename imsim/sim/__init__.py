"""The discrete-event model: a simpy world of registrar, presence, proxy and billing.

``run(scenario)`` plays a scenario's traffic through the same decision logic as the
billing engine (`imsim.rules.proxy`, `imsim.rules.decide`) and adds what only time shows:
network and processing delays, queues, propagation of admin changes, presence
fan-out, softphones coming and going. Modules:

- `core`: clock (callback events on simpy), named random streams, samplers, pools
- `site`: one virtual environment: population, configuration versions, memo
- `signalling`: registrar and presence (REGISTER, PUBLISH, SUBSCRIBE, NOTIFY)
- `messaging`: the MESSAGE path (407 challenge, AAA, lookup, delivery, accounting)
- `agents`, `arrivals`: sessions, conversations, the script and the Poisson stream
- `records`, `world`: what is written down, and the run itself
"""

from __future__ import annotations

from imsim.results import RunResult
from imsim.scenario import Scenario
from imsim.sim.world import Progress, UntilRequired, World, run_length


def run(scenario: Scenario, seed: int | None = None, until: float | None = None,
        trace: bool = False, progress: Progress | None = None,
        quiet: bool = True) -> RunResult:
    """Simulate ``scenario``; the same seed gives the same frames. ``run`` never prints
    (``quiet`` is accepted for callers that say so); ``progress(now)`` is called as
    simulated time advances."""
    return World(scenario, seed, until, trace).run(progress)


__all__ = ["run", "World", "RunResult", "UntilRequired", "run_length"]
