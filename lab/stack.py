"""The live stack on loopback: Kamailio (registrar, presence, IM proxy) + billing service.

    stack = Stack(runtime_dir, sip_port=5060, billing_port=8070)
    stack.up(accounts=[("15551230001", "env1.imsim.test", "secret"), ...])
    stack.status()
    stack.down()

The runtime folder (default `lab/run/`, or $IMSIM_LAB_DIR) holds the generated config,
the db_text tables (ha1 only), the flatstore accounting files, logs and `stack.json`,
which records the processes `up()` started so that any later `down()` stops exactly
those (their process groups). All process handling goes through a `Runner`, so the
launcher is tested with a fake one and no binaries.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from imsim.errors import UsageError
from lab import dbtext, sip

LAB_DIR = Path(__file__).resolve().parent
TEMPLATE = LAB_DIR / "templates" / "kamailio.cfg.tmpl"
PACKAGES = ("kamailio", "kamailio-presence-modules", "kamailio-sqlite-modules",
            "kamailio-utils-modules", "kamailio-extra-modules", "sip-tester")
UPDATE_COMMAND = ["apt-get", "update"]  # a fresh machine's package lists may be empty
INSTALL_COMMAND = ["apt-get", "install", "-y", *PACKAGES]
WHY_INSTALL = ("the live lab needs Kamailio (proxy, registrar, presence; its modules) and "
               "sipp from Debian")
ACCOUNT_FLUSH_US = 10_000  # how often Kamailio posts its queued /account bodies
ACCOUNT_BATCH = 64  # bodies per POST /accounts (~300 bytes each; the service takes 256)
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules",
               "/usr/lib/aarch64-linux-gnu/kamailio/modules",
               "/usr/lib64/kamailio/modules", "/usr/lib/kamailio/modules",
               "/usr/local/lib64/kamailio/modules", "/usr/local/lib/kamailio/modules")


class StackError(RuntimeError):
    """The stack could not be started, reached or stopped."""


def default_runtime_dir() -> Path:
    return Path(os.environ.get("IMSIM_LAB_DIR") or LAB_DIR / "run")


class Runner(Protocol):
    """What the launcher needs from the operating system."""

    def which(self, name: str) -> str | None: ...
    def run(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess: ...
    def spawn(self, argv: Sequence[str], log: Path) -> int: ...
    def alive(self, pid: int) -> bool: ...
    def cmdline(self, pid: int) -> str: ...
    def kill_group(self, pid: int, sig: int) -> None: ...


class SubprocessRunner:
    """The real runner: each spawned process leads its own process group."""

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}

    def which(self, name: str) -> str | None:
        import shutil
        return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")

    def run(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)

    def spawn(self, argv: Sequence[str], log: Path) -> int:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=fd,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            os.close(fd)
        self._children[proc.pid] = proc
        return proc.pid

    def alive(self, pid: int) -> bool:
        if pid in self._children:
            return self._children[pid].poll() is None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    def cmdline(self, pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return ""

    def kill_group(self, pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class Status:
    running: bool
    answering: bool
    kamailio_pid: int | None
    billing_pid: int | None
    sip_port: int
    billing_port: int
    runtime_dir: str

    def describe(self) -> str:
        if not self.running:
            return f"lab stack is not running (runtime folder {self.runtime_dir})"
        state = "answering OPTIONS" if self.answering else "NOT answering OPTIONS"
        return (f"lab stack running: kamailio pid {self.kamailio_pid} on "
                f"127.0.0.1:{self.sip_port} ({state}), billing on 127.0.0.1:"
                f"{self.billing_port}, runtime folder {self.runtime_dir}")


Pinger = Callable[[str, int, float], int | None]
Billing = Sequence[str] | Callable[[], Any] | None


class Stack:
    """Kamailio plus (optionally) the billing service, started and stopped together.

    `billing` is either a command (started in its own process group, recorded for
    `down()`), or a callable started in this process whose return value is stopped by
    `down()` (via `.close()`, `.shutdown()` or calling it), or None if it runs elsewhere.
    """

    def __init__(self, runtime_dir: Path | str | None = None, sip_port: int = 5060,
                 billing_port: int = 8070, billing: Billing = None,
                 runner: Runner | None = None, pinger: Pinger = sip.options_ping,
                 children: int = 4, tcp_children: int = 2, shm_mb: int = 256,
                 start_timeout: float = 10.0, stop_timeout: float = 5.0,
                 debug: int = 2, say: Callable[[str], None] | None = None) -> None:
        self.dir = Path(runtime_dir) if runtime_dir else default_runtime_dir()
        self.sip_port, self.billing_port = sip_port, billing_port
        self.billing = billing
        self.runner: Runner = runner or SubprocessRunner()
        self.pinger = pinger
        self.children, self.tcp_children, self.shm_mb = children, tcp_children, shm_mb
        self.start_timeout, self.stop_timeout, self.debug = start_timeout, stop_timeout, debug
        self._billing_handle: Any = None
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))

    # paths -------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / "kamailio.cfg"

    @property
    def db_dir(self) -> Path:
        return self.dir / "db"

    @property
    def acc_dir(self) -> Path:
        return self.dir / "acc"

    @property
    def pidfile(self) -> Path:
        return self.dir / "kamailio.pid"

    @property
    def state_path(self) -> Path:
        return self.dir / "stack.json"

    @property
    def log_path(self) -> Path:
        return self.dir / "kamailio.log"

    # public ------------------------------------------------------------------------
    def status(self) -> Status:
        state = self._read_state()
        pid = self._kamailio_pid(state)
        running = pid is not None
        sip_port = state.get("sip_port", self.sip_port) if running else self.sip_port
        answering = running and self.pinger("127.0.0.1", sip_port, 0.5) == 200
        billing_pid = state.get("billing_pid")
        if billing_pid and not self._ours(billing_pid, state.get("billing_marker", "")):
            billing_pid = None
        return Status(running, answering, pid, billing_pid, sip_port,
                      state.get("billing_port", self.billing_port) if running
                      else self.billing_port, str(self.dir))

    def up(self, accounts: Iterable[dbtext.Account] = (),
           buddies: Iterable[dbtext.Buddy] | None = None) -> Status:
        """Start the stack, or report the one already running (never a second one)."""
        current = self.status()
        if current.running:
            return current
        self.ensure_kamailio()
        self.state_path.unlink(missing_ok=True)
        self.prepare()
        self.provision(accounts, buddies)
        state: dict[str, Any] = {"sip_port": self.sip_port, "billing_port": self.billing_port}
        try:
            state.update(self._start_billing())
            state["kamailio_pid"] = self._start_kamailio()
            state["kamailio_marker"] = str(self.config_path)
            self._write_state(state)
            self._wait_answering(state["kamailio_pid"])
        except BaseException:
            self._stop(state)
            raise
        return self.status()

    def down(self) -> list[int]:
        """Stop the process groups `up()` started; returns their pids."""
        stopped = self._stop(self._read_state())
        self.state_path.unlink(missing_ok=True)
        return stopped

    def restart_billing(self, billing: Sequence[str]) -> Status:
        """Stop the billing service `up()` started (if any) and start ``billing`` instead;
        Kamailio keeps running (it fails closed with 503 in between)."""
        state = self._read_state()
        pid = state.get("billing_pid")
        if pid and self._ours(pid, state.get("billing_marker", "")):
            self._terminate(pid)
        self._write_state({"billing_pid": None, "billing_marker": ""})
        self.billing = list(billing)
        self._write_state(self._start_billing())
        return self.status()

    def restart_kamailio(self, pause: float = 0.0) -> Status:
        """Stop the Kamailio `up()` started, wait ``pause`` seconds, start it again on the
        same config and tables. Registrations, presence and the /account retry spool are
        in its memory: clients must register again (`lab.sip.ProxyWatch`)."""
        pid = self._kamailio_pid(self._read_state())
        if pid:
            self._drain_accounting()
            self._terminate(pid)
        time.sleep(pause)
        new = self._start_kamailio()
        self._write_state({"kamailio_pid": new, "kamailio_marker": str(self.config_path)})
        self._wait_answering(new)
        return self.status()

    def provision(self, accounts: Iterable[dbtext.Account],
                  buddies: Iterable[dbtext.Buddy] | None = None) -> list[str]:
        """Store accounts (ha1 only) and who may watch whom (None: anyone of the same
        domain); a running Kamailio picks them up."""
        domains = dbtext.provision(accounts, self.db_dir, buddies)
        if self._kamailio_pid(self._read_state()):
            self.rpc("domain.reload")
            self.rpc("htable.reload", "buddies")
        return domains

    def rpc(self, *command: str) -> str:
        kamcmd = self.runner.which("kamcmd") or "kamcmd"
        argv = [kamcmd, "-s", f"unix:{self.dir / 'kamailio_ctl'}", *command]
        done = self.runner.run(argv, timeout=5)
        if done.returncode != 0:
            raise StackError(f"{' '.join(argv)} failed: {done.stderr or done.stdout}")
        return done.stdout

    def ensure_kamailio(self) -> str:
        """The kamailio binary; installs the Debian packages when root, else explains."""
        found = self.runner.which("kamailio")
        if found:
            return found
        commands = f"{' '.join(UPDATE_COMMAND)} && {' '.join(INSTALL_COMMAND)}"
        if os.geteuid() != 0:
            raise StackError(f"kamailio is not installed ({WHY_INSTALL}); as root run: "
                             f"{commands}")
        self.say(f"imsim lab: kamailio is not installed and {WHY_INSTALL}; installing "
                 f"{len(PACKAGES)} Debian packages as root ({commands}), a few minutes")
        for argv in (UPDATE_COMMAND, INSTALL_COMMAND):
            done = self.runner.run(argv, timeout=600)
            if done.returncode != 0:
                raise StackError(f"`{' '.join(argv)}` failed: {done.stderr or done.stdout}")
        found = self.runner.which("kamailio")
        if not found:
            raise StackError(f"`{commands}` ran but kamailio is still not found")
        return found

    def prepare(self) -> None:
        """Runtime folder (owner-only), empty tables, accounting folder and config."""
        for folder in (self.dir, self.acc_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        dbtext.create_database(self.db_dir)
        dbtext.write_private(self.config_path, self.render_config())

    def render_config(self) -> str:
        values = {
            "SIP_PORT": self.sip_port, "BILLING_PORT": self.billing_port,
            "RUN_DIR": self.dir.resolve(), "DB_DIR": self.db_dir.resolve(),
            "ACC_DIR": self.acc_dir.resolve(), "MODULES_DIR": self._modules_dir(),
            "CHILDREN": self.children, "TCP_CHILDREN": self.tcp_children,
            "HTTP_TIMEOUT": 1, "DEBUG": self.debug,
            "ACCOUNT_FLUSH_US": ACCOUNT_FLUSH_US, "ACCOUNT_BATCH": ACCOUNT_BATCH,
        }
        return render(TEMPLATE.read_text(), values)

    # internals ---------------------------------------------------------------------
    def _modules_dir(self) -> str:
        found = [d for d in MODULE_DIRS if Path(d, "tm.so").exists()]
        return found[0] if found else MODULE_DIRS[0]

    def _start_kamailio(self) -> int:
        kamailio = self.runner.which("kamailio") or "kamailio"
        self.pidfile.unlink(missing_ok=True)
        # TLSF memory manager: q_malloc's free-list search was Kamailio's top symbol
        argv = [kamailio, "-DD", "-E", "-f", str(self.config_path), "-P", str(self.pidfile),
                "-m", str(self.shm_mb), "-x", "tlsf"]
        return self.runner.spawn(argv, self.log_path)

    def _start_billing(self) -> dict[str, Any]:
        if self.billing is None:
            return {}
        if callable(self.billing):
            self._billing_handle = self.billing()
            self._wait_port(self.billing_port)
            return {}
        argv = [str(part) for part in self.billing]
        pid = self.runner.spawn(argv, self.dir / "billing.log")
        self._write_state({"billing_pid": pid, "billing_marker": argv[-1]})
        self._wait_port(self.billing_port)
        return {"billing_pid": pid, "billing_marker": argv[-1]}

    def _wait_port(self, port: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise StackError(f"billing service did not listen on 127.0.0.1:{port} "
                         f"within {self.start_timeout} s")

    def _wait_answering(self, pid: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.runner.alive(pid):
                raise StackError(f"kamailio exited during start-up:\n{self._log_tail()}")
            if self.pinger("127.0.0.1", self.sip_port, 0.2) == 200:
                return
            time.sleep(0.05)
        raise StackError(f"kamailio did not answer OPTIONS on 127.0.0.1:{self.sip_port} "
                         f"within {self.start_timeout} s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _stop(self, state: dict[str, Any]) -> list[int]:
        stopped = []
        for key in ("kamailio", "billing"):
            pid = state.get(f"{key}_pid")
            if pid and self._ours(pid, state.get(f"{key}_marker", "")):
                if key == "kamailio":
                    self._drain_accounting()
                self._terminate(pid)
                stopped.append(pid)
        self._stop_billing_handle()
        return stopped

    def _drain_accounting(self, timeout: float = 2.0) -> None:
        """Let Kamailio post every final answer it owes ``/accounts`` before it stops.

        Those bodies live in its memory (mqueue "account", flushed every few ms), so
        stopping it at once would lose the xDRs of messages already answered 200. It is
        told to refuse new MESSAGEs (503), then asked, at most ``timeout`` seconds, until
        no relayed transaction awaits its answer, the queue is empty and no batch is
        being posted. Batches the billing service refused (the retry spool) and a crash
        are still lost, as in a real restart."""
        try:
            self.rpc("htable.seti", "state", "draining", "1")
        except (StackError, OSError, subprocess.SubprocessError):
            return   # no control socket: nothing to ask
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:   # in this order: a finished transaction has queued its body first
                tm = self._numbers("tm.stats")
                busy = (tm.get("current", 0) - tm.get("waiting", 0)
                        or self._numbers("mqueue.get_size", "account").get("size", 0)
                        or self._numbers("htable.get", "state", "posting").get("value", 0))
            except (StackError, OSError, subprocess.SubprocessError):
                return
            if not busy:
                return
            time.sleep(0.02)

    def _numbers(self, *command: str) -> dict[str, int]:
        """The ``name: number`` fields of a Kamailio RPC's answer."""
        answer = self.rpc(*command)
        if answer.startswith("error:"):   # kamcmd exits 0 on a failed command
            raise StackError(f"kamcmd {' '.join(command)}: {answer.strip()}")
        return {name: int(value) for name, value in re.findall(r"(\w+): (\d+)", answer)}

    def _terminate(self, pid: int) -> None:
        self.runner.kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while self.runner.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.runner.kill_group(pid, signal.SIGKILL)  # stragglers in the group, if any

    def _stop_billing_handle(self) -> None:
        handle, self._billing_handle = self._billing_handle, None
        if handle is None:
            return
        for name in ("close", "shutdown", "stop"):
            if callable(getattr(handle, name, None)):
                getattr(handle, name)()
                return
        if callable(handle):
            handle()

    def _ours(self, pid: int, marker: str) -> bool:
        """Alive, and still the process we started (pids get reused)."""
        return self.runner.alive(pid) and marker in self.runner.cmdline(pid)

    def _kamailio_pid(self, state: dict[str, Any]) -> int | None:
        pid: int | None
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = state.get("kamailio_pid")
        marker = state.get("kamailio_marker", str(self.config_path))
        return pid if pid and self._ours(pid, marker) else None

    def _read_state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_path.read_text()))
        except (OSError, ValueError):
            return {}

    def _write_state(self, updates: dict[str, Any]) -> None:
        state = self._read_state() | updates
        dbtext.write_private(self.state_path, json.dumps(state, indent=1) + "\n")


def render(template: str, values: dict[str, Any]) -> str:
    """Fill {{NAME}} placeholders; every placeholder must have a value."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", str(value))
    if "{{" in template:
        start = template.index("{{")
        raise StackError(f"unfilled placeholder {template[start:start + 30]!r}")
    return template


# -- before a stack starts ------------------------------------------------------------

def check_free(sip_port: int, billing_port: int) -> None:
    """Refuse ports someone else holds (the launcher would talk to the wrong process)."""
    for port, kinds, flag in ((sip_port, (socket.SOCK_DGRAM, socket.SOCK_STREAM), "--sip-port"),
                              (billing_port, (socket.SOCK_STREAM,), "--billing-port")):
        for kind in kinds:
            with socket.socket(socket.AF_INET, kind) as probe:
                # TIME_WAIT leftovers of a stack just stopped do not count; a listener does.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    raise UsageError(f"{flag} {port}: 127.0.0.1:{port} is in use; "
                                     "choose another port") from None


def set_aside(db: Path) -> None:
    """A new stack starts a fresh xDR store; an old one is kept under a dated name."""
    if not db.exists():
        return
    kept = db.with_name(f"xdr-{dt.datetime.now():%Y%m%d-%H%M%S}.sqlite")
    for suffix in ("", "-wal"):  # the WAL may hold committed rows: it moves along
        if db.with_name(db.name + suffix).exists():
            db.with_name(db.name + suffix).rename(kept.with_name(kept.name + suffix))
    db.with_name(db.name + "-shm").unlink(missing_ok=True)
