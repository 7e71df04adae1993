"""Driver plans without pjsua2: scenario -> identities and messages, per-process split,
URI escaping, the message join and reading records of an aborted run."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from imsim.model.scenario import load
from lab import driver, plan

PROXY = ("127.0.0.1", 5060, "udp")
DOMAIN = "sip.example.com"


def test_handbook_scenario_becomes_a_plan():
    built = plan.from_scenario(load(ROOT / "scenarios" / "handbook.yaml"), PROXY, speed=10)
    assert [(i.user, i.domain, i.buddies) for i in built.identities] == [
        ("15551230001", DOMAIN, ("15551230002", "15551230003")),
        ("15551230002", DOMAIN, ("15551230001",)),
        ("15551230003", DOMAIN, ("15551230001",))]
    assert [(m.msg_id, m.at, m.sender, m.to_uri) for m in built.messages][:3] == [
        ("m1", 10.0, "15551230001", f"sip:15551230002@{DOMAIN}"),
        ("m2", 20.0, "15551230002", f"sip:+1%20(555)%20123-0001@{DOMAIN}"),
        ("m3", 30.0, "15551230001", f"sip:5551230003@{DOMAIN}")]
    assert built.wall_offset(50) == 5.0 and built.timeout == 65.0


def test_escape_user_keeps_rfc3261_user_characters():
    assert plan.escape_user("+1 (555) 123-0001") == "+1%20(555)%20123-0001"
    assert plan.escape_user("a@b<c>é") == "a%40b%3Cc%3E%C3%A9"
    assert plan.target_uri("bob@other.test", DOMAIN) == "sip:bob@other.test"


def test_a_message_with_its_own_password_is_sent_by_a_send_only_identity():
    built = plan.build([("15551230001", DOMAIN, "good")],
                       [{"id": "w", "at": 1, "from": "15551230001", "to": "2", "body": "hi",
                         "password": "bad"}, {"at": 2, "from": "15551230001", "to": "3",
                                              "length": 4}], PROXY)
    assert [(i.password, i.register) for i in built.identities] == [
        ("good", True), ("bad", False)]
    assert [(m.msg_id, m.password, m.body) for m in built.messages] == [
        ("w", "bad", "hi"), ("1", "good", "xxxx")]


def test_split_keeps_each_message_with_its_sender_and_respects_pjsua_limits():
    accounts = [(str(15551230000 + n), DOMAIN, "pw") for n in range(20)]
    script = [{"id": f"m{n}", "at": n, "from": accounts[n][0], "to": "1"} for n in range(20)]
    parts = plan.split(plan.build(accounts, script, PROXY), processes=2)
    assert [len(p.identities) for p in parts] == [7, 7, 6]
    for part in parts:
        users = {i.user for i in part.identities}
        assert {m.sender for m in part.messages} == users
    assert [p.process for p in parts] == [0, 1, 2]
    assert len(plan.split(plan.build(accounts[:2], [], PROXY), processes=5)) == 2


def test_a_domain_with_watchers_has_one_identity_per_process():
    """pjsua subscribes from the first account of the buddy's domain in a process: the
    handbook's three watchers of one domain need three processes, one each."""
    parts = plan.split(plan.from_scenario(load(ROOT / "scenarios" / "handbook.yaml"), PROXY))
    assert [[i.user for i in p.identities] for p in parts] == \
        [["15551230001"], ["15551230002"], ["15551230003"]]
    other = [("15551240001", "other.test", "pw"), ("15551240002", "other.test", "pw")]
    mixed = plan.split(plan.build([("15551230001", DOMAIN, "pw", ["15551230002"]),
                                   ("15551230002", DOMAIN, "pw"), *other], [], PROXY))
    for part in mixed:
        domains = [i.domain for i in part.identities]
        assert domains.count(DOMAIN) <= 1


def test_a_plan_pjsua_would_abort_on_is_refused():
    crowded = plan.build([(str(15551230000 + n), DOMAIN, "pw") for n in range(9)], [], PROXY)
    with pytest.raises(plan.PlanError, match="pjsua2 allows 8"):
        plan.check(crowded)
    many = plan.Identity("15551230001", DOMAIN, "pw", buddies=tuple(map(str, range(300))))
    with pytest.raises(plan.PlanError, match="buddies"):
        plan.check(plan.build([many], [], PROXY))


def test_plan_round_trips_through_json(tmp_path):
    built = plan.build([plan.Identity("15551230001", DOMAIN, "pw", buddies=("2",),
                                      offline_at=3.0)],
                       [{"id": "a", "at": 1.5, "from": "15551230001", "to": "2"}], PROXY,
                       speed=2, max_in_flight=5)
    assert plan.read(built.write(tmp_path / "plan.json")) == built


def test_messages_join_sender_answer_and_receipt_and_survive_a_torn_file(tmp_path):
    lines = [
        {"kind": "sent", "wall": 1.0, "msg_id": "a", "from": "1", "to": "2", "domain": "d",
         "sent_at": 1.0, "sent_t": 0.0},
        {"kind": "received", "wall": 1.2, "msg_id": "a", "delivered_at": 1.2,
         "delivered_t": 0.2},
        {"kind": "message", "wall": 1.3, "msg_id": "a", "from": "1", "to": "2",
         "domain": "d", "sent_at": 1.0, "sent_t": 0.0, "code": 200, "reason": "OK",
         "answered_at": 1.3},
        {"kind": "sent", "wall": 2.0, "msg_id": "b", "from": "1", "to": "3", "domain": "d",
         "sent_at": 2.0, "sent_t": 1.0},
    ]
    path = tmp_path / "records-0.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "mess')
    records = driver.read_records([path, tmp_path / "missing.jsonl"])
    assert len(records) == 4
    rows = driver.messages(records)
    assert [(r["msg_id"], r["code"], r["delivered_t"], r["latency"]) for r in rows] == [
        ("a", 200, 0.2, pytest.approx(0.2)), ("b", None, None, None)]
