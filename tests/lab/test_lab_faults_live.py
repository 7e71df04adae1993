"""Faults in the middle of a live run: the billing service and Kamailio restarted while
pjsua2 clients play a script through the real stack (Kamailio + imsim billing service).

- billing service down: Kamailio answers 503 "Billing unavailable" (fail closed); once it
  is back, every 2xx in Kamailio's accounting has exactly one customer xDR, none is
  doubled, nothing was delivered unbilled (an /account that failed is resent by Kamailio);
- Kamailio down: the clients' messages end in 408 after the plan's answer_timeout instead
  of hanging, the clients see the restart (OPTIONS boot id) and register again, later
  messages are delivered, and the run's gap names what failed.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import sqlite3
import threading
import time
from contextlib import closing

import pytest

from imsim.model import scenario
from lab import accounting, driver, gap, provision, sip
from lab import plan as plans
from lab.stack import Stack
from tests.lab.billing_fixtures import (
    ALICE,
    BOB,
    free_tcp_port,
    generous_scenario,
    require_kamailio,
)
from tests.lab.fake_billing import free_port

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    require_kamailio()
    folder = tmp_path_factory.mktemp("faults")
    path = generous_scenario(folder)
    billing_port = free_tcp_port()
    stack = Stack(folder / "run", sip_port=free_port(), billing_port=billing_port,
                  billing=provision.billing_command(path, billing_port,
                                                    folder / "run" / "xdr.sqlite"))
    subscribers = provision.subscribers(scenario.load(path))
    try:
        stack.up(subscribers)
        yield stack, {user: (user, domain, pw) for user, domain, pw in subscribers}, path
    finally:
        stack.down()


def script_plan(stack: Stack, accounts: dict, prefix: str, count: int, spacing: float,
                **options: object) -> plans.DriverPlan:
    """Alice sends `count` messages to Bob, one every `spacing` seconds."""
    script = [{"id": f"{prefix}{n}", "at": n * spacing, "from": ALICE, "to": BOB,
               "body": f"#{n}"} for n in range(count)]
    made = plans.build([accounts[ALICE], accounts[BOB]], script,
                       ("127.0.0.1", stack.sip_port, "udp"), speed=1, timeout=40)
    return dataclasses.replace(made, **options)  # type: ignore[arg-type]


def later(seconds: float, action) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def audit(stack: Stack, prefix: str) -> dict:
    """Kamailio's 2xx MESSAGE lines against the customer xDRs, by Call-ID."""
    answered = collections.Counter(
        row["call_id"] for row in accounting.read(stack.acc_dir)
        if row["msg_id"].startswith(prefix) and row["sip_code"].startswith("2"))
    with closing(sqlite3.connect(stack.dir / "xdr.sqlite")) as conn:
        billed = collections.Counter(call_id for (call_id,) in conn.execute(
            "SELECT call_id FROM xdr WHERE direction = 'outgoing' AND msg_id LIKE ?",
            (prefix + "%",)))
    return {"answered": sum(answered.values()), "billed": sum(billed.values()),
            "lost": sorted(set(answered) - set(billed)),
            "orphans": sorted(set(billed) - set(answered)),
            "doubled": sorted(c for c, n in billed.items() if n > 1)}


def settled(stack: Stack, prefix: str, seconds: float = 6.0) -> dict:
    """The audit once nothing is lost (Kamailio resends spooled /account each second)."""
    deadline = time.monotonic() + seconds
    while (found := audit(stack, prefix))["lost"] and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def billed_msg_ids(stack: Stack, prefix: str) -> set[str]:
    with closing(sqlite3.connect(stack.dir / "xdr.sqlite")) as conn:
        return {m for (m,) in conn.execute("SELECT msg_id FROM xdr WHERE direction = "
                                           "'outgoing' AND msg_id LIKE ?", (prefix + "%",))}


def test_billing_restart_mid_run_fails_closed_then_loses_nothing(lab, tmp_path):
    stack, accounts, path = lab
    argv = provision.billing_command(path, stack.billing_port, stack.dir / "xdr.sqlite")
    outage: dict[str, float] = {}

    def crash_and_restart() -> None:
        outage["down"] = time.time()
        os.killpg(stack.status().billing_pid, signal.SIGKILL)  # a crash, not a goodbye
        time.sleep(0.8)
        outage["restarting"] = time.time()
        stack.restart_billing(argv)  # returns once the new service answers
        outage["up"] = time.time()

    started = time.monotonic()
    thread = later(1.0, crash_and_restart)
    # 6 s of messages: the restart (about 1 s here, more on a busy machine) ends well
    # before the last ones, whatever the machine's speed
    records = driver.run_plan(script_plan(stack, accounts, "b", 240, 0.025), tmp_path)
    thread.join(timeout=15)
    assert time.monotonic() - started < 30
    rows = driver.messages(records)
    codes = collections.Counter((r["code"], r["reason"]) for r in rows)
    assert set(codes) <= {(200, "OK"), (503, "Billing unavailable")}, codes
    # judged by when each message was sent, not by how many: a slow restart is not a fault
    margin = 0.2  # a message in flight as the service dies or comes back may go either way
    before = [r for r in rows if r["sent_at"] < outage["down"] - margin]
    during = [r for r in rows if outage["down"] + margin < r["sent_at"] < outage["restarting"]]
    after = [r for r in rows if r["sent_at"] > outage["up"] + margin]
    assert before and during and after, (len(before), len(during), len(after), outage)
    assert {r["code"] for r in before} == {200}
    assert {r["code"] for r in during} == {503}  # fails closed: nothing sent unbilled
    assert {r["code"] for r in after} == {200}  # back in service
    found = settled(stack, "b")
    assert (found["lost"], found["orphans"], found["doubled"]) == ([], [], [])
    assert found["answered"] == found["billed"] == codes[(200, "OK")]
    received = {r["msg_id"] for r in records if r["kind"] == "received"}
    assert received <= billed_msg_ids(stack, "b")  # nothing delivered unbilled
    refused = {r["msg_id"] for r in rows if r["code"] == 503}
    assert not refused & received


def test_kamailio_restart_mid_run_reports_the_gap_and_clients_register_again(lab, tmp_path):
    stack, accounts, _ = lab
    started = time.monotonic()
    # down longer than a client waits for an answer: the messages sent early in the
    # outage time out (408) whatever the race between pjsip's retransmissions and the
    # clients registering again, which alone (480s) can make a gap of only 2 messages
    outage = later(1.0, lambda: stack.restart_kamailio(pause=2.5))
    made = script_plan(stack, accounts, "k", 100, 0.05, answer_timeout=2.0,
                       watch_interval=0.2)
    records = driver.run_plan(made, tmp_path)
    outage.join(timeout=20)
    assert time.monotonic() - started < 30  # bounded: nothing waits for pjsip's 32 s
    rows = sorted(driver.messages(records), key=lambda r: r["sent_at"])
    assert len(rows) == 100 and all(isinstance(r["code"], int) for r in rows)
    assert rows[0]["code"] == rows[-1]["code"] == 200
    assert {r["event"] for r in records if r["kind"] == "proxy"} >= {"restarted"}
    registered = [r for r in records if r["kind"] == "register" and r["code"] == 200
                  and r["expires"] > 0]
    assert collections.Counter(r["user"] for r in registered) >= \
        collections.Counter({ALICE: 2, BOB: 2})
    found = gap.find(records, {r["msg_id"]: 200 for r in rows})
    assert found is not None and found["messages"] >= 5
    failed = {g["msg_id"] for g in found["failed"]}
    assert failed == {r["msg_id"] for r in rows if r["code"] != 200}
    assert set(found["codes"]) <= {"408", "480", "503"}, found["codes"]
    assert "restarted" in (gap.describe(found) or "")
    time.sleep(0.3)
    assert settled(stack, "k")["lost"] == []


def test_a_restart_under_load_loses_no_xdr_of_a_message_answered_200(lab, tmp_path):
    """At 200 messages a second, some 200 is always just relayed, its /account body still
    queued in Kamailio's memory: stopping it then lost that xDR in 2 runs of 4. The stack
    now has Kamailio refuse new MESSAGEs (503) and post what it owes before it stops."""
    stack, accounts, _ = lab
    outage = later(0.7, lambda: stack.restart_kamailio(pause=0.5))
    made = script_plan(stack, accounts, "u", 300, 0.005, answer_timeout=2.0,
                       watch_interval=0.2)
    records = driver.run_plan(made, tmp_path)
    outage.join(timeout=20)
    rows = driver.messages(records)
    assert {r["code"] for r in rows} <= {200, 408, 480, 503}
    refused = [r["reason"] for r in rows if r["code"] == 503]
    assert set(refused) <= {"Service Unavailable (proxy restarting)"}, refused
    found = settled(stack, "u")
    assert (found["lost"], found["orphans"], found["doubled"]) == ([], [], [])
    assert found["answered"] == sum(r["code"] == 200 for r in rows) > 100


def test_an_account_the_billing_service_missed_is_resent_until_stored(lab):
    """Authorized, then the billing service dies before the recipient's 200: Kamailio
    spools the /accounts batch and resends it each second; the restarted service bills
    it once."""
    stack, accounts, path = lab
    alice = sip.UdpUser(*accounts[ALICE], proxy=("127.0.0.1", stack.sip_port), timeout=5)
    bob = sip.UdpUser(*accounts[BOB], proxy=("127.0.0.1", stack.sip_port))
    try:
        assert bob.register().code == 200
        answers: list[sip.Response] = []
        sender = threading.Thread(target=lambda: answers.append(
            alice.message(BOB, "just in time", msg_id="spool-1")), daemon=True)
        sender.start()
        bob.sock.settimeout(5)
        request = sip.parse(bob.sock.recvfrom(65535)[0])
        assert isinstance(request, sip.Request) and request.method == "MESSAGE"
        os.killpg(stack.status().billing_pid, signal.SIGKILL)
        bob._answer(request)  # the 200 reaches Kamailio while billing is down
        sender.join(timeout=5)
        assert [a.code for a in answers] == [200]
        assert billed_msg_ids(stack, "spool-") == set()
        stack.restart_billing(provision.billing_command(path, stack.billing_port,
                                                        stack.dir / "xdr.sqlite"))
        found = settled(stack, "spool-")
        assert (found["answered"], found["billed"], found["lost"]) == (1, 1, [])
        assert "billing /accounts retried" in stack.log_path.read_text()
    finally:
        alice.close()
        bob.close()
