"""The live stack end to end: real Kamailio on loopback, test authorizer, SIP clients."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import ACCOUNTS, ENV1, ENV2
from fake_billing import free_port

from lab import accounting, load, sip
from lab.stack import Stack

pytestmark = pytest.mark.lab

PIDF = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:{user}@{domain}">'
    '<tuple id="t1"><status><basic>open</basic></status></tuple></presence>'
)


def serving(client: sip.UdpUser, seconds: float = 1.5) -> threading.Thread:
    thread = threading.Thread(target=client.serve, args=(seconds,), daemon=True)
    thread.start()
    return thread


def acc_lines(stack: Stack) -> list[dict[str, str]]:
    return accounting.read(stack.acc_dir)


def wait_for(predicate, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_options_liveness(stack):
    assert sip.options_ping("127.0.0.1", stack.sip_port) == 200
    assert stack.status().answering


def test_up_again_reports_the_running_stack(stack):
    before = stack.status()
    again = Stack(stack.dir, sip_port=stack.sip_port, billing_port=stack.billing_port)
    assert again.up().kamailio_pid == before.kamailio_pid


def test_register_with_digest_auth(user):
    assert user("15551230001").register().code == 200


def test_register_wrong_password_is_forbidden(user):
    reply = user("15551230001", password="wrong").register()
    assert (reply.code, reply.reason) == (403, "Forbidden (bad credentials)")


def test_unauthenticated_message_is_challenged_and_never_relayed(user, fresh):
    alice, bob = user("15551230001"), user("15551230002")
    assert bob.register().code == 200
    listener = serving(bob, 1.0)
    assert alice.message("15551230002", "hi", msg_id="noauth", auth=False).code == 407
    listener.join()
    assert bob.received == []
    assert fresh.authorize == []


def test_message_with_wrong_password_is_forbidden(user, fresh):
    assert user("15551230001", password="wrong").message("15551230002", "hi").code == 403
    assert fresh.authorize == []


def test_sending_as_another_account_is_forbidden(user, fresh):
    mallory = user("15551230002", password="alice-secret", auth_user="15551230001")
    reply = mallory.message("15551230003", "hi")
    assert (reply.code, reply.reason) == (403, "Forbidden (auth user mismatch)")
    assert fresh.authorize == []


def test_message_between_registered_users_is_billed_and_relayed(stack, user, fresh):
    alice, bob = user("15551230001"), user("15551230002")
    assert alice.register().code == 200 and bob.register().code == 200
    listener = serving(bob)
    reply = alice.message("15551230002", "hello", msg_id="m-relay-1")
    listener.join()
    assert reply.code == 200
    assert [r.body for r in bob.received if r.method == "MESSAGE"] == ["hello"]
    assert [(a["msg_id"], a["from_user"], a["to_user"], a["length"])
            for a in fresh.authorize] == [("m-relay-1", "15551230001", "15551230002", 5)]
    assert wait_for(lambda: len(fresh.account) == 1)
    assert (fresh.account[0]["msg_id"], fresh.account[0]["code"]) == ("m-relay-1", 200)
    rows = [row for row in acc_lines(stack) if row["msg_id"] == "m-relay-1"]
    assert [(r["method"], r["sip_code"], r["sip_reason"], r["from_user"], r["to_user"])
            for r in rows] == [
        ("MESSAGE", "407", "Proxy Authentication Required", "15551230001", "15551230002"),
        ("MESSAGE", "200", "OK", "15551230001", "15551230002")]


def test_message_to_unregistered_user_is_480(stack, user, fresh):
    reply = user("15551230001").message("15551230003", "hello", msg_id="m-480")
    assert (reply.code, reply.reason) == (480, "Temporarily Unavailable (recipient not registered)")
    assert wait_for(lambda: [a["code"] for a in fresh.account] == [480])  # batched, soon
    assert any(r["sip_code"] == "480" and r["msg_id"] == "m-480" for r in acc_lines(stack))


def test_billing_refusal_is_answered_with_its_code(stack, user, fresh):
    reply = user("15551230001").message("95550000000", "hello", msg_id="m-refused")
    assert (reply.code, reply.reason) == (403, "Forbidden (no rate for destination)")
    time.sleep(0.2)  # twenty of Kamailio's /accounts flushes: none carries it
    assert fresh.account == []
    assert any(r["sip_code"] == "403" and r["msg_id"] == "m-refused" for r in acc_lines(stack))


def test_the_billing_service_decides_every_recipient_domain(user, fresh):
    """lab/CONTRACT.md: Kamailio keeps no served-domain list; billing refuses."""
    reply = user("15551230001").message("15551230002", "hi", to_domain="elsewhere.invalid")
    assert (reply.code, reply.reason) == \
        (403, "Forbidden (no messaging service policy matches domain elsewhere.invalid)")
    assert [a["to_domain"] for a in fresh.authorize] == ["elsewhere.invalid"]


def test_message_to_an_alias_domain_reaches_the_account_at_its_own_domain(user, fresh):
    """The recipient registered at env1 gets a message sent to an alias domain: the
    lookup is at the domain the billing service answers, not the one written."""
    bob = user("15551230002")
    assert bob.register().code == 200
    listener = serving(bob)
    reply = user("15551230001").message("15551230002", "via alias", msg_id="m-alias",
                                        to_domain="alias.imsim.test")
    listener.join()
    assert reply.code == 200
    assert [r.body for r in bob.received if r.method == "MESSAGE"] == ["via alias"]
    assert [a["to_domain"] for a in fresh.authorize] == ["alias.imsim.test"]


def test_sipp_sender_and_receiver_through_auth_and_billing(stack, user, fresh, tmp_path):
    uas_port = free_port()
    receiver = subprocess.Popen(load.receiver_argv(uas_port), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        contact = f"<sip:15551230002@127.0.0.1:{uas_port}>"
        bob = user("15551230002")
        assert bob.request("REGISTER", f"sip:{ENV1}", to=bob.aor,
                           extra={"Contact": contact, "Expires": "60"}).code == 200
        done = subprocess.run(
            load.sender_argv(("127.0.0.1", stack.sip_port), ACCOUNTS[0], "15551230002",
                             calls=20, rate=100, prefix="sipp-t", trace_dir=tmp_path),
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout[-2000:]
    finally:
        receiver.terminate()
        receiver.wait(timeout=5)
        bob.register(expires=0)
    assert wait_for(lambda: len(fresh.account) == 20)
    assert {a["code"] for a in fresh.account} == {200}
    billed = {r["msg_id"] for r in acc_lines(stack) if r["sip_code"] == "200"}
    assert {f"sipp-t-{n}" for n in range(1, 21)} <= billed


def test_presence_publish_subscribe_notify(user):
    alice, bob = user("15551230001"), user("15551230002")
    body = PIDF.format(user="15551230001", domain=ENV1)
    published = alice.request("PUBLISH", alice.aor, to=alice.aor, body=body,
                              extra={"Event": "presence", "Expires": "60",
                                     "Content-Type": "application/pidf+xml"})
    assert published.code == 200
    subscribed = bob.request("SUBSCRIBE", alice.aor, to=alice.aor,
                             extra={"Event": "presence", "Expires": "60",
                                    "Accept": "application/pidf+xml",
                                    "Contact": f"<sip:15551230002@127.0.0.1:{bob.port}>"})
    assert subscribed.code in (200, 202)
    notifies = [r for r in bob.serve(1.0) if r.method == "NOTIFY"]
    assert notifies and "<basic>open</basic>" in notifies[-1].body


def test_publishing_someone_elses_presence_is_forbidden(user):
    alice = user("15551230001")
    bob_aor = f"sip:15551230002@{ENV1}"
    reply = alice.request("PUBLISH", bob_aor, to=bob_aor,
                          body=PIDF.format(user="15551230002", domain=ENV1),
                          extra={"Event": "presence", "Content-Type": "application/pidf+xml"})
    assert reply.code == 403


def test_watching_another_environment_is_forbidden(user):
    dave = user("15551240001", domain=ENV2)
    alice_aor = f"sip:15551230001@{ENV1}"
    reply = dave.request("SUBSCRIBE", alice_aor, to=alice_aor,
                         extra={"Event": "presence", "Expires": "60",
                                "Contact": f"<sip:15551240001@127.0.0.1:{dave.port}>"})
    assert reply.code == 403


def test_billing_down_fails_closed_with_503(tmp_path):
    lab = Stack(tmp_path / "run", sip_port=free_port(), billing_port=free_port())
    try:
        lab.up(ACCOUNTS)
        alice = sip.UdpUser("15551230001", ENV1, "alice-secret", ("127.0.0.1", lab.sip_port))
        bob = sip.UdpUser("15551230002", ENV1, "bob-secret", ("127.0.0.1", lab.sip_port))
        try:
            assert bob.register().code == 200
            listener = serving(bob, 1.0)
            reply = alice.message("15551230002", "hi", msg_id="m-503")
            listener.join()
        finally:
            alice.close()
            bob.close()
        assert (reply.code, reply.reason) == (503, "Billing unavailable")
        assert bob.received == []
        assert any(r["sip_code"] == "503" and r["msg_id"] == "m-503" for r in acc_lines(lab))
    finally:
        lab.down()


def test_down_stops_every_process(tmp_path):
    lab = Stack(tmp_path / "run", sip_port=free_port(), billing_port=free_port())
    pid = lab.up(ACCOUNTS).kamailio_pid
    assert pid and Path(f"/proc/{pid}").exists()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert lab.down() == [pid]
    assert wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in [pid, *children]))
    assert not lab.status().running


def test_reprovisioning_a_running_stack(stack, user):
    added = ("15551250001", "env3.imsim.test", "erin-secret")
    stack.provision([*ACCOUNTS, added])
    try:
        erin = user("15551250001", domain="env3.imsim.test", password="erin-secret")
        assert erin.register().code == 200
        assert erin.message("15551250001", "to myself", msg_id="m-env3").code == 200
    finally:
        stack.provision(ACCOUNTS)
    assert user("15551250001", domain="env3.imsim.test",
                password="erin-secret").register().code == 403
