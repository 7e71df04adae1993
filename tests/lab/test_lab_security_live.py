"""Nobody let in who should not pass, nothing leaked: the live stack (Kamailio + the imsim
billing service) serving two virtual billing environments (sip.example.com and
other.example.com), started by a real `imsim lab run` whose output is checked too.

sipp is the independent client for the probes (lab/sipp/uac_noauth_*.xml accept only a
407, uac_refused.xml only a 403: any other answer fails sipp's run).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import threading
from contextlib import closing
from pathlib import Path

import pytest

from imsim.model import scenario
from lab import accounting, load, provision, run, sip, targets
from lab.stack import Stack
from tests.lab.billing_fixtures import (
    ALICE,
    BOB,
    CAROL,
    DOMAIN,
    free_tcp_port,
    post,
    require_kamailio,
    two_environment_scenario,
)
from tests.lab.fake_billing import free_port

pytestmark = pytest.mark.lab

OTHER = "other.example.com"
PIDF = ('<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'entity="sip:{user}@{domain}"><tuple id="t1"><status><basic>open</basic></status>'
        '</tuple></presence>')


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A lab run of the two-environment scenario; its stack stays up for the probes."""
    require_kamailio()
    folder = tmp_path_factory.mktemp("security")
    path = two_environment_scenario(folder)
    patch = pytest.MonkeyPatch()
    patch.setenv("IMSIM_LAB_DIR", str(folder / "run"))
    target = folder / "local.yaml"
    target.write_text(f"kind: local\nsip_port: {free_port()}\nbilling_port: {free_tcp_port()}\n")
    try:
        outcome = run.run(path, targets.load(target), 500, folder / "out", echo=lambda _: None)
        stack = Stack(folder / "run")
        stack.sip_port = stack.status().sip_port
        stack.billing_port = stack.status().billing_port
        yield stack, outcome, scenario.load(path)
    finally:
        Stack(folder / "run").down()
        patch.undo()


@pytest.fixture
def user(lab):
    stack, _, loaded = lab
    passwords = {(u, d): p for u, d, p in provision.subscribers(loaded)}
    made: list[sip.UdpUser] = []

    def make(name: str, domain: str = DOMAIN, **kwargs) -> sip.UdpUser:
        kwargs.setdefault("password", passwords[(name, domain)])
        made.append(sip.UdpUser(name, domain, proxy=("127.0.0.1", stack.sip_port), **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()


def listening(client: sip.UdpUser, seconds: float = 1.0) -> threading.Thread:
    thread = threading.Thread(target=client.serve, args=(seconds,), daemon=True)
    thread.start()
    return thread


def billed(stack: Stack, prefix: str) -> list[str]:
    with closing(sqlite3.connect(stack.dir / "xdr.sqlite")) as conn:
        return [m for (m,) in conn.execute("SELECT msg_id FROM xdr WHERE msg_id LIKE ?",
                                           (prefix + "%",))]


def sipp(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("method", ["MESSAGE", "PUBLISH", "SUBSCRIBE"])
def test_sipp_without_credentials_is_only_challenged(lab, user, method):
    stack = lab[0]
    bob = user(BOB)
    assert bob.register().code == 200
    listener = listening(bob, 1.5)
    prefix = f"noauth-{method.lower()}"
    done = sipp(load.probe_argv(("127.0.0.1", stack.sip_port),
                                f"uac_noauth_{method.lower()}.xml", ALICE, DOMAIN, BOB,
                                calls=5, prefix=prefix))
    listener.join()
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-500:]
    assert bob.received == []  # nothing relayed, no NOTIFY either
    assert billed(stack, prefix) == []
    lines = [r for r in accounting.read(stack.acc_dir) if r["msg_id"].startswith(prefix)]
    assert {r["sip_code"] for r in lines} <= {"407"}


def test_an_unauthenticated_publish_changes_nobodys_presence(lab, user):
    stack = lab[0]
    done = sipp(load.probe_argv(("127.0.0.1", stack.sip_port), "uac_noauth_publish.xml",
                                CAROL, DOMAIN, CAROL, calls=2, prefix="fake-pub"))
    assert done.returncode == 0, done.stdout[-1500:]
    alice = user(ALICE)  # carol is on alice's buddy list
    carol_aor = f"sip:{CAROL}@{DOMAIN}"
    reply = alice.request("SUBSCRIBE", carol_aor, to=carol_aor,
                          extra={"Event": "presence", "Expires": "30",
                                 "Accept": "application/pidf+xml",
                                 "Contact": f"<sip:{ALICE}@127.0.0.1:{alice.port}>"})
    assert reply.code in (200, 202)
    notifies = [r for r in alice.serve(1.0) if r.method == "NOTIFY"]
    assert notifies and not any("<basic>open</basic>" in n.body for n in notifies)


@pytest.mark.parametrize("auth_user, password, sender", [
    (ALICE, "not-alices-password", ALICE),  # wrong password
    (ALICE, "alice-secret", BOB),  # alice's credentials, From bob: sending as another
])
def test_sipp_with_refused_credentials_gets_403(lab, user, auth_user, password, sender):
    stack = lab[0]
    carol = user(CAROL)
    assert carol.register().code == 200
    listener = listening(carol, 1.0)
    prefix = f"refused-{sender}-{len(password)}"
    done = sipp(load.probe_argv(("127.0.0.1", stack.sip_port), "uac_refused.xml", sender,
                                DOMAIN, CAROL, calls=3, auth=(auth_user, password),
                                prefix=prefix))
    listener.join()
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-500:]
    assert carol.received == [] and billed(stack, prefix) == []


def test_nothing_crosses_billing_environments(lab, user):
    """lab/CONTRACT.md: alice's environment decides for bob@OTHER (its `%` policy
    serves every domain): the message goes to bob of alice's environment, billed
    there; bob of the other environment gets nothing."""
    stack = lab[0]
    other_bob, own_bob = user(BOB, domain=OTHER), user(BOB)
    assert other_bob.register().code == 200 and own_bob.register().code == 200
    listeners = [listening(other_bob), listening(own_bob)]
    reply = user(ALICE).message(BOB, "across", msg_id="cross-1", to_domain=OTHER)
    for listener in listeners:
        listener.join()
    assert reply.code == 200
    assert other_bob.received == [] and [r.body for r in own_bob.received] == ["across"]
    assert billed(stack, "cross-") == ["cross-1", "cross-1"]
    # and the same account id inside its own environment does get through
    listener = listening(other_bob)
    assert user(ALICE, domain=OTHER).message(BOB, "inside", msg_id="inside-1").code == 200
    listener.join()
    assert [r.body for r in other_bob.received] == ["inside"]


@pytest.mark.parametrize("watcher, domain, watched, refusal", [
    (ALICE, DOMAIN, BOB, None),  # on alice's buddy list
    (BOB, DOMAIN, CAROL, "Forbidden (not on the watcher's buddy list)"),  # bob's: alice
    (ALICE, OTHER, BOB, "Forbidden (watcher in another domain)"),
])
def test_presence_only_for_watchers_on_the_buddy_list(lab, user, watcher, domain, watched,
                                                      refusal):
    client = user(watcher, domain=domain)
    aor = f"sip:{watched}@{DOMAIN}"
    reply = client.request("SUBSCRIBE", aor, to=aor,
                           extra={"Event": "presence", "Expires": "30",
                                  "Contact": f"<sip:{watcher}@127.0.0.1:{client.port}>"})
    if refusal is None:
        assert reply.code in (200, 202)
    else:
        assert (reply.code, reply.reason) == (403, refusal)
        assert not [r for r in client.serve(0.5) if r.method == "NOTIFY"]


def test_the_billing_api_needs_a_session(lab):
    stack = lab[0]
    listing = {"params": {}}
    assert post(stack.billing_port, "/rest/Account/get_xdr_list", listing)[0] == 401
    assert post(stack.billing_port, "/lab/clock", {"params": {"epoch": 1.0}})[0] == 401


def sockets_of(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    return inodes


def bound(inodes: set[str]) -> list[tuple[str, str, int]]:
    """(protocol, local address, port) of listening TCP / bound UDP sockets, from /proc."""
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[9] not in inodes or (proto.startswith("tcp") and fields[3] != "0A"):
                continue
            if len(address) == 8:
                host = ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                host = "v6:" + address
            found.append((proto, host, int(port, 16)))
    return found


def group(leader: int) -> set[int]:
    pids = set()
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(path.read_text().rsplit(")", 1)[1].split()[2]) == leader:
                pids.add(int(path.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def test_the_lab_listens_on_loopback_only(lab):
    status = lab[0].status()
    for leader, expected in ((status.kamailio_pid, {("udp", status.sip_port),
                                                    ("tcp", status.sip_port)}),
                             (status.billing_pid, {("tcp", status.billing_port)})):
        sockets = bound(sockets_of(group(leader)))
        assert {(proto, port) for proto, _, port in sockets} >= expected
        assert {host for _, host, _ in sockets} == {"127.0.0.1"}, sockets


def test_no_password_in_logs_reports_or_generated_files(lab):
    stack, outcome, loaded = lab
    secrets = {password for _, _, password in provision.subscribers(loaded)}
    assert outcome.records > 0 and (outcome.out / "report.md").exists()
    leaks = []
    for folder in (stack.dir, outcome.out):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_socket():
                data = path.read_bytes()
                leaks += [(str(path), s) for s in secrets if s.encode() in data]
    assert leaks == []
    subscriber = (stack.db_dir / "subscriber").read_text()
    assert all(len(row.split(":")[3]) == 32 for row in subscriber.splitlines()[1:])  # ha1


def test_generated_secrets_are_owner_only(lab):
    stack = lab[0]
    assert stat.S_IMODE(stack.dir.stat().st_mode) == 0o700
    for path in (stack.dir / "billing_api.secret", stack.db_dir / "subscriber",
                 stack.dir / "xdr.sqlite", stack.config_path, stack.dir / "stack.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (stack.db_dir, stack.acc_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert json.loads((stack.dir / "billing_api.secret").read_text())["password"]
