"""The real imsim billing service as a subprocess on a free loopback port, for tests."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from lab import provision
from lab.stack import Stack, SubprocessRunner

ROOT = Path(__file__).resolve().parents[2]
HANDBOOK = ROOT / "scenarios" / "handbook.yaml"
DOMAIN = "sip.example.com"
ALICE, BOB, CAROL = "15551230001", "15551230002", "15551230003"


def kamailio_installed() -> bool:
    """Whether Kamailio is where the lab's launcher looks for it (`SubprocessRunner`)."""
    return SubprocessRunner().which("kamailio") is not None


def require_kamailio() -> None:
    if not kamailio_installed():
        pytest.skip("kamailio not installed (see lab.stack.INSTALL_COMMAND)")


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.03)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Service:
    """One billing service process; `start()` again after `kill()` reuses db and port."""

    folder: Path
    scenario: Path = HANDBOOK
    port: int = field(default_factory=free_tcp_port)
    extra: tuple[str, ...] = ()
    process: subprocess.Popen | None = None

    @property
    def db(self) -> Path:
        return self.folder / "xdr.sqlite"

    @property
    def secret(self) -> Path:
        return self.folder / "billing_api.secret"

    @property
    def log(self) -> Path:
        return self.folder / "billing.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return provision.billing_command(self.scenario, self.port, self.db, extra=self.extra)

    def start(self) -> Service:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_listening(self.port)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None

    def credentials(self) -> tuple[str, str]:
        found = json.loads(self.secret.read_text())
        return found["login"], found["password"]

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None
             ) -> tuple[int, Any]:
        return post(self.port, path, body, headers)


def post(port: int, path: str, body: Any, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, Any]:
    """(HTTP status, decoded JSON answer) of one request on a fresh connection."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, data, {"Content-Type": "application/json",
                                          **(headers or {})})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"null")
    finally:
        conn.close()


def contract(call_id: str, sender: str = ALICE, to_user: str = BOB, msg_id: str = "m",
             length: int = 5, domain: str = DOMAIN, **more: Any) -> dict[str, Any]:
    """A lab/CONTRACT.md body, as Kamailio sends it."""
    return {"call_id": call_id, "msg_id": msg_id, "from_user": sender, "from_domain": domain,
            "to_user": to_user, "to_domain": domain, "length": length, **more}


def two_environment_scenario(folder: Path) -> Path:
    """The handbook plus a copy of its environment on another SIP domain."""
    yaml = YAML(typ="safe")
    document = yaml.load(HANDBOOK.read_text())
    other = json.loads(json.dumps(document["environments"][0], default=str))
    other.update(name="second", domain="other.example.com")
    document["environments"].append(other)
    path = folder / "two.yaml"
    with path.open("w") as handle:
        yaml.dump(document, handle)
    return path


def generous_scenario(folder: Path, balance: int = 1_000_000_000) -> Path:
    """The handbook with balances no test or soak run can use up."""
    yaml = YAML(typ="safe")
    document = yaml.load(HANDBOOK.read_text())
    for env in document["environments"]:
        for customer in env["customers"]:
            for account in customer["accounts"]:
                account["balance"] = balance
    path = folder / "generous.yaml"
    with path.open("w") as handle:
        yaml.dump(document, handle)
    return path


@contextmanager
def local_lab(folder: Path) -> Iterator[Path]:
    """``folder`` as the runtime of an embedded stack (IMSIM_LAB_DIR), with `local.yaml`,
    a local target on free loopback ports; the stack is stopped after."""
    from tests.lab.fake_billing import free_port

    require_kamailio()
    patch = pytest.MonkeyPatch()
    patch.setenv("IMSIM_LAB_DIR", str(folder / "run"))
    (folder / "local.yaml").write_text(
        f"kind: local\nsip_port: {free_port()}\nbilling_port: {free_tcp_port()}\n")
    try:
        yield folder
    finally:
        Stack(folder / "run").down()
        patch.undo()
