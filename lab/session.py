"""One driver process's run of its plan: online, play the script on time, offline.

Everything here runs in the driver process on one thread, polling pjsua2 (see
`lab.clients` for the pjsua2 rules and `lab.driver` for the records and the control
protocol).
"""

from __future__ import annotations

import select
import sys
import time
from pathlib import Path
from typing import IO, Any

from lab import clients, sip
from lab import plan as plans
from lab.plan import DriverPlan

SETUP_TIMEOUT = 5.0  # registrations and first NOTIFYs
LINGER = 1.0  # standalone: keep receiving after the last own answer
OFFLINE_WAIT = 1.0  # for the un-REGISTER answers


class Driver:
    """One process's part of a plan, on one thread, polling pjsua2."""

    def __init__(self, plan: DriverPlan, out_path: Path, control_in: IO[str] | None = None,
                 control_out: IO[str] | None = None) -> None:
        self.plan = plan
        self.control_in, self.control_out = control_in, control_out
        self.deadline = time.monotonic() + plan.timeout
        self.rec = clients.Recorder(out_path, plan.process, plan.speed)
        log = out_path.with_name(f"pjsua-{plan.process}.log")
        self.ep, transport = clients.start_endpoint(log, plan.log_level)
        self.phones = {i.key: clients.Softphone(i, plan.proxy, transport, self.rec,
                                                self.on_status) for i in plan.identities}
        self.pending: dict[int, tuple[Any, Any, float]] = {}
        # headers of messages given up on, kept alive until pjsip's own answer comes, so
        # that no new message's header reuses their address (the status callback's key)
        self.expired: dict[int, Any] = {}
        self.watch = sip.ProxyWatch(plan.proxy[0], plan.proxy[1], plan.watch_interval) \
            if plan.watch_interval > 0 else None
        self.next_check = 0.0

    # phases ------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.setup()
            self.signal("ready")
            self.rec.start = self.wait_go()
            self.rec.write("run", event="start", detail=self.rec.start)
            self.play()
            self.signal("done")
            self.wait_stop()
        except Exception as exc:  # recorded; the records so far stay on disk
            self.rec.write("run", event="error", detail=clients.describe(exc))
            raise
        finally:
            self.shutdown()

    def setup(self) -> None:
        early = [p for p in self.phones.values()
                 if p.ident.register and p.ident.online_at <= 0]
        for phone in early:
            phone.go_online()
        self.poll_until(lambda: all(p.reg_code is not None for p in early), SETUP_TIMEOUT)
        watched = [b for p in early for b in p.buddies.values()]
        self.poll_until(lambda: all(b.last is not None for b in watched), SETUP_TIMEOUT)

    def play(self) -> None:
        events = self.schedule()
        index, window = 0, self.plan.max_in_flight or sys.maxsize
        while time.monotonic() < self.deadline:
            now = time.time()
            self.check(now)
            while index < len(events) and events[index][0] <= now \
                    and (events[index][1] != 2 or len(self.pending) < window):
                self.fire(events[index][2], events[index][1])
                index += 1
            if index == len(events) and not self.pending:
                return
            due = index < len(events) and events[index][0] <= now  # window full
            wait = 0.01 if due or index == len(events) else events[index][0] - now
            self.ep.libHandleEvents(int(min(wait, 0.01) * 1000))
        self.rec.write("run", event="timeout", detail=f"{len(self.pending)} unanswered")

    def schedule(self) -> list[tuple[float, int, Any]]:
        """(wall time, order, what): offline before online before messages at one time."""
        start, plan = self.rec.start or time.time(), self.plan
        events: list[tuple[float, int, Any]] = [
            (start + plan.wall_offset(m.at), 2, m) for m in plan.messages]
        for ident in plan.identities:
            if ident.register and ident.online_at > 0:
                events.append((start + plan.wall_offset(ident.online_at), 1, ident))
            if ident.offline_at is not None:
                events.append((start + plan.wall_offset(ident.offline_at), 0, ident))
        return sorted(events, key=lambda e: (e[0], e[1]))

    def fire(self, what: Any, order: int) -> None:
        if order == 0:
            self.phones[what.key].go_offline()
        elif order == 1:
            self.phones[what.key].go_online()
        else:
            self.send(what)

    def send(self, msg: plans.PlannedMessage) -> None:
        token = clients.msg_id_header(msg.msg_id)
        sent = time.time()
        fields = {"msg_id": msg.msg_id, "from": msg.sender, "to": msg.to,
                  "domain": msg.domain, "sent_at": sent, "sent_t": self.rec.scenario_t(sent)}
        self.rec.write("sent", wall=sent, **fields)
        self.pending[int(token.this)] = (msg, token, sent)
        try:
            self.phones[msg.identity_key].send(msg, token)
        except Exception as exc:  # pjsua2 refused to build or send the request
            del self.pending[int(token.this)]
            self.rec.write("message", **fields, code=None, reason=clients.describe(exc),
                           answered_at=None)

    def on_status(self, prm: Any) -> None:
        key = int(prm.userData) if prm.userData else 0
        entry = self.pending.pop(key, None)
        if entry is None:
            self.expired.pop(key, None)  # the late answer of a message given up on
            return
        whole = prm.rdata.wholeMsg if prm.rdata is not None else ""
        self.answered(entry, prm.code, prm.reason, whole)

    def answered(self, entry: tuple[Any, Any, float], code: int, reason: str,
                 answer: str = "") -> None:
        """The message record; ``answer``: the whole SIP response, for its Call-ID and the
        proxy's Date (matching xDRs that carry no imsim id, `lab.matching`)."""
        msg, _token, sent = entry
        self.rec.write("message", msg_id=msg.msg_id, **{"from": msg.sender}, to=msg.to,
                       domain=msg.domain, sent_at=sent, sent_t=self.rec.scenario_t(sent),
                       code=code, reason=reason, answered_at=time.time(),
                       call_id=clients.header(answer, "Call-ID", "i"),
                       date=clients.header(answer, "Date"))

    # outages -----------------------------------------------------------------------
    def check(self, now: float) -> None:
        """A few times a second: give up on overdue answers; watch the proxy."""
        if now < self.next_check:
            return
        self.next_check = now + 0.05
        overdue = [key for key, (_, _, sent) in self.pending.items()
                   if now - sent > self.plan.answer_timeout]
        for key in overdue:
            entry = self.pending.pop(key)
            self.expired[key] = entry[1]
            self.answered(entry, 408, f"Request Timeout (no final answer within "
                          f"{self.plan.answer_timeout:g} s)")
        for event in self.watch.poll() if self.watch is not None else ():
            self.proxy_event(event)

    def proxy_event(self, event: str) -> None:
        assert self.watch is not None
        since = time.time() - (time.monotonic() - self.watch.silent_since)
        self.rec.write("proxy", event=event, boot=self.watch.boot,
                       silent_since_t=self.rec.scenario_t(since))
        if event in ("restarted", "up"):
            self.register_again()

    def register_again(self) -> None:
        """A restarted proxy forgot every registration: register each online phone."""
        for phone in self.phones.values():
            if phone.online:
                phone.register_again()

    def wait_go(self) -> float:
        if self.control_in is None:
            return time.time()
        line = self.read_control(self.deadline)
        if not line or not line.startswith("go"):
            raise RuntimeError(f"expected 'go <time>' from the parent, got {line!r}")
        return float(line.split()[1])

    def wait_stop(self) -> None:
        if self.control_in is None:
            self.poll_until(lambda: False, LINGER)
            return
        line = self.read_control(self.deadline)
        self.rec.write("run", event="stop", detail=line or "end of input")

    def shutdown(self) -> None:
        online = [p for p in self.phones.values() if p.online]
        for phone in online:
            phone.go_offline()
        phones = self.phones.values()
        self.poll_until(lambda: not any(p.registered for p in phones), OFFLINE_WAIT)
        self.rec.write("run", event="exit", detail=len(self.pending))
        if self.watch is not None:
            self.watch.close()
        self.ep.libDestroy()
        self.rec.close()

    # helpers -----------------------------------------------------------------------
    def poll_until(self, predicate: Any, seconds: float) -> bool:
        until = min(time.monotonic() + seconds, self.deadline)
        while not predicate():
            if time.monotonic() >= until:
                return False
            self.ep.libHandleEvents(10)
        return True

    def read_control(self, deadline: float) -> str | None:
        """A line from the parent, handling SIP events meanwhile; None on EOF/timeout."""
        assert self.control_in is not None
        fd = self.control_in.fileno()
        while time.monotonic() < deadline:
            self.ep.libHandleEvents(5)
            if select.select([fd], [], [], 0)[0]:
                line = self.control_in.readline()
                return line.strip() or None
        return None

    def signal(self, word: str) -> None:
        self.rec.write("run", event=word)
        if self.control_out is not None:
            self.control_out.write(word + "\n")
            self.control_out.flush()
