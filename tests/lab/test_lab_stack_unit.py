"""The launcher without binaries: a fake runner records what the stack asks for."""

from __future__ import annotations

import hashlib
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from lab import dbtext
from lab.stack import INSTALL_COMMAND, Stack, StackError, render

ACCOUNTS = [("15551230001", "env1.imsim.test", "alice-secret"),
            ("15551240001", "env2.imsim.test", "dave-secret")]


class FakeRunner:
    """Processes are integers; `pidfile_for` makes a spawned 'kamailio' write its pidfile."""

    def __init__(self, installed: bool = True, dies: bool = False) -> None:
        self.installed, self.dies = installed, dies
        self.spawned: list[list[str]] = []
        self.ran: list[list[str]] = []
        self.signals: list[tuple[int, int]] = []
        self.procs: dict[int, str] = {}  # pid -> cmdline of live processes
        self.next_pid = 4000

    def which(self, name: str) -> str | None:
        return f"/usr/sbin/{name}" if self.installed else None

    def run(self, argv, timeout):
        self.ran.append(list(argv))
        if argv[0] == "apt-get":
            self.installed = True
        return subprocess.CompletedProcess(argv, 0, "", "")

    def spawn(self, argv, log: Path) -> int:
        self.next_pid += 1
        self.spawned.append(list(argv))
        if not self.dies:
            self.procs[self.next_pid] = " ".join(argv)
        if "-P" in argv:
            Path(argv[argv.index("-P") + 1]).write_text(f"{self.next_pid}\n")
        log.write_text("fake log line\n")
        return self.next_pid

    def alive(self, pid: int) -> bool:
        return pid in self.procs

    def cmdline(self, pid: int) -> str:
        return self.procs.get(pid, "")

    def kill_group(self, pid: int, sig: int) -> None:
        self.signals.append((pid, sig))
        self.procs.pop(pid, None)


def answering(host: str, port: int, timeout: float) -> int | None:
    return 200


def silent(host: str, port: int, timeout: float) -> int | None:
    return None


def make(tmp_path: Path, runner: FakeRunner, **kwargs) -> Stack:
    kwargs.setdefault("pinger", answering)
    return Stack(tmp_path / "run", sip_port=5099, billing_port=8099, runner=runner,
                 start_timeout=0.3, stop_timeout=0.1, **kwargs)


def test_up_writes_config_and_tables_then_starts_kamailio(tmp_path):
    runner = FakeRunner()
    stack = make(tmp_path, runner)
    status = stack.up(ACCOUNTS)
    assert status.running and status.answering and status.kamailio_pid == 4001
    assert runner.spawned == [["/usr/sbin/kamailio", "-DD", "-E", "-f", str(stack.config_path),
                               "-P", str(stack.pidfile), "-m", "256", "-x", "tlsf"]]
    config = stack.config_path.read_text()
    assert "listen=udp:127.0.0.1:5099" in config and "listen=tcp:127.0.0.1:5099" in config
    assert "billing=>http://127.0.0.1:8099" in config and "{{" not in config


def test_subscribers_are_stored_as_ha1_only(tmp_path):
    stack = make(tmp_path, FakeRunner())
    stack.up(ACCOUNTS)
    table = (stack.db_dir / "subscriber").read_text()
    expected = hashlib.md5(b"15551230001:env1.imsim.test:alice-secret").hexdigest()
    assert f"1:15551230001:env1.imsim.test:{expected}" in table.splitlines()
    assert "alice-secret" not in table
    assert (stack.db_dir / "domain").read_text().splitlines()[1:] == [
        "1:env1.imsim.test::0", "2:env2.imsim.test::0"]


def test_generated_files_are_owner_only(tmp_path):
    stack = make(tmp_path, FakeRunner())
    stack.up(ACCOUNTS)
    for folder in (stack.dir, stack.db_dir, stack.acc_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in (stack.config_path, stack.db_dir / "subscriber", stack.state_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_running_stack_is_reported_not_started_twice(tmp_path):
    runner = FakeRunner()
    first = make(tmp_path, runner).up(ACCOUNTS)
    second = make(tmp_path, runner).up(ACCOUNTS)
    assert second.kamailio_pid == first.kamailio_pid
    assert len(runner.spawned) == 1


def test_down_stops_exactly_the_recorded_process_group(tmp_path):
    runner = FakeRunner()
    stack = make(tmp_path, runner)
    pid = stack.up(ACCOUNTS).kamailio_pid
    runner.procs[9999] = "/usr/sbin/kamailio -f /somebody/elses.cfg"
    assert make(tmp_path, runner).down() == [pid]
    assert runner.signals == [(pid, signal.SIGTERM), (pid, signal.SIGKILL)]
    assert 9999 in runner.procs and not stack.status().running


def test_a_reused_pid_is_not_ours(tmp_path):
    runner = FakeRunner()
    stack = make(tmp_path, runner)
    pid = stack.up(ACCOUNTS).kamailio_pid
    runner.procs[pid] = "/usr/bin/something-else"
    assert not stack.status().running
    assert stack.down() == [] and runner.signals == []


def test_kamailio_dying_at_start_is_an_error_with_its_log(tmp_path):
    stack = make(tmp_path, FakeRunner(dies=True))
    with pytest.raises(StackError, match="fake log line"):
        stack.up(ACCOUNTS)


def test_silent_kamailio_times_out_and_is_stopped(tmp_path):
    runner = FakeRunner()
    stack = make(tmp_path, runner, pinger=silent)
    with pytest.raises(StackError, match="did not answer OPTIONS"):
        stack.up(ACCOUNTS)
    assert runner.signals[0] == (4001, signal.SIGTERM) and runner.procs == {}


def test_missing_kamailio_without_root_explains_the_install(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(StackError, match="apt-get update && apt-get install -y kamailio "
                       ".*sip-tester"):
        make(tmp_path, FakeRunner(installed=False)).up(ACCOUNTS)


def test_missing_kamailio_as_root_is_installed(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    runner = FakeRunner(installed=False)
    said: list[tuple[int, str]] = []  # (commands run so far, line)
    stack = make(tmp_path, runner)
    stack.say = lambda line: said.append((len(runner.ran), line))
    stack.up(ACCOUNTS)
    assert runner.ran == [["apt-get", "update"], INSTALL_COMMAND]  # the lists first
    [(ran_before, line)] = said
    assert ran_before == 0  # said before anything is installed
    assert "kamailio-presence-modules" in line and "sip-tester" in line and "root" in line


def test_billing_command_is_started_first_and_stopped(tmp_path):
    runner = FakeRunner()
    with socket.socket() as listener:  # stands in for the billing service's port
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        stack = Stack(tmp_path / "run", sip_port=5099, billing_port=port, runner=runner,
                      pinger=answering, billing=["python", "-m", "lab.billing_service"],
                      start_timeout=0.5, stop_timeout=0.1)
        status = stack.up(ACCOUNTS)
    assert runner.spawned[0] == ["python", "-m", "lab.billing_service"]
    assert status.billing_pid == 4001 and status.kamailio_pid == 4002
    assert sorted(stack.down()) == [4001, 4002]


def test_billing_callable_is_stopped_by_down(tmp_path):
    events = []

    class Server:
        def __init__(self) -> None:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen()

        def close(self) -> None:
            events.append("closed")
            self.sock.close()

    server = Server()
    stack = Stack(tmp_path / "run", sip_port=5099, billing_port=server.sock.getsockname()[1],
                  runner=FakeRunner(), pinger=answering, billing=lambda: server,
                  stop_timeout=0.1)
    stack.up(ACCOUNTS)
    stack.down()
    assert events == ["closed"]


def test_runtime_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSIM_LAB_DIR", str(tmp_path / "elsewhere"))
    assert Stack(runner=FakeRunner()).dir == tmp_path / "elsewhere"


def test_render_refuses_unfilled_placeholders():
    assert render("port {{PORT}}", {"PORT": 5060}) == "port 5060"
    with pytest.raises(StackError, match="HOST"):
        render("{{HOST}}:{{PORT}}", {"PORT": 5060})


@pytest.mark.parametrize("account, message", [
    (("alice:x", "env1.imsim.test", "pw"), "account user"),
    (("15551230001", "env1..test", "pw"), "not a host name"),
    (("15551230001", "env1.imsim.test", ""), "empty password"),
])
def test_provision_rejects_values_db_text_cannot_carry(tmp_path, account, message):
    with pytest.raises(ValueError, match=message):
        dbtext.provision([account], tmp_path)


def test_reprovisioning_moves_the_mtime_to_a_later_second(tmp_path):
    dbtext.create_database(tmp_path)
    dbtext.provision(ACCOUNTS[:1], tmp_path)
    before = (tmp_path / "subscriber").stat().st_mtime_ns // 10**9
    dbtext.provision(ACCOUNTS, tmp_path)
    assert (tmp_path / "subscriber").stat().st_mtime_ns // 10**9 > before


def test_restart_kamailio_stops_the_old_group_and_records_the_new_one(tmp_path):
    runner = FakeRunner()
    stack = make(tmp_path, runner)
    old = stack.up(ACCOUNTS).kamailio_pid
    new = stack.restart_kamailio().kamailio_pid
    assert new != old and runner.signals == [(old, signal.SIGTERM), (old, signal.SIGKILL)]
    assert [argv[0] for argv in runner.spawned] == ["/usr/sbin/kamailio"] * 2
    assert make(tmp_path, runner).down() == [new]
