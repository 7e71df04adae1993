"""The full live stack: Kamailio + the real imsim billing service, handbook scenario.

Live results must equal the model's: the same SIP code and reason, the same xDRs
(tariff, rate code, units, unit price, amount) as `imsim.rules.decide` computes for the
same message at the same moment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from imsim.model import scenario
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Message
from lab import accounting, load, provision, sip
from lab.stack import Stack
from lab.xdr_client import XdrClient
from tests.lab.billing_fixtures import (
    ALICE,
    BOB,
    CAROL,
    DOMAIN,
    HANDBOOK,
    free_tcp_port,
    require_kamailio,
    wait_listening,
)
from tests.lab.fake_billing import free_port

pytestmark = pytest.mark.lab

LOADED = scenario.load(HANDBOOK)
ENV = LOADED.environments[0]
PASSWORDS = {user: password for user, _, password in provision.subscribers(LOADED)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    require_kamailio()
    folder = tmp_path_factory.mktemp("live-billing") / "run"
    billing_port = free_tcp_port()
    lab = Stack(folder, sip_port=free_port(), billing_port=billing_port,
                billing=provision.billing_command(HANDBOOK, billing_port,
                                                  folder / "xdr.sqlite"))
    try:
        lab.up(provision.subscribers(LOADED))
        yield lab
    finally:
        lab.down()


@pytest.fixture
def user(stack):
    made: list[sip.UdpUser] = []

    def make(name: str) -> sip.UdpUser:
        made.append(sip.UdpUser(name, DOMAIN, PASSWORDS[name], ("127.0.0.1", stack.sip_port)))
        return made[-1]

    yield make
    for client in made:
        client.close()


def api(stack: Stack) -> XdrClient:
    import json

    secret = json.loads((stack.dir / "billing_api.secret").read_text())
    return XdrClient(f"http://127.0.0.1:{stack.billing_port}", secret["login"],
                     secret["password"])


def billed(stack: Stack, msg_id: str, seconds: float = 3.0) -> list:
    deadline = time.monotonic() + seconds
    while True:
        rows = [x for x in api(stack).xdrs() if x.msg_id == msg_id]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def modelled(xdr, sender: str, to: str, length: int) -> list[tuple]:
    """The model's xDRs for the same message at the moment the lab billed it."""
    engine, ledger = BillingEngine(ENV), Ledger.of(ENV)
    message = Message(xdr.msg_id, sender, to, DOMAIN, xdr.connect_time, length, xdr.call_id)
    decision = engine.authorize(message, ledger)
    return [key(x) for x in engine.account(message, decision, 200, "OK", ledger)]


def key(xdr) -> tuple:
    return (xdr.direction, xdr.account_id, xdr.CLI, xdr.CLD, xdr.tariff, xdr.rate_code,
            xdr.charged_quantity, xdr.unit_price, xdr.charged_amount, xdr.currency,
            xdr.msg_id, xdr.call_id)


def serving(client: sip.UdpUser, seconds: float = 1.5) -> threading.Thread:
    thread = threading.Thread(target=client.serve, args=(seconds,), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("sender, to_user, recipient, body", [
    (ALICE, BOB, BOB, "Hello Bob"),
    (BOB, "5551230001", ALICE, "Hi Alice"),  # national number, E.164-translated
])
def test_message_is_relayed_and_billed_as_the_model_predicts(stack, user, sender, to_user,
                                                             recipient, body):
    msg_id = f"live-{sender}-{to_user}"
    source, target = user(sender), user(recipient)
    assert target.register().code == 200
    listener = serving(target)
    reply = source.message(to_user, body, msg_id=msg_id)
    listener.join()
    assert (reply.code, reply.reason) == (200, "OK")
    assert [r.body for r in target.received if r.method == "MESSAGE"] == [body]
    rows = billed(stack, msg_id)
    assert [key(x) for x in rows] == modelled(rows[0], sender, to_user, len(body.encode()))
    assert rows[0].rate_code == "1555" and rows[0].charged_amount > 0
    answered = [r for r in accounting.read(stack.acc_dir)
                if r["msg_id"] == msg_id and r["sip_code"] == "200"]
    assert [r["call_id"] for r in answered] == [rows[0].call_id]


def test_voice_only_account_gets_the_step_8_refusal(stack, user):
    expected = BillingEngine(ENV).authorize(
        Message("m4", CAROL, ALICE, DOMAIN, LOADED.start, 18, "c"), Ledger.of(ENV))
    assert user(ALICE).register().code == 200
    reply = user(CAROL).message(ALICE, "Voice-only product", msg_id="live-carol")
    assert (reply.code, reply.reason) == (expected.code, expected.reason) == \
        (403, "Forbidden (product Voice only does not include Messaging)")
    assert billed(stack, "live-carol", seconds=0.3) == []


def test_a_message_sent_by_sipp_is_billed(stack, user, tmp_path):
    receiver_port = free_port()
    receiver = subprocess.Popen(load.receiver_argv(receiver_port), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    bob = user(BOB)
    try:
        contact = f"<sip:{BOB}@127.0.0.1:{receiver_port}>"
        assert bob.request("REGISTER", f"sip:{DOMAIN}", to=bob.aor,
                           extra={"Contact": contact, "Expires": "60"}).code == 200
        done = subprocess.run(
            load.sender_argv(("127.0.0.1", stack.sip_port), (ALICE, DOMAIN, PASSWORDS[ALICE]),
                             BOB, calls=20, rate=200, prefix="sipp-live", trace_dir=tmp_path),
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout[-2000:]
    finally:
        receiver.terminate()
        receiver.wait(timeout=5)
        bob.register(expires=0)
    time.sleep(0.2)
    customer = [x for x in api(stack).xdrs(account_id=ALICE) if x.msg_id.startswith("sipp-live-")]
    assert sorted(x.msg_id for x in customer) == sorted(f"sipp-live-{n}" for n in range(1, 21))
    answered = {r["call_id"] for r in accounting.read(stack.acc_dir)
                if r["msg_id"].startswith("sipp-live-") and r["sip_code"] == "200"}
    assert {x.call_id for x in customer} == answered


def test_billing_down_fails_closed_then_recovers(stack, user):
    """Runs last: stops the stack's billing service, then starts one of its own."""
    alice, bob = user(ALICE), user(BOB)
    assert bob.register().code == 200
    os.killpg(stack.status().billing_pid, signal.SIGTERM)
    time.sleep(0.3)
    listener = serving(bob, 1.0)
    reply = alice.message(BOB, "while down", msg_id="live-down")
    listener.join()
    assert (reply.code, reply.reason) == (503, "Billing unavailable")
    assert not [r for r in bob.received if r.method == "MESSAGE"]
    argv = provision.billing_command(HANDBOOK, stack.billing_port, stack.dir / "xdr.sqlite")
    restarted = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        wait_listening(stack.billing_port)
        listener = serving(bob, 1.5)
        assert alice.message(BOB, "back again", msg_id="live-back").code == 200
        listener.join()
        assert len(billed(stack, "live-back")) == 2 and billed(stack, "live-down", 0.1) == []
    finally:
        restarted.terminate()
        restarted.wait(timeout=5)
