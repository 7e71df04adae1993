"""What the pjsua2 driver plays: identities, their presence window and the scripted MESSAGEs.

Plain data, no pjsua2: a `DriverPlan` is built from a `Scenario` (or by hand in tests and
benchmarks), split into per-process plans (pjsua2 is compiled with at most 8 accounts
and 256 buddies per process, and aborts the process beyond that), and written as JSON
for `python -m lab.driver --plan plan.json`.

An identity is one SIP account as a client uses it: (user, domain, password). Scenario
accounts register, publish and watch their buddies; a scripted message that names its
own password (a wrong-password test) or a sender outside the scenario is sent from a
send-only identity that never registers.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

MAX_ACCOUNTS = 8  # PJSUA_MAX_ACC of the pjsua2-python build: a 9th account aborts
MAX_BUDDIES = 256  # PJSUA_MAX_BUDDIES: the 257th buddy aborts
TARGET_CACHE = 32  # send-only Buddy objects kept per process (message targets)
_USER_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                 "-_.!~*'()&=+$,;?/")


class PlanError(ValueError):
    """A plan the driver cannot play (too many buddies for one process, ...)."""


@dataclass(frozen=True)
class Identity:
    user: str
    domain: str
    password: str
    register: bool = True
    buddies: tuple[str, ...] = ()
    online_at: float = 0.0
    offline_at: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user, self.domain, self.password)

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.domain}"


@dataclass(frozen=True)
class PlannedMessage:
    msg_id: str
    at: float
    sender: str
    domain: str
    password: str
    to: str
    to_uri: str
    body: str

    @property
    def identity_key(self) -> tuple[str, str, str]:
        return (self.sender, self.domain, self.password)


@dataclass(frozen=True)
class DriverPlan:
    proxy: tuple[str, int, str]
    identities: tuple[Identity, ...]
    messages: tuple[PlannedMessage, ...] = ()
    speed: float = 1.0  # scenario seconds per real second; 0 or inf: as fast as possible
    timeout: float = 60.0  # hard bound on the whole run of one driver process
    max_in_flight: int | None = None  # MESSAGE transactions awaiting a final answer
    # a MESSAGE without a final answer after this many seconds is recorded as 408 (above
    # Kamailio's 10 s fr_timer; pjsip's own timer F is 32 s when the proxy is gone)
    answer_timeout: float = 12.0
    watch_interval: float = 1.0  # OPTIONS to the proxy; a restart -> register again; 0: off
    process: int = 0
    log_level: int = 0  # pjsua log level, written to pjsua.log next to the records

    @property
    def end(self) -> float:
        """The last scheduled scenario second (messages and presence changes)."""
        times = [m.at for m in self.messages] + [i.online_at for i in self.identities]
        times += [i.offline_at for i in self.identities if i.offline_at is not None]
        return max(times, default=0.0)

    def wall_offset(self, at: float) -> float:
        """Real seconds after the start at which scenario second `at` is played."""
        if self.speed <= 0 or math.isinf(self.speed):
            return 0.0
        return at / self.speed

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def write(self, path: Path) -> Path:
        path.write_text(self.to_json())
        return path


def redacted(plan: DriverPlan) -> DriverPlan:
    """The plan without its passwords (what is written next to the records)."""
    return replace(plan, identities=tuple(replace(i, password="***") for i in plan.identities),
                   messages=tuple(replace(m, password="***") for m in plan.messages))


def from_json(text: str) -> DriverPlan:
    raw = json.loads(text)
    identities = tuple(Identity(**dict(i, buddies=tuple(i["buddies"])))
                       for i in raw.pop("identities"))
    messages = tuple(PlannedMessage(**m) for m in raw.pop("messages"))
    return DriverPlan(proxy=tuple(raw.pop("proxy")), identities=identities,  # type: ignore[arg-type]
                messages=messages, **raw)


def read(path: Path) -> DriverPlan:
    return from_json(Path(path).read_text())


def escape_user(user: str) -> str:
    """A SIP URI user part: RFC 3261 unreserved and user-unreserved kept, the rest %XX."""
    return "".join(c if c in _USER_SAFE else "".join(f"%{b:02X}" for b in c.encode())
                   for c in user)


def target_uri(to: str, domain: str) -> str:
    """`to` as written in the script ("+1 (555) 123-0001", "b@dom") -> a SIP URI."""
    user, _, to_domain = to.partition("@")
    return f"sip:{escape_user(user.strip())}@{to_domain.strip() or domain}"


def from_scenario(scenario: Any, proxy: tuple[str, int, str], speed: float = 1.0,
                  timeout: float | None = None) -> DriverPlan:
    """Every account of every environment, online for the whole run, and the script."""
    identities = {}
    for env in scenario.environments:
        for account_id, (_, account) in env.accounts().items():
            ident = Identity(account_id, env.domain, account.password,
                             buddies=tuple(account.buddies))
            identities[ident.key] = ident
    messages = tuple(_message(scenario, index, msg, identities)
                     for index, msg in enumerate(scenario.traffic.script))
    plan = DriverPlan(proxy, tuple(identities.values()), messages, speed=speed)
    bound = timeout if timeout is not None else plan.wall_offset(plan.end) + 60.0
    return replace(plan, timeout=bound)


def _message(scenario: Any, index: int, msg: Any, identities: dict) -> PlannedMessage:
    domain = msg.sender_domain or _home_domain(scenario, msg.sender)
    account = next((i for i in identities.values()
                    if (i.user, i.domain) == (msg.sender, domain)), None)
    password = msg.password if msg.password is not None else (
        account.password if account else "")
    if (msg.sender, domain, password) not in identities:
        sender = Identity(msg.sender, domain, password, register=False)
        identities[sender.key] = sender
    body = msg.body if msg.body is not None else "x" * msg.size
    return PlannedMessage(msg.id or str(index), float(msg.at), msg.sender, domain, password,
                   msg.to, target_uri(msg.to, domain), body)


def _home_domain(scenario: Any, sender: str) -> str:
    env = scenario.home_of(sender)
    return (env or scenario.environments[0]).domain


def split(plan: DriverPlan, processes: int = 1) -> list[DriverPlan]:
    """Per-process plans: identities spread round-robin, each message with its sender.

    At least as many processes as MAX_ACCOUNTS requires; never more than identities.
    A domain where someone watches buddies has one identity per process: pjsua sends a
    buddy's SUBSCRIBE from the first account of the buddy's domain in its process
    (pjsua_acc_find_for_outgoing), not from the account that watches.
    """
    buddies = sum(len(i.buddies) for i in plan.identities)
    watched = {i.domain for i in plan.identities if i.buddies}
    sharing = Counter(i.domain for i in plan.identities if i.domain in watched)
    need = max(1, math.ceil(len(plan.identities) / MAX_ACCOUNTS),
               math.ceil(buddies / (MAX_BUDDIES - TARGET_CACHE)), *sharing.values())
    count = max(need, min(processes, len(plan.identities)) or 1)
    groups: list[list[Identity]] = [[] for _ in range(count)]
    ordered = sorted(plan.identities, key=lambda i: (i.domain not in watched, i.domain))
    for index, ident in enumerate(ordered):   # a domain's identities: consecutive
        groups[index % count].append(ident)
    home = {ident.key: n for n, group in enumerate(groups) for ident in group}
    parts = []
    for n, group in enumerate(groups):
        messages = tuple(m for m in plan.messages if home[m.identity_key] == n)
        part = replace(plan, identities=tuple(group), messages=messages, process=n)
        check(part)
        parts.append(part)
    return parts


def check(plan: DriverPlan) -> None:
    """Refuse what would abort pjsua2 (assertions, not exceptions, in its C code)."""
    if len(plan.identities) > MAX_ACCOUNTS:
        raise PlanError(f"{len(plan.identities)} accounts in one driver process; "
                        f"pjsua2 allows {MAX_ACCOUNTS}: split the plan")
    keys = {i.key for i in plan.identities}
    missing = [m.msg_id for m in plan.messages if m.identity_key not in keys]
    if missing:
        raise PlanError(f"messages {missing[:5]} have no sender identity in this plan")
    buddies = sum(len(i.buddies) for i in plan.identities)
    if buddies + TARGET_CACHE > MAX_BUDDIES:
        raise PlanError(f"{buddies} buddies in one driver process; pjsua2 allows "
                        f"{MAX_BUDDIES - TARGET_CACHE} besides message targets")


def build(accounts: Iterable[Any], script: Iterable[Any], proxy: tuple[str, int, str],
          speed: float = 1.0, timeout: float = 60.0,
          max_in_flight: int | None = None) -> DriverPlan:
    """A plan by hand: accounts as Identity, (user, domain, password[, buddies]) or dicts;
    script lines as PlannedMessage or dicts like the scenario's (id, at, from, to, body/length,
    optional password and domain)."""
    identities = {i.key: i for i in map(_identity, accounts)}
    messages = []
    for index, line in enumerate(script):
        msg = line if isinstance(line, PlannedMessage) else _scripted(index, line, identities)
        if msg.identity_key not in identities:
            sender = Identity(msg.sender, msg.domain, msg.password, register=False)
            identities[sender.key] = sender
        messages.append(msg)
    return DriverPlan(tuple(proxy), tuple(identities.values()), tuple(messages),  # type: ignore
                speed=speed, timeout=timeout, max_in_flight=max_in_flight)


def _identity(account: Any) -> Identity:
    if isinstance(account, Identity):
        return account
    if isinstance(account, dict):
        return Identity(**dict(account, buddies=tuple(account.get("buddies", ()))))
    user, domain, password, *rest = account
    return Identity(user, domain, password, buddies=tuple(rest[0]) if rest else ())


def _scripted(index: int, line: dict, identities: dict) -> PlannedMessage:
    sender = str(line["from"]).split("@", 1)[0]
    homes = [i for i in identities.values() if i.user == sender]
    domain = line.get("domain") or (homes[0].domain if homes else "")
    account = next((i for i in homes if i.domain == domain), None)
    password = line.get("password") or (account.password if account else "")
    body = line.get("body")
    body = str(body) if body is not None else "x" * int(line.get("length", 0))
    return PlannedMessage(str(line.get("id") or index), float(line.get("at", 0)), sender, domain,
                   password, str(line["to"]), target_uri(str(line["to"]), domain), body)
