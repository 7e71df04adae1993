"""The pjsua2 driver against the real Kamailio with the test authorizer."""

from __future__ import annotations

import time

import driver_fixtures
import pytest
from conftest import ENV1

from lab import driver, plan

pytestmark = pytest.mark.lab
billing, handbook, proxy = (driver_fixtures.billing, driver_fixtures.handbook,
                            driver_fixtures.proxy)  # this module's fixtures

ALICE = ("15551230001", ENV1, "alice-secret")
BOB = ("15551230002", ENV1, "bob-secret")


def of(records, kind, **match):
    return [r for r in records if r["kind"] == kind
            and all(r.get(k) == v for k, v in match.items())]


def test_handbook_script_is_played_and_delivered(handbook, proxy, fresh, tmp_path):
    records = driver.play(handbook, proxy, speed=25, out_dir=tmp_path)
    assert sorted((r["user"], r["code"]) for r in of(records, "register", expires=3600)) == [
        ("15551230001", 200), ("15551230002", 200), ("15551230003", 200)]
    rows = {row["msg_id"]: row for row in driver.messages(records)}
    assert [(m, rows[m]["code"]) for m in sorted(rows)] == [
        ("m1", 200), ("m2", 200), ("m3", 200), ("m4", 200), ("m5", 480)]
    for msg_id in ("m1", "m2", "m3", "m4"):
        assert rows[msg_id]["delivered_at"] is not None
    assert rows["m5"]["delivered_at"] is None
    received = {r["msg_id"]: r["to"] for r in of(records, "received")}
    assert received == {"m1": "15551230002", "m2": "15551230001", "m3": "15551230003",
                        "m4": "15551230001"}
    scripted = {m.id: m.at for m in handbook.traffic.script}
    assert all(abs(rows[m]["sent_t"] - scripted[m]) < 1.0 for m in rows)
    assert [a["msg_id"] for a in fresh.authorize] == ["m1", "m2", "m3", "m4", "m5"]


def test_presence_online_then_offline_reaches_the_watcher(proxy, tmp_path):
    alice = plan.Identity(*ALICE, buddies=("15551230002",))
    bob = plan.Identity(*BOB, online_at=0.3, offline_at=0.9)
    script = [{"id": "p-on", "at": 0.6, "from": ALICE[0], "to": BOB[0], "body": "there?"},
              {"id": "p-off", "at": 1.2, "from": ALICE[0], "to": BOB[0], "body": "gone?"}]
    records = driver.run_driver([alice, bob], script, proxy, speed=1,
                                out_path=tmp_path / "records.jsonl", timeout=20)
    seen = [(r["status"], r["t"]) for r in of(records, "presence", watcher=ALICE[0])
            if r["t"] is not None]
    statuses = [status for status, _ in seen]
    assert "online" in statuses and "offline" in statuses[statuses.index("online"):]
    online_t = next(t for status, t in seen if status == "online")
    offline_t = next(t for status, t in seen[statuses.index("online"):] if status == "offline")
    assert 0.3 <= online_t < 0.6 and 0.9 <= offline_t < 1.2
    rows = {row["msg_id"]: row for row in driver.messages(records)}
    assert (rows["p-on"]["code"], rows["p-on"]["delivered_at"] is not None) == (200, True)
    assert (rows["p-off"]["code"], rows["p-off"]["reason"]) == (
        480, "Temporarily Unavailable (recipient not registered)")


def test_wrong_password_is_refused_and_recorded(proxy, tmp_path):
    started = time.monotonic()
    records = driver.run_driver([(ALICE[0], ENV1, "wrong")],
                                [{"id": "w1", "at": 0, "from": ALICE[0], "to": BOB[0],
                                  "body": "hi"}], proxy, out_path=tmp_path / "r.jsonl")
    assert [(r["code"], r["reason"]) for r in of(records, "register")] == [
        (403, "Forbidden (bad credentials)")]
    assert [(r["msg_id"], r["code"]) for r in of(records, "message")] == [("w1", 403)]
    assert [r["detail"] for r in of(records, "run", event="exit_code")] == [0]
    assert time.monotonic() - started < 10


def test_split_across_processes_delivers_across_them(proxy, fresh, tmp_path):
    script = [{"id": f"x{n}", "at": n * 0.05, "from": sender[0], "to": to[0], "body": f"#{n}"}
              for n, (sender, to) in enumerate([(ALICE, BOB), (BOB, ALICE)] * 5)]
    records = driver.run_driver([ALICE, BOB], script, proxy, speed=1, processes=2,
                                out_path=tmp_path / "records.jsonl", timeout=20)
    home = {r["user"]: r["proc"] for r in of(records, "register", expires=3600)}
    assert home[ALICE[0]] != home[BOB[0]]
    rows = driver.messages(records)
    assert sorted(r["msg_id"] for r in rows) == sorted(f"x{n}" for n in range(10))
    assert {(r["code"], r["delivered_at"] is not None) for r in rows} == {(200, True)}
    for received in of(records, "received"):
        assert received["proc"] == home[received["to"]] != home[received["from"]]
    assert len(fresh.authorize) == 10


def test_a_run_cut_short_by_its_timeout_keeps_what_it_recorded(proxy, tmp_path):
    started = time.monotonic()
    script = [{"id": "early", "at": 0.1, "from": ALICE[0], "to": BOB[0], "body": "now"},
              {"id": "late", "at": 100, "from": ALICE[0], "to": BOB[0], "body": "never"}]
    records = driver.run_driver([ALICE, BOB], script, proxy, speed=1, timeout=3,
                                out_path=tmp_path / "records.jsonl")
    assert time.monotonic() - started < 10
    assert [(r["msg_id"], r["code"]) for r in driver.messages(records)] == [("early", 200)]
    assert of(records, "run", event="timeout")
    assert [r["detail"] for r in of(records, "run", event="exit_code")] == [0]
    assert driver.read_records([tmp_path / "records.jsonl"]) == records
