"""User agents: softphones going online and offline, and presence-driven
conversations.

Without ``traffic.churn`` every softphone (except those in ``traffic.offline``)
starts at 0 (or spread over ``registration.spread``) and stays online. With churn,
a softphone alternates online sessions and offline gaps drawn from their
distributions; a session ends with a crash (no unREGISTER) with
``crash_probability``. A watcher told that a buddy came online starts a conversation
with ``conversations.probability``: messages alternating between the two, the first
after a think time, each next one a think time later; it stops early when the side
whose turn it is has gone offline.
"""

from __future__ import annotations

from imsim.model.scenario import Scenario
from imsim.sim.core import Clock
from imsim.sim.draws import Streams, sampler, uniforms
from imsim.sim.messaging import MessagePath
from imsim.sim.signalling import Signalling
from imsim.sim.site import Site


class Agents:
    """Sessions of every softphone and the conversations they hold."""

    def __init__(self, clock: Clock, scenario: Scenario, streams: Streams,
                 signalling: Signalling, path: MessagePath) -> None:
        self.clock, self.signalling, self.path = clock, signalling, path
        traffic = scenario.traffic
        self.churn = traffic.churn
        self.never = set(traffic.offline)
        self.spread = scenario.sim.registration.spread
        self.delay = scenario.sim.network.delay
        self.chance = uniforms(streams.generator("sessions"))
        self.spread_at = uniforms(streams.generator("registration.spread"))
        if self.churn is not None:
            self.online_for = sampler(self.churn.online, streams.generator("churn.online"))
            self.offline_for = sampler(self.churn.offline, streams.generator("churn.offline"))
        self.talk = traffic.conversations
        if self.talk is not None:
            self.length = sampler(self.talk.messages, streams.generator("conversation.length"))
            self.think = sampler(self.talk.think_time, streams.generator("conversation.think"))
            self.talk_chance = uniforms(streams.generator("conversation.start"))
            signalling.on_notify = self.notified
        self.body = sampler(traffic.length, streams.generator("conversation.body"))
        self.conversations = 0

    def start(self, site: Site) -> None:
        initially = self.churn.initially_online if self.churn is not None else 1.0
        for i, number in enumerate(site.ids):
            if number in self.never:
                continue
            at = self.spread_at.next() * self.spread if self.spread else 0.0
            if initially >= 1.0 or self.chance.next() < initially:
                self.clock.at(at, self._online, (site, i))
            else:
                self.clock.at(at + self.offline_for.next(), self._online, (site, i))

    # -- sessions ----------------------------------------------------------------------
    def _online(self, arg: tuple[Site, int]) -> None:
        site, i = arg
        now = self.clock.now
        self.signalling.online(site, i, now)
        if self.churn is not None:
            leaves = site.leaves[i] = now + self.online_for.next()
            self.clock.at(leaves, self._offline, (site, i))

    def _offline(self, arg: tuple[Site, int]) -> None:
        site, i = arg
        now = self.clock.now
        assert self.churn is not None
        odds = self.churn.crash_probability
        crash = odds > 0 and self.chance.next() < odds
        self.signalling.offline(site, i, now, crash)
        self.clock.at(now + self.offline_for.next(), self._online, (site, i))

    # -- conversations -------------------------------------------------------------------
    def notified(self, site: Site, watcher: int, buddy: int, when: float) -> None:
        """``watcher`` learns at ``when`` that ``buddy`` came online."""
        assert self.talk is not None
        if self.talk_chance.next() >= self.talk.probability or not site.online[watcher]:
            return
        self.conversations += 1
        count = max(1, int(self.length.next()))
        first = when + self.think.next()
        self.clock.at(first + self.delay, self._say, (site, watcher, buddy, count,
                                                      self.conversations, 1))

    def _say(self, arg: tuple[Site, int, int, int, int, int]) -> None:
        site, a, b, count, number, k = arg
        if not site.online[a]:
            return
        self.path.arrive_now(site, site.ids[a], site.ids[b], int(self.body.next()),
                             f"c{number}.{k}", site.passwords[a])
        if k < count:
            sent = self.clock.now - self.delay
            self.clock.at(sent + self.think.next() + self.delay, self._say,
                          (site, b, a, count, number, k + 1))
