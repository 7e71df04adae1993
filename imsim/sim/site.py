"""One virtual billing environment in time: its population, the configuration in
effect at each moment, the billing engine of that configuration, and the pools.

The configuration server holds timestamped versions (`imsim.model.replay.timeline`: the
setup journal, with the propagation delay of configuration-server and service-policy
changes); the `BillingEngine` used at a moment is the one built from the version in
effect then. Its decisions are memoized per (sender, recipient, length, rating
period), see `imsim.sim.periods`, each with its `Tab` (`BillingEngine.tab`: the
payers and amounts to settle it with); balances are never memoized.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from decimal import Decimal

from imsim.model.config import Environment
from imsim.model.settings import METHODS
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Decision, Message, Xdr
from imsim.rules.settle import Tab
from imsim.sim.core import INF
from imsim.sim.periods import breakpoints
from imsim.sim.pools import Pool
from imsim.sim.prefetch import E164Prefetch
from imsim.sim.records import Recorder

MEMO_LIMIT = 4_000_000
"""Plans kept per configuration version (about 250 bytes each): every sender/recipient
pair of a million accounts with two buddies each. Past it the memo starts again."""
PREFETCH_MIN = 5_000
"""From this many accounts, a site has their numbers translated to E.164 in a helper
process while it runs (`imsim.sim.prefetch.E164Prefetch`): each engine takes them from there."""
MemoKey = tuple[str, str, int, int]
Money = tuple[tuple[tuple[str, str, str, str, str], int, Decimal], ...]


class Route:
    """A memoized `decide` answer and what the message path needs again with it: its
    `Tab` (None: settle and account on the plain path), and the money of a delivery's
    xDRs, each (env, direction, tariff, rate_code, currency), units, amount: one
    shared tuple per distinct money (``moneys``), as many routes have the same. Also
    the last password `BillingEngine.authenticate` accepted for it (the same string
    object again needs no check: the answer depends on the engine, the sender and the
    password only), the recipient's index in the site (`recipient_in`), and the version whose
    memo has it (``owner``: a route found by `Site.routes` is used only in its version)."""

    __slots__ = ("decision", "ok", "tab", "money", "counter", "password", "recipient", "owner")

    def __init__(self, engine: BillingEngine, sender: str, decision: Decision,
                 moneys: dict[Money, Money]) -> None:
        self.decision, self.ok = decision, decision.ok
        self.tab: Tab | None = engine.tab(sender, decision)
        money: Money = ()
        if decision.ok and decision.billed:
            money = tuple(((engine.env.name, direction, r.tariff, r.rate_code, r.currency),
                           r.units, r.amount) for _, direction, r in engine.lines(sender, decision))
        self.money = moneys.setdefault(money, money)
        self.counter: list[int] | None = None
        self.password: str | None = None
        self.recipient = -2
        self.owner: Version | None = None   # the version whose memo has it

    def settle(self, engine: BillingEngine, msg: Message | None, ledger: Ledger) -> Decision:
        """`BillingEngine.settle` of the decision for one message: with the route's
        `Tab` (found once), or, without one (a bundle), on the plain path with ``msg``."""
        if self.tab is not None:
            return self.tab.settle(ledger)
        assert msg is not None
        return engine.settle(msg, self.decision, ledger)

    def account(self, engine: BillingEngine, msg: Message, decision: Decision, code: int,
                reason: str, ledger: Ledger, first_xdr: int) -> list[Xdr]:
        """`BillingEngine.account` of a message this route settled (`settle` gave
        ``decision``): its xDRs, numbered from ``first_xdr``."""
        tab = self.tab
        if tab is None:
            return engine.account(msg, decision, code, reason, ledger, first_xdr)
        if not tab.account(ledger, code):
            return []
        assert decision.recipient is not None
        return engine.xdrs(msg, decision.recipient, engine.lines(msg.sender, decision), code,
                           reason, first_xdr)

    def recipient_in(self, site: Site) -> int:
        """The index of the decision's recipient among the site's accounts, -1 if none
        (found once)."""
        found = self.recipient
        if found == -2:
            number = self.decision.recipient
            found = self.recipient = site.index.get(number, -1) if number is not None else -1
        return found


class Version:
    """One configuration version: its engine (built on first use) and decision memo."""

    def __init__(self, since: float, env: Environment, start: dt.datetime, until: float,
                 prefetch: E164Prefetch | None = None) -> None:
        self.since, self.env, self.prefetch = since, env, prefetch
        self._start, self._until = start, until
        self._engine: BillingEngine | None = None
        self.memo: dict[MemoKey, Route] = {}
        self.moneys: dict[Money, Money] = {}
        self.periods: list[int] = []
        self.by_length = any(p.billing_unit_size for p in env.service_policies)

    @property
    def engine(self) -> BillingEngine:
        if self._engine is None:
            self._engine = BillingEngine(self.env)
            self.periods = breakpoints(self.env, self._start, self._until)
        return self._engine

    def decide(self, msg: Message, to: str, micros: int) -> Decision:
        """`BillingEngine.decide` of ``msg`` (sent to ``to``), memoized."""
        return self.route(msg, to, micros).decision

    def route(self, msg: Message, to: str, micros: int) -> Route:
        """The memoized `decide` answer of ``msg`` (sent to ``to``) with its `Tab`."""
        key = self.key(msg.sender, to, msg.length, micros)
        found = self.memo.get(key)
        return found if found is not None else self.learn(key, msg)

    def key(self, sender: str, to: str, length: int, micros: int) -> MemoKey:
        """The memo key: the sender, the address as sent (in one site it gives the
        recipient's user and domain), the length when a policy bills by length, the
        rating period. The engine is built first: it finds the rating periods."""
        if self._engine is None:
            self.engine  # noqa: B018
        return (sender, to, length if self.by_length else 0,
                bisect_right(self.periods, micros) if self.periods else 0)

    def learn(self, key: MemoKey, msg: Message) -> Route:
        """Decide ``msg`` (a memo miss) and keep its plan under ``key``."""
        if len(self.memo) >= MEMO_LIMIT:
            self.memo.clear()
        prefetch = self.prefetch
        if prefetch is not None and prefetch.country == self.env.country:
            self.engine.numbers = prefetch.known()   # the translations arrived so far
        found = self.memo[key] = Route(self.engine, msg.sender, self.engine.decide(msg),
                                      self.moneys)
        found.owner = self
        return found


class Site:
    """A virtual environment: accounts by index, presence and registration state."""

    def __init__(self, final: Environment, versions: list[tuple[float, Environment]],
                 start: dt.datetime, until: float, proxy_workers: int, billing_workers: int,
                 recorder: Recorder) -> None:
        self.name, self.domain = final.name, final.domain
        self.challenges = 0   # 407 answers and plain deliveries, counted (`fold`)
        self.delivered = 0
        self.jobs = dict.fromkeys(METHODS, 0)   # 200s to signalling, by method (`fold`)
        self.start = start
        self._population(final)
        self.prefetch: E164Prefetch | None = None
        if len(self.ids) >= PREFETCH_MIN and any(
                p.userpart_e164_translation for _, env in versions for p in env.service_policies):
            self.prefetch = E164Prefetch(self.ids, final.country)
        self.versions = [Version(since, env, start, until, self.prefetch)
                         for since, env in versions]
        self._since = [v.since for v in self.versions]
        self.ledger = Ledger.of(final)
        self.proxy = Pool(f"{final.name}/proxy", proxy_workers)
        self.billing = Pool(f"{final.name}/billing", billing_workers)
        self.recorder = recorder

    def _population(self, env: Environment) -> None:
        pairs = [(c, a) for c in env.customers for a in c.accounts]
        self.ids = [a.id for _, a in pairs]
        self.index = {number: i for i, number in enumerate(self.ids)}
        self.passwords = [a.password for _, a in pairs]
        self.buddy_ids = [a.buddies for _, a in pairs]
        widest = max((len(b) for b in self.buddy_ids), default=0)
        self.route_width = widest if widest <= 16 else 0
        self.routes: list[Route | None] = [None] * (len(pairs) * self.route_width)
        """The plan of each (sender, buddy) pair, at ``sender x route_width + slot``: a
        message to a buddy finds it there, not by hashing its memo key (`Version.memo`
        still has it under that key)."""
        zones = sorted({c.time_zone for c, _ in pairs})
        self.zones = zones
        zone_index = {z: k for k, z in enumerate(zones)}
        self.zone_of = [zone_index[c.time_zone] for c, _ in pairs]
        size = len(pairs)
        self.online = [0] * size   # lists: compiled, an index is a load (a bytearray's
        #                          or an array's is a call that boxes its index)
        self.session = [0] * size
        self.registered_until = [-1.0] * size
        self.leaves = [INF] * size
        self.status = [0] * size
        # by account: sets of a few accounts each, as small lists (None: empty)
        self.watchers: list[list[int] | None] = [None] * size
        self.watching: list[list[int] | None] = [None] * size

    def fold(self) -> None:
        """Add what the message path counted here (not row by row) to the recorder."""
        recorder = self.recorder
        if self.challenges:
            recorder.sip[(self.name, "MESSAGE", 407)] += self.challenges
        if self.delivered:
            recorder.sip[(self.name, "MESSAGE", 200)] += self.delivered
            recorder.outcomes[(self.name, 200, "delivered")] += self.delivered
        for method, count in self.jobs.items():
            if count:
                recorder.sip[(self.name, method, 200)] += count
        self.challenges = self.delivered = 0
        self.jobs = dict.fromkeys(METHODS, 0)

    def buddies(self, i: int) -> list[int]:
        index = self.index
        found = [index.get(b, -1) for b in self.buddy_ids[i]]
        return [b for b in found if b >= 0]

    def version(self, now: float) -> Version:
        """The configuration in effect at ``now``."""
        if len(self.versions) == 1:
            return self.versions[0]
        return self.versions[bisect_right(self._since, now) - 1]

    def calendar(self, now: float) -> tuple[dt.datetime, int]:
        """The calendar moment of ``now`` and its microseconds since the start."""
        micros = round(now * 1_000_000)
        return self.start + dt.timedelta(microseconds=micros), micros

    def message(self, msg_id: str, sender: str, to_user: str, to_domain: str, length: int,
                now: float) -> Message:
        """The `Message` billing sees at ``now``."""
        return Message(msg_id, sender, to_user, to_domain, self.calendar(now)[0], length,
                       f"{msg_id}@{self.domain}")

    def registered(self, i: int, now: float) -> bool:
        return self.registered_until[i] > now

    def stays(self, b: int, until: float) -> bool:
        """Whether account ``b`` (an index; -1: none) is online and registered now and
        stays so until ``until`` at least: it does not go offline before (``leaves``,
        its session's scheduled end), so nothing unregisters it, and its binding
        outlives ``until`` (refreshes only extend a binding)."""
        return (b >= 0 and self.online[b] == 1 and self.registered_until[b] > until
                and self.leaves[b] > until)
