"""Fixtures for the live lab tests: a real Kamailio on a free loopback port, a test
authorizer (fake_billing.py), and SIP users. Everything is torn down by finalizers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.lab.billing_fixtures import kamailio_installed

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [p for p in (str(ROOT), str(Path(__file__).parent)) if p not in sys.path]

from fake_billing import FakeBilling, free_port  # noqa: E402

from lab import sip  # noqa: E402
from lab.stack import Stack  # noqa: E402

ENV1, ENV2 = "env1.imsim.test", "env2.imsim.test"
ACCOUNTS = [
    ("15551230001", ENV1, "alice-secret"),
    ("15551230002", ENV1, "bob-secret"),
    ("15551230003", ENV1, "carol-secret"),  # exists, never registered
    ("15551240001", ENV2, "dave-secret"),
]
PASSWORDS = {(user, domain): password for user, domain, password in ACCOUNTS}


def _need_kamailio() -> None:
    if not kamailio_installed() and os.geteuid() != 0:
        pytest.skip("kamailio not installed and not root (see lab.stack.INSTALL_COMMAND)")


@pytest.fixture(scope="module")
def billing() -> Iterator[FakeBilling]:
    server = FakeBilling().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(billing: FakeBilling, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _need_kamailio()
    lab = Stack(tmp_path_factory.mktemp("lab") / "run", sip_port=free_port(),
                billing_port=billing.port)
    try:
        lab.up(ACCOUNTS)
        yield lab
    finally:
        lab.down()


@pytest.fixture
def fresh(billing: FakeBilling) -> FakeBilling:
    """The authorizer with its records cleared for this test."""
    with billing.lock:
        billing.authorize.clear()
        billing.account.clear()
    return billing


@pytest.fixture
def user(stack: Stack) -> Iterator[Callable[..., sip.UdpUser]]:
    made: list[sip.UdpUser] = []

    def make(name: str, domain: str = ENV1, password: str | None = None,
             **kwargs: object) -> sip.UdpUser:
        secret = password if password is not None else PASSWORDS[(name, domain)]
        client = sip.UdpUser(name, domain, secret, ("127.0.0.1", stack.sip_port),
                             **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
