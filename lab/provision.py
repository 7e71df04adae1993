"""A scenario's accounts as the stack's SIP subscribers, and the billing service command.

Each virtual billing environment is one SIP domain (`Environment.domain`); each account
becomes the subscriber ``<account id>@<domain>``. The password only reaches
`lab.dbtext`, which stores its digest ha1, never the password itself.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from imsim.model.scenario import Scenario
from lab.dbtext import Account


def subscribers(scenario: Scenario) -> list[Account]:
    """(user, domain, password) of every account of every environment."""
    return [(account.id, env.domain, account.password)
            for env in scenario.environments
            for customer in env.customers
            for account in customer.accounts]


def buddies(scenario: Scenario) -> list[tuple[str, str, str]]:
    """(watcher, domain, watched) of every buddy list: who may watch whom."""
    return [(account.id, env.domain, buddy)
            for env in scenario.environments
            for customer in env.customers
            for account in customer.accounts
            for buddy in account.buddies]


def billing_command(scenario_path: Path | str, port: int, db: Path | str,
                    speed: float = 1.0, epoch: float | None = None,
                    extra: Sequence[str] = ()) -> list[str]:
    """The argv that starts the billing service; the db path (unique per stack) goes last,
    because `lab.stack.Stack` recognises its process by the last argument."""
    argv = [sys.executable, "-m", "lab.billing_service", "--scenario",
            str(Path(scenario_path).resolve()), "--port", str(port), "--speed", str(speed)]
    if epoch is not None:
        argv += ["--epoch", repr(epoch)]
    return argv + list(extra) + ["--db", str(Path(db).resolve())]
