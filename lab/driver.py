"""The pjsua2 driver: plays a plan through the live proxy and records what happened.

Child process (one pjsua2 Endpoint each):

    python -m lab.driver --plan plan.json --out records.jsonl [--control]
    python -m lab.driver --plan - --out records.jsonl --control   # plan: stdin's first line

Parent side: `play(scenario, proxy, speed, out_dir, processes=N)` splits the accounts
across driver processes, starts them together, merges their records. `run_driver(...)`
plays hand-made accounts and script (one process unless told), `messages(records)` joins
each message's answer with its receipt: one row per msg_id.

Control protocol (--control, one line each): the child prints `ready` once its accounts
are online, waits for `go <wall time of scenario second 0>`, plays, prints `done`, keeps
receiving until `stop` (or end of input), goes offline and exits. Without --control it
starts at once, stops a second after its own last answer and prints one JSON line per
message (see `messages()`).

Records (JSON lines, written as they happen; see `lab.clients.Recorder`): every record has
kind, proc, wall (epoch s) and t (scenario s, None before the start).
- register: user, domain, code, reason, expires (0: unregistered)
- sent: msg_id, from, to, domain, sent_at, sent_t
- message: msg_id, from, to, domain, sent_at, sent_t, code, reason, answered_at,
  call_id and date (the SIP answer's Call-ID and Date headers; None when absent)
- received: msg_id (from the X-IMSIM-Msg-Id header), from, to, domain, length,
  delivered_at, delivered_t
- presence: watcher, domain, buddy, status (online/offline/unknown), text, sub_state
- subscription: watcher, domain, buddy, code, reason (a refused or ended SUBSCRIBE)
- run: event (ready/start/done/timeout/stop/exit/error), detail
- proxy: event (down/up/restarted: `lab.sip.ProxyWatch`; a phone registers again on
  up/restarted), boot (the proxy instance), silent_since_t (its last answer before)
A message without a final answer after the plan's answer_timeout is recorded with 408.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lab import plan as plans
from lab.plan import DriverPlan
from lab.stack import default_runtime_dir

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 20.0  # driver processes up, accounts registered
START_MARGIN = 0.2  # between `go` and scenario second 0, so all processes start together
STOP_TIMEOUT = 8.0  # offline, un-REGISTER, exit
MESSAGE_COLUMNS = ("msg_id", "from", "to", "domain", "sent_at", "sent_t", "code", "reason",
                   "answered_at", "delivered_at", "delivered_t", "latency", "call_id",
                   "date")


# child entry point ------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.driver", description=__doc__)
    parser.add_argument("--plan", required=True, help="plan JSON file, or - for the first "
                        "line of standard input (so that no file holds the passwords)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--control", action="store_true",
                        help="ready/go/done/stop lines on stdout/stdin (used by play())")
    args = parser.parse_args(argv)
    plan = plans.from_json(sys.stdin.readline()) if args.plan == "-" else \
        plans.read(Path(args.plan))
    plans.check(plan)
    control_out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # pjsua's start-up chatter must never mix with the control lines
    watchdog = threading.Timer(plan.timeout + 15, os._exit, args=(3,))
    watchdog.daemon = True
    watchdog.start()
    code = 0
    try:
        from lab.session import Driver  # pjsua2 only in the driver process
        Driver(plan, args.out, sys.stdin if args.control else None,
               control_out if args.control else None).run()
    except Exception as exc:
        info = getattr(exc, "info", None)
        print(f"lab.driver: {info() if callable(info) else repr(exc)}", file=sys.stderr)
        code = 1
    if not args.control:  # standalone: the per-message table on the real stdout
        for row in messages(read_records([args.out])):
            control_out.write(json.dumps(row) + "\n")
    control_out.flush()
    sys.stderr.flush()
    os._exit(code)  # no pjsua2 destructors after libDestroy


# parent side ------------------------------------------------------------------------
class Child:
    """One driver process; its control lines go to the group's queue."""

    def __init__(self, part: DriverPlan, out_dir: Path, lines: queue.Queue) -> None:
        self.index = part.process
        self.out = out_dir / f"records-{self.index}.jsonl"
        self.out.unlink(missing_ok=True)
        plans.redacted(part).write(out_dir / f"plan-{self.index}.json")  # to read, not to run
        argv = [sys.executable, "-m", "lab.driver", "--plan", "-",
                "--out", str(self.out), "--control"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
        with open(out_dir / f"driver-{self.index}.log", "w") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, text=True, cwd=ROOT, env=env,
                                         start_new_session=True)
        self.say(json.dumps(dataclasses.asdict(part)))  # the plan, passwords included
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()

    def _read(self, lines: queue.Queue) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            lines.put((self.index, line.strip()))
        lines.put((self.index, None))

    def say(self, line: str) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass  # already gone: its records say how far it got

    def finish(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return self.proc.wait(timeout=2)
            return self.proc.wait()


def play(scenario: Any, proxy: tuple[str, int, str], speed: float = 1.0,
         out_dir: Path | str | None = None, processes: int = 1,
         timeout: float | None = None,
         on_start: Callable[[float], None] | None = None) -> list[dict[str, Any]]:
    """Play a Scenario (or a ready DriverPlan) with real pjsua2 clients; every record, merged.
    ``on_start(wall time of scenario second 0)`` runs once every process is ready, just
    before the script starts (the lab aligns the billing service's clock there)."""
    plan = scenario if isinstance(scenario, DriverPlan) else plans.from_scenario(
        scenario, proxy, speed, timeout)
    return run_plan(plan, Path(out_dir or default_runtime_dir() / "driver"), processes,
                    on_start=on_start)


def run_driver(accounts: Iterable[Any], script: Iterable[Any], proxy: tuple[str, int, str],
               speed: float = 1.0, out_path: Path | str | None = None,
               timeout: float = 60.0, max_in_flight: int | None = None,
               processes: int = 1) -> list[dict[str, Any]]:
    """Hand-made accounts and script (see `lab.plan.build`) played in driver processes."""
    plan = plans.build(accounts, script, proxy, speed, timeout, max_in_flight)
    out = Path(out_path or default_runtime_dir() / "driver" / "records.jsonl")
    return run_plan(plan, out.parent, processes, merged=out.name)


def run_plan(plan: DriverPlan, out_dir: Path, processes: int = 1,
             merged: str = "records.jsonl",
             on_start: Callable[[float], None] | None = None) -> list[dict[str, Any]]:
    """Start the driver processes together, stop them together, merge their records."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines: queue.Queue = queue.Queue()
    children = [Child(part, out_dir, lines) for part in plans.split(plan, processes)]
    codes = {}
    try:
        _await(lines, children, "ready", time.monotonic() + STARTUP_TIMEOUT)
        start = time.time() + START_MARGIN
        if on_start is not None:
            on_start(start)
        for child in children:
            child.say(f"go {start!r}")
        _await(lines, children, "done", time.monotonic() + plan.timeout)
    finally:
        for child in children:
            child.say("stop")
        for child in children:
            codes[child.index] = child.finish(STOP_TIMEOUT)
    records = read_records(child.out for child in children)
    records += [{"kind": "run", "proc": n, "wall": time.time(), "t": None,
                 "event": "exit_code", "detail": code} for n, code in codes.items()]
    with open(out_dir / merged, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in records)
    return records


def _await(lines: queue.Queue, children: list[Child], word: str, deadline: float) -> None:
    """Until every live child said `word` (or ended, or the deadline passed)."""
    waiting = {child.index for child in children if child.proc.poll() is None}
    while waiting and time.monotonic() < deadline:
        try:
            index, line = lines.get(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            waiting = {n for n in waiting if children[n].proc.poll() is None}
            continue
        if line is None or line == word:
            waiting.discard(index)


def read_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every record of the given JSON-lines files, by wall time (a torn last line skipped)."""
    records = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return sorted(records, key=lambda r: r.get("wall") or 0)


def messages(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per msg_id: sender's answer joined with the recipient's receipt."""
    rows: dict[Any, dict[str, Any]] = {}
    for record in records:
        kind, msg_id = record.get("kind"), record.get("msg_id")
        if kind in ("sent", "message"):
            row = rows.setdefault(msg_id, dict.fromkeys(MESSAGE_COLUMNS))
            row.update({k: record.get(k) for k in MESSAGE_COLUMNS[:6]})
            if kind == "message":
                row.update(code=record["code"], reason=record["reason"],
                           answered_at=record["answered_at"],
                           call_id=record.get("call_id"), date=record.get("date"))
    for record in records:
        if record.get("kind") == "received" and record.get("msg_id") in rows:
            row = rows[record["msg_id"]]
            row.update(delivered_at=record["delivered_at"], delivered_t=record["delivered_t"])
            row["latency"] = row["delivered_at"] - row["sent_at"]
    return list(rows.values())


if __name__ == "__main__":
    main()
