"""The handbook's printable checklist, filled in: which steps are done, missing, out of
order or misconfigured, per virtual billing environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imsim.model.config import STEP_TITLES, WILDCARD, AppliedTo, Environment, Service
from imsim.model.replay import replay

if TYPE_CHECKING:
    from imsim.model.scenario import Scenario

SECTIONS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("General Configuration", (1,)),
    ("Network configuration", (2,)),
    ("Rating configuration (Internal Vendor)", (3, 4, 5)),
    ("Rating configuration (Customer)", (6, 7, 8)),
    ("Test", (9,)),
)


def _messaging_tariffs(env: Environment, applied_to: AppliedTo) -> list:
    return [t for t in env.tariffs if t.applied_to is applied_to
            and t.service is Service.messaging]


def _connections(env: Environment) -> list:
    return [c for v in env.vendors for c in v.connections if c.service_type is Service.messaging]


DONE: dict[int, Callable[[Environment], bool]] = {
    1: lambda env: env.config_server.messaging_enabled,
    2: lambda env: bool(env.service_policies),
    3: lambda env: bool(_messaging_tariffs(env, AppliedTo.vendor)),
    4: lambda env: any(WILDCARD in r.rate_codes for t in _messaging_tariffs(env, AppliedTo.vendor)
                       for r in t.rates),
    5: lambda env: bool(_connections(env)),
    6: lambda env: bool(_messaging_tariffs(env, AppliedTo.customer)),
    7: lambda env: any(t.rates for t in _messaging_tariffs(env, AppliedTo.customer)),
    8: lambda env: any(Service.messaging in p.included_services and any(
        c.service is Service.messaging for c in p.usage_charges) for p in env.products),
    9: lambda env: any(a for c in env.customers for a in c.accounts),
}


@dataclass
class StepState:
    step: int
    done: bool
    before: list[int] = field(default_factory=list)  # done while these were not yet
    problems: list[str] = field(default_factory=list)

    @property
    def mark(self) -> str:
        if not self.done:
            return "[ ]"
        return "[!]" if self.problems else "[x]"


def steps(env: Environment) -> dict[int, bool]:
    return {step: done(env) for step, done in DONE.items()}


def fill(scenario: Scenario) -> dict[str, dict[int, StepState]]:
    """Per environment, the state of each of the nine steps, with order violations."""
    states = {env.name: {s: StepState(s, d) for s, d in steps(env).items()}
              for env in scenario.environments}
    if scenario.setup:
        done = replay(scenario.initial or scenario.environments, scenario.setup)
        for name, history in done.admin.items():
            _order(states[name], history)
    return states


def _order(states: dict[int, StepState], history: list[tuple[float, Environment]]) -> None:
    """Mark steps first completed while an earlier step, completed later, was not yet."""
    final = steps(history[-1][1])
    previous = steps(history[0][1])
    for _, env in history[1:]:
        now = steps(env)
        for step, done in now.items():
            if done and not previous[step]:
                states[step].before = [s for s in range(1, step) if not now[s] and final[s]]
        previous = now


def blank() -> str:
    """The printable checklist of the handbook, every box empty."""
    lines = ["Instant Messaging setup checklist", ""]
    for title, numbers in SECTIONS:
        lines.append(title)
        lines += [f"  [ ] {n}. {STEP_TITLES[n]}" for n in numbers]
        lines.append("")
    lines.append("Perform all operations in the order designated; otherwise the service "
                 "will not work.")
    return "\n".join(lines)
