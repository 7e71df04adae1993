"""The SimPy engine's world: softphones, conversations and traffic as processes on a
plain `simpy.Environment`, over the platform of `imsim.sim.reference`; and the
extension API a notebook uses (`SimpyWorld.env`, `send`, `wait`, `proxy`, `billing`).

A user process runs beside the model's::

    world = SimpyWorld(scenario)

    def outage(env):
        yield env.timeout(600)
        yield world.proxy().take(4)          # every proxy worker, as they come free
        yield env.timeout(120)
        world.proxy().give_back()

    world.env.process(outage(world.env))
    result = world.run()

Random draws are made from the same named streams, in the same order, as the fast
engine's (`imsim.sim.agents`, `imsim.sim.arrivals`): the same seed gives the same run.
"""

from __future__ import annotations

from typing import Any

import simpy

from imsim.model.traffic import ScriptedMessage
from imsim.results import RunResult
from imsim.sim.arrivals import Candidates
from imsim.sim.draws import sampler, uniforms
from imsim.sim.reference import Answer, Platform, Process, Sent, Workers
from imsim.sim.site import Site
from imsim.sim.world import Progress, World


class SimpyWorld(World):
    """`World` on the SimPy engine: same scenario, seed and records, other engine."""

    engine = "simpy"

    def _wire(self) -> None:
        scenario, settings = self.scenario, self.scenario.sim
        self._env = simpy.Environment()
        self.platform = Platform(self._env, settings, self.streams, self.recorder, self.sites,
                                 self.until)
        traffic = scenario.traffic
        self.churn, self.talk = traffic.churn, traffic.conversations
        self.never = set(traffic.offline)
        self.spread, self.delay = settings.registration.spread, settings.network.delay
        self.chance = uniforms(self.streams.generator("sessions"))
        self.spread_at = uniforms(self.streams.generator("registration.spread"))
        if self.churn is not None:
            self.online_for = sampler(self.churn.online, self.streams.generator("churn.online"))
            self.offline_for = sampler(self.churn.offline,
                                       self.streams.generator("churn.offline"))
        if self.talk is not None:
            self.length = sampler(self.talk.messages,
                                  self.streams.generator("conversation.length"))
            self.think = sampler(self.talk.think_time,
                                 self.streams.generator("conversation.think"))
            self.talk_chance = uniforms(self.streams.generator("conversation.start"))
            self.platform.on_notify = self.notified
        self.body = sampler(traffic.length, self.streams.generator("conversation.body"))
        self.conversations = 0
        self.user_sent = 0   # messages of `send` (ids user-1, user-2, ...)
        self.candidates = [Candidates(traffic, site, self.streams, scenario.start)
                           for site in self.sites.values()] if traffic.poisson else []
        for candidates in self.candidates:
            candidates.delay = self.delay

    # -- the extension API -----------------------------------------------------------------
    def site(self, name: str | None = None) -> Site:
        """The site (environment) called ``name``; the first by default."""
        return self.sites[name] if name is not None else next(iter(self.sites.values()))

    def proxy(self, site: str | None = None) -> Workers:
        """The site's proxy workers (`Workers.take`, `Workers.give_back`)."""
        return self.platform.proxy[self.site(site).name]

    def billing(self, site: str | None = None) -> Workers:
        """The site's billing AAA workers."""
        return self.platform.billing[self.site(site).name]

    def send(self, sender: str, to: str, body: int | str = 160, msg_id: str | None = None,
             password: str | None = None) -> simpy.Process:
        """``sender`` sends a MESSAGE now: an event that fires with its `Answer`
        (``sender`` and ``body`` read as a script line's ``from`` and ``body``: an
        account as written, '+1 555 123 0001' or 'number@domain'; the text, sized in
        UTF-8 bytes, or its length; ``msg_id``: user-1, user-2, ... by default); its
        environment is the first that has the account (at that domain, when given)."""
        line = ScriptedMessage.model_validate(
            {"at": 0, "from": sender, "to": to,
             **({"length": body} if isinstance(body, int) else {"body": body})})
        domain = line.sender_domain
        site = next((s for s in self.sites.values() if line.sender in s.index
                     and domain in (None, s.domain.lower())), None)
        if site is None:
            raise ValueError(f"send: no account {line.sender} in the scenario"
                             + (f" at {domain}" if domain else ""))
        self.platform.sent += 1
        self.user_sent += 1
        m = Sent(site, msg_id or f"user-{self.user_sent}", line.sender, to, line.size,
                 password if password is not None else
                 site.passwords[site.index[line.sender]], self.env.now)
        return self.env.process(self._sent(m))

    def _sent(self, m: Sent) -> Process:
        yield self.platform.at(m.sent_at + self.delay)
        return (yield from self.platform.message(m))

    def wait(self, what: str) -> simpy.Event:
        """An event that fires at the next ``what``: ``"answer"`` (any MESSAGE's final
        answer, an `Answer`), ``"notify"`` (a NOTIFY sent: env, watcher, presentity,
        status) or ``"expired"`` (a crashed softphone's binding: env, account)."""
        if what not in ("answer", "notify", "expired"):
            raise ValueError(f"wait({what!r}): one of 'answer', 'notify', 'expired'")
        event = self.env.event()
        self.platform.waiting.setdefault(what, []).append(event)
        return event

    # -- softphones and conversations --------------------------------------------------------
    def softphone(self, site: Site, i: int, first: float) -> Process:
        """Sessions of one softphone: online from ``first``, with churn offline and
        online again."""
        env = self.env
        yield self.platform.at(first)
        while True:
            env.process(self.platform.registration(site, i))
            if self.churn is None:
                return
            leaves = site.leaves[i] = env.now + self.online_for.next()
            yield self.platform.at(leaves)
            odds = self.churn.crash_probability
            crash = odds > 0 and self.chance.next() < odds
            env.process(self.platform.signed_off(site, i, crash))
            yield self.platform.at(env.now + self.offline_for.next())

    def notified(self, site: Site, watcher: int, buddy: int, told: simpy.Process) -> None:
        """A NOTIFY that ``buddy`` came online is sent to ``watcher``: perhaps a
        conversation (decided now; it starts when the NOTIFY has reached the watcher)."""
        assert self.talk is not None
        if self.talk_chance.next() >= self.talk.probability or not site.online[watcher]:
            return
        self.conversations += 1
        count = max(1, int(self.length.next()))
        self.env.process(self.conversation(site, watcher, buddy, count, self.conversations,
                                           told, self.think.next()))

    def conversation(self, site: Site, a: int, b: int, count: int, number: int,
                     told: simpy.Process, think: float) -> Process:
        """Messages alternating between ``a`` and ``b``, a think time apart; it stops
        when the side whose turn it is has gone offline."""
        yield told
        yield self.platform.at(self.env.now + self.delay + think + self.delay)
        for k in range(1, count + 1):
            if not site.online[a]:
                return
            self.arrive(site, site.ids[a], site.ids[b], int(self.body.next()), f"c{number}.{k}",
                        site.passwords[a])
            if k < count:
                sent = self.env.now - self.delay
                yield self.platform.at(sent + self.think.next() + self.delay)
            a, b = b, a

    # -- traffic ------------------------------------------------------------------------------
    def arrive(self, site: Site, sender: str, to: str, length: int, msg_id: str,
               password: str | None) -> None:
        """A MESSAGE whose arrival at the proxy is now (sent a network delay ago)."""
        self.platform.sent += 1
        if password is None:
            password = site.passwords[site.index[sender]]
        self.env.process(self.platform.message(
            Sent(site, msg_id, sender, to, length, password, self.env.now - self.delay)))

    def scripted(self, site: Site, sender: str, to: str, length: int, msg_id: str,
                 sent_at: float, password: str | None) -> Process:
        yield self.platform.at(sent_at + self.delay)
        self.arrive(site, sender, to, length, msg_id, password)

    def stream(self, candidates: Candidates) -> Process:
        """The merged Poisson stream of one site: a candidate at each gap."""
        assert candidates.gap is not None
        yield self.platform.at(candidates.gap.next() + self.delay)
        site = candidates.site
        while True:
            following = self.env.now + candidates.gap.next()
            i = candidates.pick(self.env.now)
            if i >= 0:
                self.arrive(site, site.ids[i], candidates.to, candidates.length,
                            f"{candidates.prefix}{candidates.count}", site.passwords[i])
            yield self.platform.at(following)

    def sampling(self) -> Process:
        """Busy workers and queue lengths, every ``sim.sample_interval``."""
        while True:
            for site in self.sites.values():
                for kind, pool in (("proxy", self.proxy(site.name)),
                                   ("billing", self.billing(site.name))):
                    busy, queue = pool.sample()
                    self.recorder.samples.append((self.env.now, site.name, kind, busy, queue))
            yield self.env.timeout(self.scenario.sim.sample_interval)

    # -- the run ------------------------------------------------------------------------------
    def start(self) -> None:
        """Every process, in the order the fast engine schedules its first events."""
        for site in self.sites.values():
            self._softphones(site)
        for index, line in enumerate(self.scenario.traffic.script):
            env = self.scenario.home_of(line.sender, line.sender_domain)
            assert env is not None
            self.env.process(self.scripted(self.sites[env.name], line.sender, line.to,
                                           line.size, line.id or f"script-{index}", line.at,
                                           line.password))
        for candidates in self.candidates:
            if candidates.gap is not None:
                self.env.process(self.stream(candidates))
        self.env.process(self.sampling())

    def _softphones(self, site: Site) -> None:
        initially = self.churn.initially_online if self.churn is not None else 1.0
        for i, number in enumerate(site.ids):
            if number in self.never:
                continue
            at = self.spread_at.next() * self.spread if self.spread else 0.0
            if not (initially >= 1.0 or self.chance.next() < initially):
                at += self.offline_for.next()
            self.env.process(self.softphone(site, i, at))

    def play(self, progress: Progress | None = None, chunks: int = 200) -> None:
        self.start()
        if progress is None:
            self.env.run(until=self.until)
            return
        for k in range(1, chunks + 1):
            self.env.run(until=self.until * k / chunks)
            progress(self.env.now)

    def run(self, progress: Progress | None = None) -> RunResult:
        if self.recorder.trace is not None:
            raise ValueError("the SimPy engine writes no trace: use sim.engine: fast")
        return self.finish_run(lambda: self.play(progress))

    @property
    def env(self) -> simpy.Environment:   # type: ignore[override]   # an attribute here
        return self._env

    @property
    def sent(self) -> int:
        return self.platform.sent

    def talks(self) -> int:
        return self.conversations

    def pools(self) -> list[Any]:
        return [pool for name in self.sites for pool in (self.proxy(name), self.billing(name))]


__all__ = ["SimpyWorld", "Answer", "Workers"]
