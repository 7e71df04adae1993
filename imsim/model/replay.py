"""Replaying a setup journal: the admin's view after each action, and the
configuration in effect on PortaSIP and billing over time (`timeline`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from imsim.model.config import Environment
from imsim.model.setup import PROPAGATED_ACTIONS, Applied, Refused, SetupAction, action_step, apply


class Journaled(Protocol):
    """What `timeline` reads of an `imsim.model.scenario.Scenario` (which replays its
    journal while it loads, so this module does not import it)."""

    @property
    def environments(self) -> Sequence[Environment]: ...
    @property
    def initial(self) -> Sequence[Environment] | None: ...
    @property
    def setup(self) -> Sequence[SetupAction]: ...
    @property
    def propagation_delay(self) -> float: ...

BEFORE = float("-inf")
Versions = list[tuple[float, Environment]]


@dataclass
class Replay:
    """The journal after replay: every entry (refused ones too) and the admin's states."""

    entries: list[Applied] = field(default_factory=list)
    admin: dict[str, Versions] = field(default_factory=dict)
    propagated_at: dict[str, list[float]] = field(default_factory=dict)

    def final(self) -> tuple[Environment, ...]:
        return tuple(states[-1][1] for states in self.admin.values())


def replay(initial: Sequence[Environment], journal: Sequence[Any]) -> Replay:
    """Apply the journal in order on top of ``initial``; refused actions are kept as such."""
    result = Replay(admin={env.name: [(BEFORE, env)] for env in initial},
                    propagated_at={env.name: [] for env in initial})
    default_env, clock = initial[0].name, 0.0
    for index, action in enumerate(journal):
        clock = action.at if action.at is not None else clock
        name = action.env or default_env
        states = result.admin[name]
        current = states[-1][1]
        step = action_step(action, current)
        try:
            states.append((clock, apply(current, action)))
        except Refused as refusal:
            result.entries.append(Applied(index, clock, name, action.action, step,
                                          refusal.problem, refusal.step))
            continue
        if action.action in PROPAGATED_ACTIONS:
            result.propagated_at[name].append(clock)
        result.entries.append(Applied(index, clock, name, action.action, step))
    return result


def admin_state(states: Versions, t: float) -> Environment:
    """What the admin interface shows at time ``t``."""
    chosen = states[0][1]
    for at, env in states:
        if at <= t:
            chosen = env
    return chosen


def in_effect(states: Versions, t: float, delay: float) -> Environment:
    """The configuration PortaSIP and billing use at ``t``: billing objects as the admin
    left them at ``t``; configuration server and service policies as of ``t - delay``."""
    billing = admin_state(states, t)
    sip = admin_state(states, t - delay)
    if sip is billing:
        return billing
    return billing.model_copy(update={"config_server": sip.config_server,
                                      "service_policies": sip.service_policies})


def timeline(scenario: Journaled) -> dict[str, Versions]:
    """Per environment: [(from_seconds, configuration in effect)], sorted; the first entry
    starts at -inf (the configuration before the journal, long propagated)."""
    done = replay(scenario.initial or scenario.environments, scenario.setup)
    delay = scenario.propagation_delay
    out: dict[str, Versions] = {}
    for name, states in done.admin.items():
        moments = sorted({at for at, _ in states[1:]}
                         | {at + delay for at in done.propagated_at[name]})
        versions: Versions = [(BEFORE, states[0][1])]
        for moment in moments:
            env = in_effect(states, moment, delay)
            if env != versions[-1][1]:
                versions.append((moment, env))
        out[name] = versions
    return out


def environment_at(versions: Versions, t: float) -> Environment:
    """The configuration in effect at ``t`` (seconds since the scenario start)."""
    return admin_state(versions, t)
