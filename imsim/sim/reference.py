"""The model in SimPy's own idiom: the reference engine (``sim.engine: simpy``).

The message path of ``DESIGN.md`` (407 challenge, AAA, lookup, delivery, accounting),
the registrar and presence, as generator processes on a plain `simpy.Environment`,
the proxy and the billing AAA as `Workers` (a `simpy.Resource`). Deciding and
settling are `imsim.rules.decide.BillingEngine`'s (`authenticate`, `decide`, `settle`,
`account`); what is written down goes to the same `Recorder`. It gives the fast
engine's answer (`imsim.sim.messaging`, tests/test_sim_engines.py), more slowly, and
is the one to read and to extend (`SimpyWorld.send`, `SimpyWorld.wait`, `Workers.take`).

Where the fast engine fixes a moment, this one does too:

- every time is computed as the fast engine computes it (``yield self.at(when)``),
  so the two agree to the last bit except where sums are associated differently;
- billing decides when the AAA request arrives, before its queue (the answer leaves
  after it); it accounts the final answer at the registrar lookup, when billing's
  answer is back at the proxy (the recipient's answer is drawn then): a hold is
  released or committed at that moment;
- service times are drawn when a job arrives, before it queues.

A message's outcome is written down when its answer reaches the sender: at ``until``
a message whose answer is still on its way is in flight here, while the fast engine
(which knows the answer's time when it decides) has it finished.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Final, NamedTuple

import simpy

from imsim.model.settings import SimSettings
from imsim.rules.decide import BillingEngine
from imsim.rules.message import Decision, Message
from imsim.sim.core import INF
from imsim.sim.draws import Streams, message_draws, sampler
from imsim.sim.pools import pool_stats
from imsim.sim.records import Recorder
from imsim.sim.site import Route, Site

Process = Generator[simpy.Event, Any, Any]
OPEN: Final = 1
CLOSED: Final = 0
STATUS: Final = {OPEN: "open", CLOSED: "closed"}


class Answer(NamedTuple):
    """A MESSAGE's final answer, as its sender sees it (`SimpyWorld.send`)."""

    msg_id: str
    code: int
    reason: str
    latency: float


class Sent(NamedTuple):
    """A MESSAGE as its sender sent it."""

    site: Site
    msg_id: str
    sender: str
    to: str
    length: int
    password: str
    sent_at: float


class Billed(NamedTuple):
    """What billing keeps of an authorized MESSAGE until it accounts the answer."""

    message: Message
    route: Route   # the memoized decision, with its `Tab`
    engine: BillingEngine


class Outage(simpy.resources.resource.Request):
    """A request that takes a worker away (`Workers.take`)."""


class Workers(simpy.Resource):
    """The proxy's or the billing AAA's workers: one FIFO queue. `take` holds some
    away (an outage) ahead of the queue, `give_back` returns them. Statistics as
    `imsim.sim.pools.Pool.stats`."""

    def __init__(self, env: simpy.Environment, name: str, workers: int) -> None:
        super().__init__(env, workers)
        self.env, self.name, self.workers = env, name, workers
        self.jobs, self.wait_time, self.busy_time, self.max_queue = 0, 0.0, 0.0, 0
        self.taken: list[Outage] = []

    def serve(self, service: float) -> Process:
        """One job of ``service`` seconds: wait for a worker, hold it, let it go."""
        arrived = self.env.now
        self.jobs += 1
        self.busy_time += service
        with self.request() as turn:
            yield turn
            self.wait_time += self.env.now - arrived
            yield self.env.timeout(service)

    def take(self, count: int) -> simpy.Event:
        """Take ``count`` workers away as they come free (before any queued job): an
        event that fires when all are taken. More than are left to take would never
        fire: a ValueError instead."""
        left = self.workers - len(self.taken)
        if not 0 <= count <= left:
            raise ValueError(f"{self.name}: take({count}): {left} of {self.workers} "
                             "workers left to take")
        requests = [Outage(self) for _ in range(count)]
        for request in requests:
            if not request.triggered:   # queued: it goes ahead of the queued jobs
                self.put_queue.remove(request)
                self.put_queue.insert(self._outages_queued(), request)
        self.taken += requests
        return self.env.all_of(requests)

    def _outages_queued(self) -> int:
        """How many outages wait at the head of the queue."""
        n, queue = 0, self.put_queue
        while n < len(queue) and isinstance(queue[n], Outage):
            n += 1
        return n

    def give_back(self, count: int | None = None) -> None:
        """Give back the last ``count`` workers taken (all by default); more than are
        taken: a ValueError."""
        count = len(self.taken) if count is None else count
        if not 0 <= count <= len(self.taken):
            taken = len(self.taken)
            raise ValueError(f"{self.name}: give_back({count}): only {taken} "
                             f"worker{'' if taken == 1 else 's'} taken")
        for _ in range(count):
            request = self.taken.pop()
            if request.triggered:
                self.release(request)
            else:   # never got its worker: it leaves the queue
                request.cancel()

    def sample(self) -> tuple[int, int]:
        """(busy workers, jobs waiting) now."""
        queue = len(self.queue) - self._outages_queued()
        self.max_queue = max(self.max_queue, queue)
        return self.count, queue

    def stats(self, elapsed: float) -> dict[str, float]:
        return pool_stats(self.workers, self.jobs, self.busy_time, self.wait_time,
                          self.max_queue, elapsed)


class Platform:
    """The proxy, registrar, presence server and billing of every site, as processes."""

    def __init__(self, env: simpy.Environment, settings: SimSettings, streams: Streams,
                 recorder: Recorder, sites: dict[str, Site], until: float = INF) -> None:
        self.env, self.recorder, self.sites = env, recorder, sites
        self.until = until   # the run's end: what is due then or later never runs
        self.proxy = {n: Workers(env, f"{n}/proxy", settings.proxy.workers) for n in sites}
        self.billing = {n: Workers(env, f"{n}/billing", settings.billing.workers)
                        for n in sites}
        self.delay, self.latency = settings.network.delay, settings.billing.latency
        self.timeout = settings.transaction_timeout
        self.expires = settings.registration.expires
        self.refresh = settings.registration.refresh * self.expires
        self.service = {m: sampler(getattr(settings.proxy.service, m),
                                   streams.generator(f"service.proxy.{m}"))
                        for m in ("REGISTER", "SUBSCRIBE", "PUBLISH", "NOTIFY")}
        self.proxy_time, self.billing_time, self.chance = message_draws(settings, streams)
        ua = settings.user_agent
        self.answer_delay, self.failure = ua.answer_delay, ua.failure_probability
        self.failure_answer = (ua.failure_code, ua.failure_reason)
        self.sent = 0
        self.on_notify: Any = None   # (site, watcher, buddy, the NOTIFY's process)
        self.waiting: dict[str, list[simpy.Event]] = {}

    def at(self, when: float) -> simpy.Event:
        """An event at ``when`` (simpy's time of ``now + (when - now)``). At or past the
        run's end it would never be processed: an event that never fires instead, kept
        out of simpy's queue (as the fast engine schedules nothing there), so that a
        day-long registration refresh per softphone does not make every event's place in
        the queue dearer to find."""
        if when >= self.until:
            return self.env.event()
        return self.env.timeout(when - self.env.now)

    def told(self, what: str, value: Any) -> None:
        """Fire the events waiting for ``what`` (`SimpyWorld.wait`) with ``value``."""
        for event in self.waiting.pop(what, ()):
            event.succeed(value)

    def job(self, site: Site, method: str) -> Process:
        """A signalling transaction through the site's proxy (answered 200: counted as
        the fast engine counts it, `Site.fold`)."""
        site.jobs[method] += 1
        yield from self.proxy[site.name].serve(self.service[method].next())

    # -- the MESSAGE path (DESIGN.md, "Message path and outcomes") ----------------------
    def message(self, m: Sent) -> Process:
        """A MESSAGE from its arrival at the proxy to its answer at the sender."""
        site, proxy = m.site, self.proxy[m.site.name]
        # 1. challenged: a proxy transaction answered 407; the client resends
        site.challenges += 1   # counted as the fast engine counts it (`Site.fold`)
        yield from proxy.serve(self.proxy_time.next())
        yield self.at(self.env.now + 2 * self.delay)
        # 2. with credentials: a second transaction, then the AAA request to billing
        yield from proxy.serve(self.proxy_time.next())
        yield self.at(self.env.now + self.latency)
        # 3. billing authenticates, decides and settles; the answer leaves after its queue
        decision, billed = self.authorize(m)
        yield from self.billing[site.name].serve(self.billing_time.next())
        back = self.env.now + self.latency
        yield self.at(back)
        if not decision.ok:
            yield self.at(back + self.delay)
            return self.finish(m, decision.code, decision.reason, decision.step,
                               decision.check)
        # 4. the registrar lookup, the recipient's answer, accounting
        assert billed is not None   # authorized: billing saw it
        return (yield from self.deliver(m, decision, billed))

    def authorize(self, m: Sent) -> tuple[Decision, Billed | None]:
        """Billing's answer to the AAA request, now (`BillingEngine.authenticate`,
        `decide` memoized per rating period, `settle` with the ledger: `Route`)."""
        now, site = self.env.now, m.site
        version = site.version(now)
        engine = version.engine
        refusal = engine.authenticate(m.sender, m.password)
        if refusal is not None:
            return refusal, None
        user, _, domain = m.to.partition("@")
        message = site.message(m.msg_id, m.sender, user, domain or site.domain, m.length, now)
        route = version.route(message, m.to, site.calendar(now)[1])
        return route.settle(engine, message, site.ledger), Billed(message, route, engine)

    def deliver(self, m: Sent, decision: Decision, billed: Billed) -> Process:
        """The lookup (480: not registered), the recipient's softphone (408: offline;
        a configured failure; 200), billing's accounting of the answer."""
        now, site = self.env.now, m.site
        assert decision.recipient is not None
        b = site.index.get(decision.recipient, -1)
        if b < 0 or not site.registered(b, now):
            reason = f"Temporarily Unavailable ({decision.recipient} is not registered)"
            self.account(m, billed, decision, 480, reason)
            yield self.at(now + self.delay)
            return self.finish(m, 480, reason, None, "registration")
        if not site.online[b]:
            reason = "Request Timeout (no answer from the recipient)"
            self.account(m, billed, decision, 408, reason)
            yield self.at(now + self.timeout)
            return self.finish(m, 408, reason, None, "timeout")
        code, reason, check = 200, "OK", "delivered"
        if self.failure and self.chance.next() < self.failure:
            (code, reason), check = self.failure_answer, "user_agent"
        self.account(m, billed, decision, code, reason)
        delivered = now + self.delay
        yield self.at(delivered + self.answer_delay + self.delay + self.delay)
        return self.finish(m, code, reason, None, check,
                           delivered if code < 300 else float("nan"))

    def account(self, m: Sent, billed: Billed, decision: Decision, code: int,
                reason: str) -> None:
        """`BillingEngine.account` of the final answer (by the engine that decided): the
        xDRs of a delivery."""
        rows = billed.route.account(billed.engine, billed.message, decision, code, reason,
                                    m.site.ledger, self.recorder.next_xdr)
        if rows:
            self.recorder.xdr(rows)

    def finish(self, m: Sent, code: int, reason: str, step: int | None, check: str,
               delivered: float = float("nan")) -> Answer:
        """The answer reaches the sender: written down, and told to who waits."""
        latency = self.env.now - m.sent_at
        self.recorder.sip[(m.site.name, "MESSAGE", code)] += 1
        self.recorder.message((m.msg_id, m.site.name, m.sender, m.to, m.sent_at, code,
                               reason, step, delivered, latency), check)
        answer = Answer(m.msg_id, code, reason, latency)
        if self.waiting:
            self.told("answer", answer)
        return answer

    # -- the registrar ------------------------------------------------------------------
    def registration(self, site: Site, i: int) -> Process:
        """A softphone's REGISTER (sent now) and its refreshes, while its session
        lasts; on the first 200, its presence (PUBLISH, a SUBSCRIBE per buddy)."""
        site.online[i] = 1
        site.session[i] += 1
        session, first = site.session[i], True
        yield self.at(self.env.now + self.delay)
        while site.session[i] == session:
            yield from self.job(site, "REGISTER")
            done = self.env.now
            if first and site.session[i] != session:
                return   # gone before its first REGISTER was processed
            site.registered_until[i] = done + self.expires
            if first:
                self.env.process(self.presence(site, i, session, done + 2 * self.delay))
                first = False
            yield self.at(done + self.delay + self.refresh + self.delay)

    def signed_off(self, site: Site, i: int, crash: bool) -> Process:
        """A softphone stops: cleanly (unREGISTER, PUBLISH closed, un-SUBSCRIBE), or by
        a crash (nothing is sent: its binding and publication expire)."""
        site.online[i] = 0
        site.session[i] += 1
        session = site.session[i]
        if crash:   # (a softphone never registered has nothing to expire: now)
            yield self.at(max(site.registered_until[i], self.env.now))
            if site.session[i] == session:
                self.expired(site, i)
            return
        yield self.at(self.env.now + self.delay)
        self.env.process(self.unregister(site, i))
        self.env.process(self.publish(site, i, CLOSED))
        watching, site.watching[i] = site.watching[i], None
        for b in sorted(watching or ()):
            self.env.process(self.job(site, "SUBSCRIBE"))
            self.unwatch(site, i, b, "UNSUBSCRIBE")

    def unregister(self, site: Site, i: int) -> Process:
        """REGISTER with Expires 0: the binding ends when the proxy has processed it."""
        yield from self.job(site, "REGISTER")
        site.registered_until[i] = self.env.now

    def expired(self, site: Site, i: int) -> None:
        """A crashed softphone's binding expired: its subscriptions and publication too."""
        watching, site.watching[i] = site.watching[i], None
        for b in sorted(watching or ()):
            self.unwatch(site, i, b, "EXPIRE")
        self.change(site, i, CLOSED, "EXPIRE")
        if self.waiting:
            self.told("expired", (site.name, site.ids[i]))

    # -- presence -------------------------------------------------------------------------
    def presence(self, site: Site, i: int, session: int, when: float) -> Process:
        yield self.at(when)
        if site.session[i] != session:
            return
        self.env.process(self.publish(site, i, OPEN))
        for b in site.buddies(i):
            self.env.process(self.subscribe(site, i, b, session))

    def publish(self, site: Site, i: int, status: int) -> Process:
        yield from self.job(site, "PUBLISH")
        self.change(site, i, status, "PUBLISH")

    def subscribe(self, site: Site, w: int, b: int, session: int) -> Process:
        """``w`` subscribes to ``b``: accepted, then the initial NOTIFY (in this process:
        its proxy job is queued as the SUBSCRIBE is accepted, as the fast engine does)."""
        yield from self.job(site, "SUBSCRIBE")
        if site.session[w] != session:
            return
        for sets, key, value in ((site.watchers, b, w), (site.watching, w, b)):
            found = sets[key]
            if found is None:
                sets[key] = [value]
            elif value not in found:
                found.append(value)
        self.event(site, "SUBSCRIBE", b, w, STATUS[site.status[b]])
        yield from self.notify(site, w, b, True)

    def change(self, site: Site, i: int, status: int, event: str) -> None:
        """A publication (or its expiry): a NOTIFY to every watcher if it changed."""
        self.event(site, event, i, -1, STATUS[status])
        if site.status[i] == status:
            return
        site.status[i] = status
        for w in sorted(site.watchers[i] or ()):
            sent = self.env.process(self.notify(site, w, i, False))
            if status == OPEN and self.on_notify is not None:
                self.on_notify(site, w, i, sent)

    def notify(self, site: Site, w: int, b: int, initial: bool) -> Process:
        """A NOTIFY of ``b``'s status to watcher ``w``."""
        status = STATUS[site.status[b]]
        yield from self.job(site, "NOTIFY")
        self.event(site, "NOTIFY", b, w, status, initial)
        if self.waiting:
            self.told("notify", (site.name, site.ids[w], site.ids[b], status))

    def unwatch(self, site: Site, w: int, b: int, event: str) -> None:
        watchers = site.watchers[b]
        if watchers is not None and w in watchers:
            watchers.remove(w)
        self.event(site, event, b, w, "")

    def event(self, site: Site, event: str, presentity: int, watcher: int, status: str,
              initial: bool = False) -> None:
        """`Recorder.presence_event`, now."""
        self.recorder.presence_event(self.env.now, site.name, event, site.ids[presentity],
                                     site.ids[watcher] if watcher >= 0 else "", status,
                                     initial)
