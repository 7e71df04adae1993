"""The path of a MESSAGE through the proxy and the billing engine, in time.

Events of one message (each an event of the clock, see `imsim.sim.core`):

1. the MESSAGE reaches the proxy (``sent_at + delay``): a proxy transaction, answered
   407 (digest challenge); the client resends with credentials on receiving it;
2. the resent MESSAGE reaches the proxy: a second proxy transaction, then the
   authorization request goes to billing (one-way ``billing.latency``);
3. billing receives it: `BillingEngine.authenticate`, then `decide` (memoized) and
   `settle` with the environment's ledger, on the configuration in effect now; the
   answer leaves after the AAA pool's queue and service time;
4. the answer is back at the proxy: refused -> relayed to the sender; authorized ->
   the registrar lookup (480 when the recipient is not registered), then the
   recipient's softphone answers (200, a configured failure, or nothing: 408 after
   the transaction timeout) and billing accounts the final answer (`account`).

Event 4 is folded into event 3 when its outcome is already certain there (the fast
lane, `MessagePath.certain`): the recipient is online and registered past the
moment the answer is back, and will not go offline before then; softphones never
fail; nothing is kept row by row. The outcome, the balances and every count are then
those event 4 would give: a delivered message's accounting moves its hold into the
balance, which leaves every account's room (balance minus holds) as it was, so no
other decision can tell when it happened (tests/test_sim_fastlane.py). The hold and
its accounting are then one step (`Tab.settle_delivered`, tests/test_billing_tab.py).

Decisions are `imsim.rules.decide`'s; this module only adds time.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Final

from imsim.model.settings import SimSettings
from imsim.rules.message import Decision, Message
from imsim.sim.core import Clock, Event, Lane
from imsim.sim.draws import Streams, message_draws
from imsim.sim.records import Recorder
from imsim.sim.site import MemoKey, Route, Site, Version

NAN: Final = float("nan")
ARRIVE: Final = 0   # a message's next event (`Msg.stage`): events 1 to 4 above
RESENT: Final = 1
AUTHORIZE: Final = 2
ROUTE: Final = 3


class Msg(Event):
    """A message in flight; it is also its own event (`Event`): at its next
    ``stage`` it calls its path's. Its id is ``msg_id``, or with a ``serial`` (>= 0)
    ``msg_id`` followed by the serial, written out only when something shows it."""

    __slots__ = ("_id", "serial", "site", "sender", "to", "to_user", "to_domain", "length",
                 "password", "sent_at", "message", "decision", "version", "plan",
                 "path", "stage", "route")

    def __init__(self, path: MessagePath, msg_id: str, site: Site, sender: str, to: str,
                 to_user: str, to_domain: str, length: int, password: str, sent_at: float,
                 serial: int = -1, route: int = -1) -> None:
        super().__init__()
        self.path, self.stage, self.route = path, ARRIVE, route
        self._id, self.serial = msg_id, serial
        self.site, self.sender, self.to = site, sender, to
        self.to_user, self.to_domain, self.length = to_user, to_domain, length
        self.password, self.sent_at = password, sent_at
        self.message: Message | None = None
        self.decision: Decision | None = None
        self.version: Version | None = None
        self.plan: Route | None = None

    @property
    def msg_id(self) -> str:
        return self._id if self.serial < 0 else f"{self._id}{self.serial}"

    def run(self) -> None:
        stage, path = self.stage, self.path
        if stage == AUTHORIZE:
            path.authorize(self)
        elif stage == RESENT:
            path.resent(self)
        elif stage == ROUTE:
            path.route(self)
        else:
            path.arrive(self)


class MessagePath:
    """Sends messages and carries them through events 1 to 4."""

    def __init__(self, clock: Clock, settings: SimSettings, streams: Streams,
                 recorder: Recorder) -> None:
        self.clock, self.recorder = clock, recorder
        self.delay = settings.network.delay
        self.latency = settings.billing.latency
        self.timeout = settings.transaction_timeout
        self.proxy_time, self.billing_time, self.chance = message_draws(settings, streams)
        ua = settings.user_agent
        self.answer_delay, self.failure = ua.answer_delay, ua.failure_probability
        self.failure_answer = (ua.failure_code, ua.failure_reason)
        self.sent = 0
        self.trace = recorder.trace
        self.rows = recorder.keep_xdrs or recorder.trace is not None
        self.certain = not (self.rows or self.failure or recorder.keep_messages == "all")
        self.early = 0
        self.counted = recorder.keep_messages != "all" and recorder.trace is None
        self._until = clock.until
        self._clock = clock
        self.lanes = [Lane() for _ in range(4)]
        """The times of each stage never decrease when service times are constant."""
        self.sending, self.resending, self.asking, self.answering = self.lanes

    def next(self, m: Msg, when: float, stage: int, lane: Lane) -> None:
        """Schedule the message's next event (the message is the event: no allocation)."""
        if when < self._until:
            m.stage = stage
            self._clock.put(lane, when, m)

    def send(self, site: Site, sender: str, to: str, length: int, msg_id: str,
             sent_at: float, password: str | None = None) -> None:
        """Schedule a message sent at ``sent_at`` (its arrival at the proxy)."""
        m = self._msg(site, sender, to, length, msg_id, sent_at, password)
        self.next(m, sent_at + self.delay, ARRIVE, self.sending)

    def arrive_now(self, site: Site, sender: str, to: str, length: int, msg_id: str,
                   password: str | None = None, serial: int = -1, route: int = -1) -> None:
        """A message whose arrival at the proxy is now (sent one network delay ago); its
        id is ``msg_id``, followed by ``serial`` if given; to a buddy, ``route`` is the
        pair's place in `Site.routes`."""
        now = self._clock.t
        self.arrive(self._msg(site, sender, to, length, msg_id, now - self.delay, password,
                              serial, route))

    def _msg(self, site: Site, sender: str, to: str, length: int, msg_id: str,
             sent_at: float, password: str | None, serial: int = -1, route: int = -1) -> Msg:
        user, _, domain = to.partition("@")
        if password is None:
            password = site.passwords[site.index[sender]]
        self.sent += 1
        return Msg(self, msg_id, site, sender, to, user, domain or site.domain, length, password,
                   sent_at, serial, route)

    # -- event 1: challenged ---------------------------------------------------------
    def arrive(self, m: Msg) -> None:
        site = m.site
        finish = site.proxy.admit(self._clock.t, self.proxy_time.next())
        site.challenges += 1
        if self.trace is not None:
            self.recorder.log(m.sent_at, m.sender, f"MESSAGE {m.msg_id} to {m.to}")
            self.recorder.log(finish, "proxy", f"407 Proxy Authentication Required {m.msg_id}")
            self.recorder.log(finish + self.delay, m.sender,
                              f"MESSAGE {m.msg_id} with credentials")
        self.next(m, finish + 2 * self.delay, RESENT, self.resending)

    # -- event 2: with credentials ------------------------------------------------------
    def resent(self, m: Msg) -> None:
        finish = m.site.proxy.admit(self._clock.t, self.proxy_time.next())
        if self.trace is not None:
            self.recorder.log(finish, "proxy", f"AAA request {m.msg_id}")
        self.next(m, finish + self.latency, AUTHORIZE, self.asking)

    # -- event 3: billing decides -----------------------------------------------------
    def authorize(self, m: Msg) -> None:
        now, site = self._clock.t, m.site
        version = site.version(now)
        engine, periods = version.engine, version.periods   # `Version.key`, inlined
        route = m.route if not periods and not version.by_length else -1
        plan = site.routes[route] if route >= 0 else None
        key: MemoKey | None = None
        if plan is None or plan.owner is not version:
            key = (m.sender, m.to, m.length if version.by_length else 0,
                   bisect_right(periods, round(now * 1_000_000)) if periods else 0)
            plan = version.memo.get(key)
        refusal = None
        if plan is None or plan.password is not m.password:   # else: checked with the plan
            refusal = engine.authenticate(m.sender, m.password)
        # the answer's way back does not depend on the decision
        back = site.billing.admit(now, self.billing_time.next()) + self.latency
        early = False   # event 4 is certain now (when the decision lets it happen)
        if refusal is not None:
            decision = refusal
        else:
            plan = self.plan(m, now, version, key, plan)
            if route >= 0:
                site.routes[route] = plan
            early = self.certain and plan.ok and back < self._until and \
                site.stays(plan.recipient_in(site), back)
            tab = plan.tab
            if early and tab is not None:   # delivered: settled and accounted at once
                decision = tab.settle_delivered(site.ledger)
            else:
                decision = plan.settle(engine, m.message, site.ledger)
        if self.trace is not None:
            self.recorder.log(back - self.latency, "billing",
                              f"authorize {m.msg_id}: {decision.code} {decision.reason}")
        plan = m.plan
        if plan is None or not (plan.ok if decision is plan.decision else decision.ok):
            self.finish(m, back + self.delay, decision.code, decision.reason, decision.step,
                        decision.check)
            return
        m.decision, m.version = decision, version
        if early:
            self.early += 1
            self.deliver(m, back, plan.tab is not None)   # event 4, certain now
        else:
            self.next(m, back, ROUTE, self.answering)

    def plan(self, m: Msg, now: float, version: Version, key: MemoKey | None,
             plan: Route | None) -> Route:
        """The memoized `decide` answer of a sender whose password `authenticate`
        accepted (``plan`` when known, else learnt under ``key``); the message billing
        sees (``m.message``) when the plain path needs it."""
        if plan is None or plan.tab is None or self.rows:
            m.message = m.site.message(m.msg_id, m.sender, m.to_user, m.to_domain, m.length,
                                       now)
            if plan is None:
                assert key is not None
                plan = version.learn(key, m.message)
        plan.password = m.password
        m.plan = plan
        return plan

    # -- event 4: registrar lookup, delivery, accounting --------------------------------
    def route(self, m: Msg) -> None:
        now, site = self._clock.t, m.site
        decision = m.decision
        assert decision is not None and decision.recipient is not None
        assert m.plan is not None
        b = m.plan.recipient_in(site)
        if b < 0 or not site.registered_until[b] > now:  # `Site.registered`
            reason = f"Temporarily Unavailable ({decision.recipient} is not registered)"
            self.account(m, now, 480, reason)
            self.finish(m, now + self.delay, 480, reason, None, "registration")
        elif not site.online[b]:
            reason = "Request Timeout (no answer from the recipient)"
            self.account(m, now + self.timeout, 408, reason)
            self.finish(m, now + self.timeout, 408, reason, None, "timeout")
        else:
            self.deliver(m, now)

    def deliver(self, m: Msg, now: float, settled: bool = False) -> None:
        """The recipient's softphone answers; ``settled``: billing already accounted the
        delivery (`Tab.settle_delivered`)."""
        delivered = now + self.delay
        code, reason, check = 200, "OK", "delivered"
        if self.failure and self.chance.next() < self.failure:
            (code, reason), check = self.failure_answer, "user_agent"
        back = delivered + self.answer_delay + self.delay
        if self.trace is not None:
            assert m.decision is not None and m.decision.recipient is not None
            self.recorder.log(delivered, m.decision.recipient,
                              f"MESSAGE {m.msg_id} received, {code}")
        self.account(m, back, code, reason, settled)
        self.finish(m, back + self.delay, code, reason, None, check,
                    delivered if code < 300 else NAN)

    def account(self, m: Msg, when: float, code: int, reason: str,
                settled: bool = False) -> None:
        """Billing accounts the final answer (reaching the proxy at ``when``). The ledger
        is settled now: moving a hold into the balance changes no other decision.
        ``settled``: a delivery whose ledger part is done (`Tab.settle_delivered`)."""
        plan = m.plan
        assert plan is not None
        tab = plan.tab
        if tab is None or self.rows:
            self.write(m, when, code, reason)
        elif (tab.ok and tab.billed) if settled else tab.account(m.site.ledger, code):
            counter = plan.counter
            if counter is None:
                counter = plan.counter = self.recorder.counter(plan.money)
            counter[0] += 1
            self.recorder.next_xdr += len(plan.money)

    def write(self, m: Msg, when: float, code: int, reason: str) -> None:
        """`account` on the plain path, or on the tab with its xDRs written out."""
        plan, version, decision = m.plan, m.version, m.decision
        assert plan is not None and version is not None and decision is not None
        assert m.message is not None
        rows = plan.account(version.engine, m.message, decision, code, reason, m.site.ledger,
                            self.recorder.next_xdr)
        if rows:
            self.recorder.xdr(rows)
            if self.trace is not None:
                for row in rows:
                    self.recorder.log(when, "billing", _xdr_text(row))

    def finish(self, m: Msg, final: float, code: int, reason: str, step: int | None,
               check: str, delivered: float = NAN) -> None:
        site, recorder = m.site, self.recorder
        latency = final - m.sent_at
        if code == 200 and self.counted and check == "delivered":
            site.delivered += 1   # no row: a count (`Site.fold`) and the latency
            recorder.latency(latency)
            return
        recorder.sip[(site.name, "MESSAGE", code)] += 1
        if self.trace is not None:
            recorder.log(final, m.sender, f"{code} {reason} ({m.msg_id})")
        if recorder.outcome(site.name, code, check, latency):
            recorder.messages.append((m.msg_id, site.name, m.sender, m.to, m.sent_at, code,
                                      reason, step, delivered, latency, check))


def _xdr_text(row: Any) -> str:
    return (f"xDR {row.msg_id} {row.direction} {row.account_id} {row.rate_code} "
            f"{row.charged_quantity} x {row.unit_price} = {row.charged_amount} {row.currency}")
