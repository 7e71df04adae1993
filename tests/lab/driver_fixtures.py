"""Fixtures for the pjsua2 driver tests, imported by them (conftest.py stays as it is).

`billing` overrides conftest's test authorizer with one that translates the recipient to
E.164 like the real billing service, so the handbook script's "+1 (555) 123-0001" and
national "5551230003" reach their accounts; everything else is fake_billing's rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ACCOUNTS, ROOT
from fake_billing import FakeBilling

from imsim.model.scenario import Scenario, load
from imsim.rules.proxy import to_e164
from lab.stack import Stack


class E164Billing(FakeBilling):
    def handle(self, path: str, body: dict) -> dict | None:
        answer = super().handle(path, body)
        if path == "/authorize" and answer and answer["code"] == 200:
            answer["target"] = to_e164(body.get("to_user", "")) or answer["target"]
        return answer


@pytest.fixture(scope="module")
def billing() -> Iterator[FakeBilling]:
    server = E164Billing().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def handbook(stack: Stack) -> Iterator[Scenario]:
    """The handbook scenario, its accounts provisioned next to conftest's ACCOUNTS."""
    scenario = load(Path(ROOT, "scenarios", "handbook.yaml"))
    accounts = [(a.id, env.domain, a.password) for env in scenario.environments
                for c in env.customers for a in c.accounts]
    stack.provision([*ACCOUNTS, *accounts])
    yield scenario
    stack.provision(ACCOUNTS)


@pytest.fixture
def proxy(stack: Stack) -> tuple[str, int, str]:
    return ("127.0.0.1", stack.sip_port, "udp")
