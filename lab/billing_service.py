"""The imsim billing service: Kamailio's authorizer and accountant (lab/CONTRACT.md).

    python -m lab.billing_service --scenario scenarios/handbook.yaml --port 8070 \\
        --db lab/run/xdr.sqlite [--speed 1] [--epoch UNIX_TIME]

Every decision comes from `imsim.rules.decide.BillingEngine`, the very code the simulator
runs; this module only turns HTTP bodies into `Message`s and `Decision`s back into
JSON, keeps the balances (`Ledger`) of each virtual billing environment, and stores
the xDRs (`lab.xdr_store`, durable before /account is answered).

- The environment of a message is the one whose SIP domain is the sender's domain; that
  environment's engine decides for any recipient domain (a domain one of its service
  policies matches is one its PortaSIP serves, lab/CONTRACT.md), and the answer names
  the account's own domain for Kamailio's lookup.
- The scenario clock: ``at = scenario.start + (now - epoch) * speed``; with a setup
  journal the engine is the latest environment version in effect at that moment.
- One asyncio thread answers HTTP (`lab.httpd`); one thread writes SQLite.
- The PortaBilling-style JSON API (`lab.billing_api`) is served on the same port; its
  login comes from a secret file (generated, owner-only, when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import datetime as dt
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imsim.errors import UsageError
from imsim.model import scenario as scenarios
from imsim.model.config import Environment
from imsim.model.replay import timeline
from imsim.model.scenario import Scenario, ScenarioError
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Decision, Message
from imsim.rules.settle import charge
from lab import httpd
from lab.billing_api import Api, BadInput, json_object
from lab.httpd import Deferred, Reply, Request
from lab.xdr_store import XdrStore

log = logging.getLogger("imsim.billing_service")

PENDING_SECONDS = 120.0  # an authorized message whose /account never came is released
MAX_ACCOUNTS = 256  # /account bodies in one POST /accounts
LOOPBACK = ("127.0.0.1", "::1", "localhost")
_AUTHORIZE_FIELDS = {"call_id": str, "msg_id": str, "from_user": str, "from_domain": str,
                     "to_user": str, "to_domain": str, "length": int}
_ACCOUNT_FIELDS = _AUTHORIZE_FIELDS | {"code": int, "reason": str}


def environment_versions(scenario: Scenario) -> dict[str, list[tuple[float, Environment]]]:
    """Each environment's versions as (effective seconds since start, Environment): the
    setup journal replayed with the propagation delay (`imsim.model.replay.timeline`)."""
    return timeline(scenario)


@dataclass(frozen=True)
class ScenarioClock:
    """Wall time -> the scenario's calendar, scaled by ``speed``."""

    start: dt.datetime
    epoch: float
    speed: float = 1.0

    def seconds(self, now: float | None = None) -> float:
        return ((time.time() if now is None else now) - self.epoch) * self.speed

    def calendar(self, seconds: float) -> dt.datetime:
        """The scenario's date and time ``seconds`` after its start."""
        return self.start + dt.timedelta(seconds=seconds)


class Environments:
    """The engines of every environment version, found by SIP domain and scenario time."""

    def __init__(self, scenario: Scenario) -> None:
        self.names: dict[str, str] = {}  # domain -> environment name
        self.times: dict[str, list[float]] = {}
        self.engines: dict[str, list[BillingEngine]] = {}
        self.ledgers: dict[str, Ledger] = {}
        for name, versions in environment_versions(scenario).items():
            self.times[name] = [seconds for seconds, _ in versions]
            self.engines[name] = [BillingEngine(env) for _, env in versions]
            # Balances belong to the accounts as provisioned, journal included.
            self.ledgers[name] = Ledger.of(scenario.environment(name))
            for _, env in versions:
                self.names[env.domain.lower()] = name

    def engine(self, name: str, seconds: float) -> BillingEngine:
        """The latest version in effect at ``seconds`` (the first one before it starts)."""
        index = bisect.bisect_right(self.times[name], seconds) - 1
        return self.engines[name][max(index, 0)]

    def accounts(self) -> set[str]:
        return {account for engines in self.engines.values() for engine in engines
                for account in engine.accounts}


@dataclass
class Pending:
    engine: BillingEngine
    ledger: Ledger
    message: Message
    decision: Decision
    since: float


class BillingService:
    """The HTTP handler: /authorize, /account, and the JSON API."""

    def __init__(self, scenario: Scenario, store: XdrStore, clock: ScenarioClock,
                 api_login: str, api_password: str) -> None:
        self.scenario, self.store, self.clock = scenario, store, clock
        self.envs = Environments(scenario)
        self.api = Api(store, api_login, api_password, self.envs.accounts())
        self.pending: dict[str, Pending] = {}
        self.writing: dict[str, Deferred] = {}
        self.committed: collections.deque[tuple[str, int, Deferred, Future]] = \
            collections.deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.accounted, self.last_xdr = store.accounted()
        self._replay_balances()

    def handle(self, request: Request) -> Reply | Deferred:
        if request.method != "POST":
            return httpd.error(405, "Client.method", "use POST")
        try:
            if request.path == "/authorize":
                return self.authorize(_fields(json_object(request), _AUTHORIZE_FIELDS))
            if request.path == "/account":
                return self.account(_fields(json_object(request), _ACCOUNT_FIELDS))
            if request.path == "/accounts":
                return self.accounts(json_object(request))
            if request.path == "/lab/clock":
                return self.set_clock(request)
        except BadInput as bad:
            log.warning("%s: %s", request.path, bad)
            return bad.reply
        answer = self.api.handle(request)
        if answer is None:
            log.warning("no such path: %s %.100s", request.method, request.path)
        return answer if answer is not None else httpd.error(404, "Client.path", "no such path")

    # /authorize --------------------------------------------------------------------
    def authorize(self, body: dict[str, Any]) -> Reply:
        refusal = self._unknown_sender(body)
        if refusal is not None:
            return refusal
        name = self.envs.names[body["from_domain"].lower()]
        seconds = self.clock.seconds()
        engine, ledger = self.envs.engine(name, seconds), self.envs.ledgers[name]
        message = _message(body, self.clock.calendar(seconds))
        self._release(message.call_id)
        decision = engine.authorize(message, ledger)
        if decision.ok:
            self.pending[message.call_id] = Pending(engine, ledger, message, decision,
                                                    time.monotonic())
        return Reply(200, {"code": decision.code, "reason": decision.reason,
                           "step": decision.step, "target": decision.recipient,
                           "domain": engine.env.domain})

    def _unknown_sender(self, body: dict[str, Any]) -> Reply | None:
        """A sender outside every environment. The recipient domain is not checked
        here: the sender's environment decides it (`BillingEngine.decide`)."""
        if body["from_domain"].lower() not in self.envs.names:
            return _answer(403, f"Forbidden (domain {body['from_domain'][:64]} is not a "
                           "billing environment)")
        return None

    def _release(self, call_id: str) -> None:
        stale = self.pending.pop(call_id, None)
        if stale is not None:
            stale.engine.release(stale.message, stale.ledger)

    # /account ----------------------------------------------------------------------
    def account(self, body: dict[str, Any]) -> Reply | Deferred:
        call_id = body["call_id"]
        if call_id in self.writing:
            return self.writing[call_id]
        if call_id in self.accounted:
            return Reply(200, {"xdrs": 0, "duplicate": True})
        pending = self.pending.pop(call_id, None) or self._redecide(body)
        if pending is None:
            return Reply(200, {"xdrs": 0})
        rows = pending.engine.account(pending.message, pending.decision, body["code"],
                                      body["reason"], pending.ledger, self.last_xdr + 1)
        if not rows:
            return Reply(200, {"xdrs": 0})
        self.last_xdr += len(rows)
        return self._write(call_id, rows)

    def accounts(self, document: dict[str, Any]) -> Reply | Deferred:
        """``{"accounts": [/account body, ...]}``: each accounted as by /account, one
        answer when all are stored: ``{"results": [each /account answer, in order]}``
        (a malformed body's answer is its 4xx fault; the others are still billed)."""
        items = document.get("accounts")
        if not isinstance(items, list) or not 0 < len(items) <= MAX_ACCOUNTS:
            raise BadInput(400, "Client.params", "accounts must be a list of 1 to "
                           f"{MAX_ACCOUNTS} /account bodies")
        return httpd.gather([self._account_item(item) for item in items], _results)

    def _account_item(self, item: Any) -> Reply | Deferred:
        try:
            if not isinstance(item, dict):
                raise BadInput(400, "Client.params", "each account must be a JSON object")
            return self.account(_fields(item, _ACCOUNT_FIELDS))
        except BadInput as bad:
            log.warning("/accounts: %s", bad)
            return bad.reply

    def _redecide(self, body: dict[str, Any]) -> Pending | None:
        """An /account without a pending authorization (service restarted in between)."""
        if not 200 <= body["code"] < 300 or self._unknown_sender(body) is not None:
            return None
        name = self.envs.names[body["from_domain"].lower()]
        seconds = self.clock.seconds()
        engine, ledger = self.envs.engine(name, seconds), self.envs.ledgers[name]
        message = _message(body, self.clock.calendar(seconds))
        decision = engine.authorize(message, ledger)
        log.warning("account %s without authorization: decided again now: %d %s",
                    message.call_id, decision.code, decision.reason)
        return Pending(engine, ledger, message, decision, time.monotonic())

    def _write(self, call_id: str, rows: list[Any]) -> Deferred:
        """Hand the rows to the writer; the answer goes out after their COMMIT."""
        answer = Deferred()
        self.writing[call_id] = answer
        self.store.submit(rows).add_done_callback(
            lambda written: self.committed.append((call_id, len(rows), answer, written)))
        return answer

    def after_batch(self) -> None:
        """Writer thread, once per batch: wake the event loop to send the answers."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._answer_committed)

    def _answer_committed(self) -> None:
        while self.committed:
            call_id, count, answer, written = self.committed.popleft()
            self.writing.pop(call_id, None)
            if written.exception() is not None:
                answer.resolve(httpd.error(500, "Server.store", "xDR not stored"))
                continue
            self.accounted.add(call_id)
            answer.resolve(Reply(200, {"xdrs": count}))

    # /lab/clock --------------------------------------------------------------------
    def set_clock(self, request: Request) -> Reply:
        """``{"params": {"epoch": T, "speed": S}}`` with an API session: scenario second 0
        is wall time T from now on, and the run starts afresh (balances as provisioned, no
        pending authorization). Answers the last i_xdr stored so far: the new run's xDRs
        are the ones after it."""
        document = json_object(request)
        self.api.check_session(request, document)
        params = document.get("params")
        epoch = params.get("epoch") if isinstance(params, dict) else None
        speed = params.get("speed", self.clock.speed) if isinstance(params, dict) else None
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (epoch, speed)) \
                or not 0 < speed <= 1e6:  # type: ignore[operator]
            raise BadInput(400, "Client.params", "params.epoch (Unix time) and params.speed "
                           "(> 0) must be numbers")
        self.clock = ScenarioClock(self.clock.start, float(epoch), float(speed))  # type: ignore[arg-type]
        for call_id in list(self.pending):
            self._release(call_id)
        self.envs.ledgers = {name: Ledger.of(self.scenario.environment(name))
                             for name in self.envs.ledgers}
        log.info("clock: scenario second 0 at %.3f, speed %g; balances as provisioned",
                 self.clock.epoch, self.clock.speed)
        return Reply(200, {"epoch": self.clock.epoch, "speed": self.clock.speed,
                           "last_xdr": self.last_xdr})

    # housekeeping ------------------------------------------------------------------
    def expire(self, now: float | None = None) -> int:
        """Release holds of authorizations whose /account never came."""
        limit = (time.monotonic() if now is None else now) - PENDING_SECONDS
        stale = [call_id for call_id, p in self.pending.items() if p.since < limit]
        for call_id in stale:
            self._release(call_id)
        return len(stale)

    def _replay_balances(self) -> None:
        """Charge the ledgers with the xDRs already stored (a restarted service)."""
        for xdr in self.store.xdrs():
            if xdr.direction not in ("outgoing", "incoming") or xdr.env not in self.envs.ledgers:
                continue
            engine = self.envs.engines[xdr.env][-1]
            if xdr.account_id not in engine.accounts or not charge(
                    self.envs.ledgers[xdr.env], engine.payer(xdr.account_id),
                    xdr.charged_amount):
                log.warning("stored xDR %d cannot be charged again to %s", xdr.i_xdr,
                            xdr.account_id)


def _fields(document: dict[str, Any], spec: dict[str, type]) -> dict[str, Any]:
    """The contract's fields with their types, or BadInput(400) naming the first wrong one."""
    for name, kind in spec.items():
        value = document.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadInput(400, "Client.params", f"{name} must be "
                           f"{'an integer' if kind is int else 'a text'}")
        if isinstance(value, str) and len(value) > 1024:
            raise BadInput(400, "Client.params", f"{name} is longer than 1024 characters")
    if document["length"] < 0 or not document["call_id"]:
        raise BadInput(400, "Client.params", "length must be >= 0 and call_id not empty")
    if "code" in spec and not 100 <= document["code"] <= 699:
        raise BadInput(400, "Client.params", "code must be a SIP status code")
    return document


def _results(replies: list[Reply]) -> Reply:
    return Reply(200, {"results": [reply.payload for reply in replies]})


def _message(body: dict[str, Any], at: dt.datetime) -> Message:
    return Message(body["msg_id"], body["from_user"], body["to_user"], body["to_domain"], at,
                   body["length"], body["call_id"])


def _answer(code: int, reason: str) -> Reply:
    return Reply(200, {"code": code, "reason": reason, "step": None, "target": None})


# -- running it --------------------------------------------------------------------------

def api_credentials(path: Path, login: str) -> tuple[str, str]:
    """(login, password) from a secret file; a missing one is generated, owner-only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = json.dumps({"login": login, "password": secrets.token_urlsafe(24)})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        log.info("generated API credentials in %s (owner-only)", path)
    try:
        found = json.loads(path.read_text())
        return str(found["login"]), str(found["password"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a credentials file ({exc.__class__.__name__}); "
                         'write {"login": ..., "password": ...}') from None


async def serve(service: BillingService, host: str, port: int, max_body: int,
                stop: asyncio.Event) -> None:
    service.loop = asyncio.get_running_loop()
    service.store.after_batch = service.after_batch
    server = await httpd.serve(service.handle, host, port, max_body=max_body)
    log.info("listening on %s:%d (scenario %s, speed %g)", host, port, service.scenario.name,
             service.clock.speed)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=10)
            except TimeoutError:
                service.expire()
    finally:
        server.close()
        await server.wait_closed()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.billing_service",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", required=True, help="scenario YAML file")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--db", required=True, help="SQLite xDR file")
    parser.add_argument("--speed", type=float, default=1.0, help="scenario seconds per second")
    parser.add_argument("--epoch", type=float, help="Unix time at which the scenario starts "
                        "(default: now)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--api-login", default="admin", help="JSON API login")
    parser.add_argument("--api-secret", help="JSON API credentials file (default: next to --db)")
    parser.add_argument("--max-body", type=int, default=64 * 1024, help="largest request body")
    parser.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL", "EXTRA"),
                        help="SQLite durability of each commit")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if args.host not in LOOPBACK:
        raise UsageError(f"--host {args.host}: the billing service listens on loopback only")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: not a TCP port")
    if not 0 < args.speed <= 1e6:
        raise UsageError(f"--speed {args.speed}: must be > 0")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s billing %(levelname)s %(message)s")
    args = parse_args(argv)
    os.umask(0o077)  # the xDR store and the secret file are the owner's only
    try:
        check_args(args)
        loaded = scenarios.load(args.scenario)
        login, password = api_credentials(
            Path(args.api_secret or Path(args.db).with_name("billing_api.secret")),
            args.api_login)
        store = XdrStore(args.db, args.synchronous)
    except (ScenarioError, UsageError, OSError) as exc:
        print(f"billing service: {exc}", file=sys.stderr)
        return 2
    epoch = time.time() if args.epoch is None else args.epoch
    clock = ScenarioClock(loaded.start, epoch, args.speed)
    try:
        asyncio.run(_run(BillingService(loaded, store, clock, login, password), args))
    finally:
        store.close()
        log.info("stopped")
    return 0


async def _run(service: BillingService, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(service, args.host, args.port, args.max_body, stop)


if __name__ == "__main__":
    sys.exit(main())
