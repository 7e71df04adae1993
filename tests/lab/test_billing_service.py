"""The billing service over real HTTP (no Kamailio): contract, durability, API, bad input."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import stat
import threading
import time
from contextlib import closing
from decimal import Decimal

import pytest

from imsim.model import scenario
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Message
from tests.lab.billing_fixtures import (
    ALICE,
    BOB,
    CAROL,
    DOMAIN,
    HANDBOOK,
    Service,
    contract,
    post,
    two_environment_scenario,
)

HANDBOOK_ENV = scenario.load(HANDBOOK).environments[0]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    running = Service(tmp_path_factory.mktemp("billing")).start()
    yield running
    running.kill(signal.SIGTERM)


def stored(db, call_id: str) -> list[tuple]:
    """Rows as any other process sees them right now (a fresh connection)."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT direction, account_id, tariff, rate_code, charged_quantity,"
                            " unit_price, charged_amount FROM xdr WHERE call_id = ? "
                            "ORDER BY i_xdr", (call_id,)).fetchall()


def model(call_id: str, sender: str = ALICE, to: str = BOB, length: int = 5):
    """What imsim.rules.decide decides and bills for the same message."""
    engine, ledger = BillingEngine(HANDBOOK_ENV), Ledger.of(HANDBOOK_ENV)
    at = dt.datetime(2026, 1, 5, 9, 0, 1, tzinfo=dt.UTC)
    message = Message("m", sender, to, HANDBOOK_ENV.domain, at, length, call_id)
    decision = engine.authorize(message, ledger)
    return decision, engine.account(message, decision, 200, "OK", ledger)


def test_authorize_answers_the_models_decision(service):
    decision, _ = model("c-auth")
    status, answer = service.post("/authorize", contract("c-auth", to_user="+1 555 123 0002"))
    assert status == 200
    assert answer == {"code": decision.code, "reason": decision.reason, "step": None,
                      "target": BOB, "domain": DOMAIN}


def test_voice_only_account_is_refused_with_the_step_8_reason(service):
    decision, _ = model("c-carol", sender=CAROL, to=ALICE)
    status, answer = service.post("/authorize", contract("c-carol", CAROL, ALICE))
    assert (status, answer["code"], answer["step"]) == (200, 403, 8)
    assert answer["reason"] == decision.reason == \
        "Forbidden (product Voice only does not include Messaging)"


def test_account_stores_the_models_xdrs_before_answering(service):
    _, expected = model("c-bill")
    assert service.post("/authorize", contract("c-bill"))[1]["code"] == 200
    status, answer = service.post("/account", contract("c-bill", code=200, reason="OK"))
    assert (status, answer) == (200, {"xdrs": 2})
    assert stored(service.db, "c-bill") == [
        (x.direction, x.account_id, x.tariff, x.rate_code, x.charged_quantity,
         str(x.unit_price), str(x.charged_amount)) for x in expected]
    assert stored(service.db, "c-bill")[0][:4] == ("outgoing", ALICE, "tariff B", "1555")


def test_account_is_idempotent_per_call_id(service):
    service.post("/authorize", contract("c-twice"))
    first = service.post("/account", contract("c-twice", code=200, reason="OK"))
    again = service.post("/account", contract("c-twice", code=200, reason="OK"))
    assert first == (200, {"xdrs": 2})
    assert again == (200, {"xdrs": 0, "duplicate": True})
    assert [row[0] for row in stored(service.db, "c-twice")] == ["outgoing", "vendor"]


def test_accounts_bills_a_batch_as_account_would_each_body(service):
    """POST /accounts (Kamailio's batched /account): each body accounted once, answered
    in order after COMMIT; a malformed body gets its fault, the others are billed."""
    for call_id in ("c-batch-1", "c-batch-2"):
        assert service.post("/authorize", contract(call_id))[1]["code"] == 200
    done = contract("c-batch-1", code=200, reason="OK")
    batch = [done, contract("c-batch-2", code=480, reason="x"), done, {"code": "200"}, 7]
    status, answer = service.post("/accounts", {"accounts": batch})
    assert status == 200
    assert [r.get("xdrs", r.get("faultcode")) for r in answer["results"]] == \
        [2, 0, 2, "Client.params", "Client.params"]  # the repeat shares the first's write
    _, expected = model("c-batch-1")
    assert stored(service.db, "c-batch-1") == [
        (x.direction, x.account_id, x.tariff, x.rate_code, x.charged_quantity,
         str(x.unit_price), str(x.charged_amount)) for x in expected]
    assert stored(service.db, "c-batch-2") == []
    again = service.post("/accounts", {"accounts": [done]})
    assert again == (200, {"results": [{"xdrs": 0, "duplicate": True}]})


@pytest.mark.parametrize("code", [480, 500, 603])
def test_failed_delivery_writes_no_xdr(service, code):
    call_id = f"c-failed-{code}"
    service.post("/authorize", contract(call_id))
    assert service.post("/account", contract(call_id, code=code, reason="x")) == \
        (200, {"xdrs": 0})
    assert stored(service.db, call_id) == []


def test_concurrent_clients_are_all_billed_once(service):
    def client(worker: int) -> None:
        for n in range(25):
            call_id = f"c-conc-{worker}-{n}"
            assert service.post("/authorize", contract(call_id))[1]["code"] == 200
            assert service.post("/account", contract(call_id, code=200, reason="OK"))[0] == 200

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with closing(sqlite3.connect(service.db)) as conn:
        count, calls = conn.execute("SELECT COUNT(*), COUNT(DISTINCT call_id) FROM xdr "
                                    "WHERE call_id LIKE 'c-conc-%'").fetchone()
    assert (count, calls) == (400, 200)


# -- bad input: 4xx JSON, never a crash ---------------------------------------------------

@pytest.mark.parametrize("path, body, status", [
    ("/authorize", b"{not json", 400),
    ("/authorize", b"[1, 2]", 400),
    ("/authorize", {**contract("c-bad"), "length": "five"}, 400),
    ("/authorize", {**contract("c-bad"), "length": -1}, 400),
    ("/authorize", {**contract("c-bad"), "from_user": None}, 400),
    ("/authorize", {k: v for k, v in contract("c-bad").items() if k != "call_id"}, 400),
    ("/account", contract("c-bad", code="200", reason="OK"), 400),
    ("/account", contract("c-bad", code=99, reason="OK"), 400),
    ("/authorize", b"\xff\xfe\x00garbage", 400),
    ("/accounts", {"accounts": []}, 400),
    ("/accounts", {"accounts": {"call_id": "c-bad"}}, 400),
    ("/accounts", {"accounts": [contract("c-bad", code=200, reason="OK")] * 257}, 400),
    ("/nowhere", {}, 404),
    ("/authorize", b"x" * (64 * 1024 + 1), 413),
])
def test_bad_requests_get_4xx_json(service, path, body, status):
    code, answer = service.post(path, body)
    assert code == status and "faultstring" in answer
    assert service.post("/authorize", contract("c-alive"))[0] == 200


def test_get_is_not_allowed(service):
    assert post(service.port, "/authorize", b"", method="GET")[0] == 405


def test_a_broken_request_line_closes_only_that_connection(service):
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    assert service.post("/authorize", contract("c-alive"))[0] == 200


def test_unknown_sender_domain_is_refused(service):
    answer = service.post("/authorize", contract("c-dom", domain="nowhere.test"))[1]
    assert answer["code"] == 403 and "not a billing environment" in answer["reason"]


# -- the JSON API -------------------------------------------------------------------------

def login(service) -> str:
    user, password = service.credentials()
    status, answer = service.post("/rest/Session/login",
                                  {"params": {"login": user, "password": password}})
    assert status == 200
    return answer["session_id"]


def test_api_needs_a_session(service):
    listing = {"params": {"account_id": ALICE}}
    assert service.post("/rest/Account/get_xdr_list", listing)[0] == 401
    assert service.post("/rest/Account/get_xdr_list", listing,
                        {"Authorization": "Bearer made-up"})[0] == 403
    status, answer = service.post("/rest/Session/login",
                                  {"params": {"login": "admin", "password": "guess"}})
    assert status == 403 and "session_id" not in answer


def test_api_lists_xdrs_with_portabilling_names(service):
    service.post("/authorize", contract("c-api", msg_id="m-api"))
    service.post("/account", contract("c-api", msg_id="m-api", code=200, reason="OK"))
    session = login(service)
    status, answer = service.post("/rest/Account/get_xdr_list",
                                  {"params": {"account_id": ALICE, "limit": 10000}},
                                  {"Authorization": f"Bearer {session}"})
    assert status == 200
    row = next(r for r in answer["xdr_list"] if r["call_id"] == "c-api")
    assert {"i_xdr", "account_id", "CLI", "CLD", "connect_time", "call_id",
            "charged_amount"} <= set(row)
    assert (row["account_id"], row["CLI"], row["CLD"], row["msg_id"], row["charged_amount"]) \
        == (ALICE, ALICE, BOB, "m-api", "0.01")
    assert all(r["account_id"] == ALICE for r in answer["xdr_list"])


def test_api_session_in_the_body_and_paging(service):
    session = login(service)
    body = {"auth_info": {"session_id": session}, "params": {"limit": 1, "offset": 0}}
    first = service.post("/rest/Account/get_xdr_list", body)[1]["xdr_list"]
    body["params"]["offset"] = 1
    second = service.post("/rest/Account/get_xdr_list", body)[1]["xdr_list"]
    assert len(first) == len(second) == 1 and first[0]["i_xdr"] < second[0]["i_xdr"]


@pytest.mark.parametrize("params, status", [
    ({"account_id": "19999999999"}, 404),
    ({"account_id": ["x"]}, 400),
    ({"limit": 0}, 400),
    ({"limit": "10"}, 400),
    ({"offset": -1}, 400),
    ({"from_date": "yesterday"}, 400),
])
def test_api_bad_params_are_4xx(service, params, status):
    session = login(service)
    code, answer = service.post("/rest/Account/get_xdr_list", {"params": params},
                                {"Authorization": f"Bearer {session}"})
    assert code == status and answer["faultstring"]


def test_api_date_range(service):
    session = login(service)
    headers = {"Authorization": f"Bearer {session}"}
    later = {"params": {"from_date": "2030-01-01 00:00:00"}}
    assert service.post("/rest/Account/get_xdr_list", later, headers)[1]["xdr_list"] == []
    window = {"params": {"from_date": "2026-01-05 00:00:00", "to_date": "2026-01-06 00:00:00"}}
    assert service.post("/rest/Account/get_xdr_list", window, headers)[1]["xdr_list"]


def test_secret_is_owner_only_and_never_logged(service):
    assert stat.S_IMODE(service.secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(service.db.stat().st_mode) == 0o600
    _, password = service.credentials()
    login(service)
    assert password not in service.log.read_text()
    assert "alice-secret" not in service.log.read_text()


# -- restarts -----------------------------------------------------------------------------

def test_xdr_survives_a_kill_right_after_the_200(tmp_path):
    service = Service(tmp_path).start()
    try:
        service.post("/authorize", contract("c-kill"))
        assert service.post("/account", contract("c-kill", code=200, reason="OK"))[0] == 200
        service.kill(signal.SIGKILL)
        assert len(stored(service.db, "c-kill")) == 2
        service.start()
        again = service.post("/account", contract("c-kill", code=200, reason="OK"))
        assert again == (200, {"xdrs": 0, "duplicate": True})
        assert len(stored(service.db, "c-kill")) == 2
    finally:
        service.kill()


def test_a_restarted_service_remembers_balances(tmp_path):
    document = HANDBOOK.read_text().replace("balance: 10.00", "balance: 0.02", 1)
    (tmp_path / "poor.yaml").write_text(document)
    service = Service(tmp_path, scenario=tmp_path / "poor.yaml").start()
    try:
        for call_id in ("c-p1", "c-p2"):
            assert service.post("/authorize", contract(call_id))[1]["code"] == 200
            service.post("/account", contract(call_id, code=200, reason="OK"))
        service.kill(signal.SIGKILL)
        service.start()
        answer = service.post("/authorize", contract("c-p3"))[1]
        assert (answer["code"], answer["reason"]) == \
            (403, "Forbidden (insufficient balance or credit)")
    finally:
        service.kill()


def test_account_after_a_restart_without_authorization_is_still_billed(tmp_path):
    service = Service(tmp_path).start()
    try:
        service.post("/authorize", contract("c-lost"))
        service.kill(signal.SIGKILL)
        service.start()
        assert service.post("/account", contract("c-lost", code=200, reason="OK")) == \
            (200, {"xdrs": 2})
        assert stored(service.db, "c-lost")[0][-1] == str(Decimal("0.01"))
    finally:
        service.kill()


def test_the_senders_environment_decides_for_any_recipient_domain(tmp_path):
    """lab/CONTRACT.md: the sender's environment's `%` policy serves the other
    environment's domain too; the recipient is its own account, looked up at its own
    domain; nothing reaches the other environment."""
    service = Service(tmp_path, scenario=two_environment_scenario(tmp_path)).start()
    try:
        crossing = {**contract("c-cross"), "to_domain": "other.example.com"}
        answer = service.post("/authorize", crossing)[1]
        assert (answer["code"], answer["target"], answer["domain"]) == (200, BOB, DOMAIN)
        inside = contract("c-inside", domain="other.example.com")
        answer = service.post("/authorize", inside)[1]
        assert (answer["code"], answer["domain"]) == (200, "other.example.com")
        stranger = contract("c-stranger", domain="nowhere.example.com")
        assert service.post("/authorize", stranger)[1]["code"] == 403
    finally:
        service.kill()


def test_refuses_to_listen_beyond_loopback(tmp_path):
    argv = Service(tmp_path).argv()
    argv[argv.index("--db"):argv.index("--db")] = ["--host", "0.0.0.0"]
    import subprocess

    done = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          env={**os.environ})
    assert done.returncode == 2 and "loopback only" in done.stderr


def test_lab_clock_needs_a_session_and_restarts_the_run(tmp_path):
    """POST /lab/clock: scenario second 0 at `epoch`, balances as provisioned."""
    own = Service(tmp_path).start()
    try:
        clock = {"params": {"epoch": 1000.0, "speed": 50}}
        assert own.post("/lab/clock", clock)[0] == 401
        session = {"Authorization": f"Bearer {login(own)}"}
        assert own.post("/lab/clock", {"params": {"epoch": "soon"}}, session)[0] == 400
        assert own.post("/lab/clock", {"params": {"epoch": 1.0, "speed": 0}}, session)[0] \
            == 400
        assert own.post("/account", contract("c1", code=200, reason="OK"))[0] == 200
        status, answer = own.post("/lab/clock", clock, session)
        assert (status, answer) == (200, {"epoch": 1000.0, "speed": 50.0, "last_xdr": 2})
    finally:
        own.kill()


# -- more faults: unknown accounts, concurrent garbage, a slow client ---------------------

def test_unknown_accounts_are_refused_not_billed(service):
    stranger = service.post("/authorize", contract("c-stranger", sender="19990000000"))[1]
    assert stranger["code"] in (403, 404) and stranger["target"] is None
    nobody = service.post("/authorize", contract("c-nobody", to_user="19990000000"))[1]
    assert nobody["code"] in (403, 404)
    unasked = contract("c-unasked", sender="19990000000", code=200, reason="OK")
    assert service.post("/account", unasked) == (200, {"xdrs": 0})
    assert stored(service.db, "c-stranger") == stored(service.db, "c-unasked") == []


def test_concurrent_garbage_gets_4xx_and_the_service_lives_on(service):
    bodies = [b"{", b"[]", b'{"call_id": 5}', b"\x00" * 100, b"x" * (64 * 1024 + 1),
              json.dumps({**contract("c-g"), "length": "many"}).encode()]
    statuses: list[int] = []

    def client(worker: int) -> None:
        for n in range(12):
            statuses.append(service.post("/authorize" if n % 2 else "/account",
                                         bodies[(worker + n) % len(bodies)])[0])

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(statuses) == 96 and set(statuses) <= {400, 413}
    assert service.process.poll() is None
    assert service.post("/authorize", contract("c-after-garbage"))[1]["code"] == 200


def test_a_slow_client_does_not_hold_up_kamailios_requests(service):
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as slow:
        slow.sendall(b"POST /authorize HTTP/1.1\r\nContent-Length: 500\r\n\r\n{")
        for n in range(5):
            slow.sendall(b" ")  # a byte at a time, the body never completes
            started = time.monotonic()
            assert service.post("/authorize", contract(f"c-beside-slow-{n}"))[1]["code"] == 200
            assert time.monotonic() - started < 0.5
            time.sleep(0.1)


def test_an_authorization_whose_account_never_came_gives_its_hold_back(tmp_path):
    """The hold is the settlement's (`imsim.rules.settle`): found by the message, so a
    stale authorization (expired, or its Call-ID authorized again) releases it."""
    from lab.billing_service import BillingService, ScenarioClock
    from lab.xdr_store import XdrStore

    loaded = scenario.load(HANDBOOK)
    store = XdrStore(tmp_path / "xdrs.db")
    try:
        clock = ScenarioClock(loaded.start, time.time())
        service = BillingService(loaded, store, clock, "qa", "pw")
        ledger = service.envs.ledgers[HANDBOOK_ENV.name]
        alice = f"account:{ALICE}"
        assert service.authorize(contract("c-stale", msg_id="m1")).payload["code"] == 200
        assert ledger.reserved[alice] == Decimal("0.01")
        assert service.authorize(contract("c-stale", msg_id="m2")).payload["code"] == 200
        assert ledger.reserved[alice] == Decimal("0.01")   # the first one's hold went back
        assert service.expire(now=time.monotonic() + 10**6) == 1
        assert ledger.reserved[alice] == 0 and not ledger.holds
        assert ledger.debit[ALICE] == HANDBOOK_ENV.customers[0].accounts[0].balance
    finally:
        store.close()
