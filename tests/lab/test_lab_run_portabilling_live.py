"""`imsim lab run --target` against PortaBilling's API: the conformance fake
(`portabilling_fake.py`) with the embedded Kamailio as the proxy.

The embedded billing service authorizes and rates the messages (as PortaBilling would);
the fake serves its customer xDRs the way PortaBilling's API does: without imsim's
msg_id, tariff or rate code, a Call-ID on every other one, connect times in the API
user's zone (Kamailio's accounting gives the wall time), shuffled, among xDRs of other
accounts and of other days. The run must find them and agree 5/5 with the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import accounting, run, targets
from tests.lab.billing_fixtures import HANDBOOK, ROOT, local_lab
from tests.lab.portabilling_fake import PortaBillingFake

pytestmark = pytest.mark.lab

ALICE, BOB, CAROL = "15551230001", "15551230002", "15551230003"
ZONE = "Europe/Prague"
PASSWORD_ENV = "IMSIM_TEST_PB_PASSWORD"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The embedded stack (Kamailio + billing service) serving the handbook."""
    with local_lab(tmp_path_factory.mktemp("lab-pb")) as folder:
        first = run.run(HANDBOOK, targets.load(folder / "local.yaml"), 200.0,
                        folder / "local-out", echo=lambda line: None)
        assert first.comparison.ok, first.comparison.table.to_string()
        yield folder


class Feeder:
    """Copies each new customer xDR of the embedded service into the fake, the way
    PortaBilling's API shows it."""

    def __init__(self, lab: Path) -> None:
        runtime = lab / "run"
        state = json.loads((runtime / "stack.json").read_text())
        self.client = run.api_client(runtime, int(state["billing_port"]))
        self.acc_dir = runtime / "acc"
        self.seen = {x.call_id for x in self.client.xdrs()}
        self.fed = 0

    def __call__(self, fake: PortaBillingFake) -> None:
        wall = {row["call_id"]: float(row["ts"]) for row in accounting.read(self.acc_dir)}
        for x in self.client.xdrs():
            if x.direction != "outgoing" or x.call_id in self.seen or x.call_id not in wall:
                continue
            self.seen.add(x.call_id)
            fake.xdr(x.account_id, x.CLI, x.CLD, wall[x.call_id], float(x.charged_amount),
                     x.charged_quantity, x.call_id if self.fed % 2 == 0 else None)
            self.fed += 1

    def align(self) -> None:
        """The billing service's scenario clock starts now (as a local run does)."""
        self.client.call("/lab/clock", {"epoch": time.time(), "speed": 200.0})


def portabilling(generation: str) -> PortaBillingFake:
    """The fake with the handbook's accounts and traffic that is not the run's."""
    fake = PortaBillingFake(generation, time_zone=ZONE, token_seconds=3600).start()
    for n, account in enumerate((ALICE, BOB, CAROL, "15550000009"), 1):
        fake.account(account, 7000 + n)
    now = time.time()
    fake.xdr(ALICE, ALICE, BOB, now - 86400, 0.01, call_id="yesterday@elsewhere")
    fake.xdr(BOB, BOB, ALICE, now - 7200, 0.01)
    fake.xdr("15550000009", "15550000009", ALICE, now, 0.02, call_id="other@elsewhere")
    return fake


def target(lab: Path, fake: PortaBillingFake, folder: Path) -> Path:
    state = json.loads((lab / "run" / "stack.json").read_text())
    path = folder / "portabilling.yaml"
    path.write_text(
        f"kind: remote\nproxy: {{host: 127.0.0.1, port: {state['sip_port']}}}\n"
        f"domain: sip.example.com\n"
        f"xdrs:\n  api: {{url: '{fake.url}', login: {fake.login}, "
        f"password_env: {PASSWORD_ENV}}}\n  time_zone: {ZONE}\n  settle: 5\n")
    return path


def imsim(*args: str, password: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **{PASSWORD_ENV: password})
    return subprocess.run([sys.executable, "-m", "imsim", "lab", "run", str(HANDBOOK), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.parametrize("generation", ["access_token", "session_id"])
def test_the_handbook_agrees_through_portabillings_api(lab, tmp_path, generation):
    fake, feeder = portabilling(generation), Feeder(lab)
    fake.feed = feeder
    out = tmp_path / "out"
    try:
        feeder.align()
        done = imsim("--target", str(target(lab, fake, tmp_path)), "--speed", "200",
                     "--out", str(out), password=fake.password)
    finally:
        fake.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5/5 messages agree (100.0 %)" in done.stdout
    assert "not compared (the xDR source does not hold them): xdrs, tariff, rate_code" \
        in done.stdout
    summary = json.loads((out / "run.json").read_text())
    assert summary["orphans"] == [] and summary["summary"]["lab_amount"] == "0.030000"
    assert summary["meta"]["xDRs matched"] == "3 (2 by call_id, 1 by time); orphans 0"
    answers = [r for r in map(json.loads, (out / "records.jsonl").open())
               if r.get("kind") == "message" and r["code"] == 200]
    assert len(answers) == 3 and all(r["call_id"] and r["date"] for r in answers)
    skew = float(summary["meta"]["remote clock skew"].split()[0])
    assert abs(skew) <= 1.0  # the same clock, read through Kamailio's Date header
    lists = [p for m, p in fake.calls if m == "Account/get_xdr_list"]
    assert {p["i_account"] for p in lists} == {7001, 7002, 7003}  # the script's senders
    assert fake.count("Session/login") == 1


def test_a_fault_keeps_the_records_an_orphan_fails_bad_credentials_are_one_line(
        lab, tmp_path):
    fake, feeder = portabilling("access_token"), Feeder(lab)
    fake.feed = feeder
    out = tmp_path / "out"
    try:
        feeder.align()
        path = target(lab, fake, tmp_path)
        fake.fail_next("Account/get_xdr_list", "Server.Account.db_error", "DB is away", 99)
        faulted = imsim("--target", str(path), "--speed", "200", "--out", str(out),
                        password=fake.password)
        fake.faults.clear()
        rerun = imsim("--target", str(path), "--out", str(out), "--compare-only",
                      password=fake.password)
        fake.feed = None
        sent = max(r["sent_at"] for r in map(json.loads, (out / "records.jsonl").open())
                   if r.get("kind") == "message")
        fake.xdr(ALICE, ALICE, "15551239999", sent, 0.01)  # billed, never played
        orphaned = imsim("--target", str(path), "--out", str(out), "--compare-only",
                         password=fake.password)
        refused = imsim("--target", str(path), "--out", str(tmp_path / "never"),
                        "--speed", "200", password="wrong")
    finally:
        fake.close()
    assert faulted.returncode == 2, faulted.stdout + faulted.stderr
    assert faulted.stderr.strip().endswith("/rest/Account/get_xdr_list: HTTP 500: "
                                           "Server.Account.db_error: DB is away")
    assert "Traceback" not in faulted.stderr
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr  # nothing was lost
    assert "5/5 messages agree (100.0 %)" in rerun.stdout
    assert orphaned.returncode == 1, orphaned.stdout + orphaned.stderr
    assert "orphans: 1 xDRs bill no test message: i_xdr" in orphaned.stdout
    assert "15551230001 -> 15551239999" in orphaned.stdout
    assert "RESULT: MISMATCH" in orphaned.stdout
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = refused.stderr.strip()
    assert "\n" not in line and "Session/login: HTTP 500" in line and "Traceback" not in line
    assert not (tmp_path / "never" / "records.jsonl").exists()  # refused before playing
