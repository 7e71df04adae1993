"""`imsim app`: the Voila launcher, with the process runner injected (no Voila here;
the browser tests start the real one)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from imsim.cli import main
from imsim.errors import UsageError
from imsim.training.apps import serve
from tests.helpers import ROOT


class FakeVoila:
    """A process that 'serves' by listening on the port it was given."""

    def __init__(self, cmd: list[str], interrupt: bool = True, **_: Any) -> None:
        self.cmd, self.interrupt = cmd, interrupt
        self.terminated = False
        port = int(next(a for a in cmd if a.startswith("--port=")).split("=")[1])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()

    def poll(self) -> int | None:
        return 0 if self.terminated else None

    def wait(self, timeout: float | None = None) -> int:
        if not self.terminated and self.interrupt:
            raise KeyboardInterrupt
        return 0

    def terminate(self) -> None:
        self.terminated = True
        self.sock.close()


def test_the_notebook_shows_the_app_of_the_project(tmp_path: Path) -> None:
    path = serve.notebook("trainer", ROOT, tmp_path)
    (cell,) = json.loads(path.read_text())["cells"]
    assert cell["source"] == (f"from imsim.training.apps.trainer import TrainerApp\n\n"
                              f"TrainerApp({str(ROOT)!r}).widget")


def test_voila_listens_on_loopback_only() -> None:
    cmd = serve.command(Path("x.ipynb"), 8123)
    assert cmd[:3] == [sys.executable, "-m", "voila"]
    assert {"--no-browser", "--port=8123", "--Voila.ip=127.0.0.1"} <= set(cmd)


def test_serve_prints_the_url_and_stops_voila_on_ctrl_c() -> None:
    started: list[FakeVoila] = []

    def popen(cmd: list[str], **kw: Any) -> FakeVoila:
        started.append(FakeVoila(cmd, **kw))
        return started[-1]

    said: list[str] = []
    assert serve.serve("planner", ROOT, popen=popen, echo=said.append) == 0
    (process,) = started
    port = next(a for a in process.cmd if a.startswith("--port=")).split("=")[1]
    assert said == [f"imsim: the planner at http://127.0.0.1:{port}/ (Ctrl-C stops it)",
                    "imsim: stopping the planner"]
    assert process.terminated
    assert not Path(process.cmd[3]).exists(), "the notebook is removed"


def test_voila_that_never_listens_is_an_error() -> None:
    class Dead:
        def __init__(self, cmd: list[str], **_: Any) -> None:
            pass

        def poll(self) -> int:
            return 1

    with pytest.raises(UsageError, match="voila did not start on 127.0.0.1"):
        serve.start("trainer", ROOT, popen=Dead)


def test_unknown_app_and_bad_root_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no app 'billing': choose one of trainer, planner"):
        serve.notebook("billing", ROOT, tmp_path)
    assert main(["app", "trainer", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"imsim: --root {tmp_path}: no scenarios/ folder there: give the imsim "
                   "project folder"]
