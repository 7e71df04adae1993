"""Messages that traffic sends: the script, and the Poisson model.

The Poisson model is one merged stream per environment: candidates arrive at rate
``rate_per_hour x accounts x max(profile) x cap`` and each picks an account at
random; it becomes a message when the account is online and passes the thinning
(profile multiplier of the sender's local hour / max, and elasticity / cap). That is
exactly a Poisson process of ``rate_per_hour x multiplier`` per online account, at
one event per candidate (the stream is its own event, `Clock.again`). The
stream is shifted by the network delay, so a candidate's event is its message's
arrival at the proxy.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from itertools import accumulate
from zoneinfo import ZoneInfo

import numpy as np

from imsim.model.scenario import Scenario
from imsim.model.traffic import Destination, Traffic
from imsim.rules.message import Message
from imsim.sim.core import Clock, Event
from imsim.sim.draws import Draws, Streams, sampler, uniforms
from imsim.sim.messaging import MessagePath
from imsim.sim.site import Site


def play_script(scenario: Scenario, sites: dict[str, Site], path: MessagePath) -> None:
    """Schedule every scripted message (ids default to script-<index>)."""
    for index, line in enumerate(scenario.traffic.script):
        env = scenario.home_of(line.sender, line.sender_domain)
        assert env is not None
        path.send(sites[env.name], line.sender, line.to, line.size, line.id or f"script-{index}",
                  line.at, line.password)


class Candidates:
    """The candidates of one environment's merged Poisson stream: the gaps between
    them (``gap``), and which become messages (`pick`). Both engines draw them."""

    def __init__(self, traffic: Traffic, site: Site, streams: Streams,
                 start: dt.datetime) -> None:
        assert traffic.poisson is not None
        self.site, self.start = site, start
        self.profile = traffic.profile
        self.peak = max(self.profile) if self.profile else 1.0
        self.elasticity = traffic.elasticity
        self.cap = self.elasticity.cap if self.elasticity else 1.0
        size = len(site.ids)
        rate = traffic.poisson.rate_per_hour / 3600 * size * self.peak * self.cap
        name = f"poisson.{site.name}"
        rng = streams.generator(name)
        self.gap = Draws(lambda n: rng.exponential(1 / rate, n)) if size else None
        self.choice = Draws(lambda n: rng.integers(0, size, n))
        self.chance = uniforms(streams.generator(f"{name}.thinning"))
        self.where = Destinations(traffic, site, streams.generator(f"{name}.destination"))
        self.body = sampler(traffic.length, streams.generator(f"{name}.body"))
        self._hours: dict[tuple[int, int], float] = {}
        self._zones = [ZoneInfo(z) for z in site.zones]
        self.delay = 0.0
        """The network delay: a candidate's message was sent this long before it
        arrives (set by the engine)."""
        self.count = 0
        self.prefix = f"p{site.name}."   # message ids: p<env>.<count>
        self.to = ""
        self.length = 0
        self.route = -1

    def pick(self, now: float) -> int:
        """The candidate arriving at the proxy at ``now``: its sender's index, or -1 if
        it sends nothing; when it sends, the message's ``to``, ``length``, ``route``
        (the pair's place in `Site.routes`, -1: none) and ``count`` (its serial)."""
        i = int(self.choice.next())
        site = self.site
        if not site.online[i]:
            return -1
        sent = now - self.delay
        if self.profile is not None and self.chance.next() * self.peak >= self.multiplier(i, sent):
            return -1
        to = self.where.choose(i)
        if to is None:
            return -1
        length = int(self.body.next())
        if self.elasticity is not None and \
                self.chance.next() * self.cap >= self.demand(i, to, length, now):
            return -1
        self.count += 1
        slot = self.where.slot
        self.to, self.length = to, length
        self.route = i * site.route_width + slot if slot >= 0 else -1
        return i

    def multiplier(self, i: int, sent: float) -> float:
        """The profile multiplier of the sender's local hour (cached per minute)."""
        assert self.profile is not None
        key = (self.site.zone_of[i], int(sent // 60))
        found = self._hours.get(key)
        if found is None:
            moment = self.start + dt.timedelta(seconds=key[1] * 60)
            hour = moment.astimezone(self._zones[key[0]]).hour
            found = self._hours[key] = self.profile[hour]
        return found

    def demand(self, i: int, to: str, length: int, now: float) -> float:
        """Elasticity: (unit price / reference) ** coefficient for this destination."""
        assert self.elasticity is not None
        site = self.site
        user, _, domain = to.partition("@")
        at, micros = site.calendar(now)
        msg = Message("", site.ids[i], user, domain or site.domain, at, length)
        rating = site.version(now).decide(msg, to, micros).customer
        if rating is None:
            return 1.0
        price = float(rating.unit_price)
        if price <= 0:
            return self.cap
        return float((price / self.elasticity.reference_price) ** self.elasticity.coefficient)


class PoissonStream(Event):
    """The merged Poisson stream of one environment on the fast clock (its own
    event: `fire`)."""

    def __init__(self, clock: Clock, traffic: Traffic, site: Site, path: MessagePath,
                 streams: Streams, start: dt.datetime) -> None:
        super().__init__()
        self.clock, self.site, self.path = clock, site, path
        self.candidates = Candidates(traffic, site, streams, start)
        self.candidates.delay = path.delay
        self._clock = clock

    @property
    def count(self) -> int:
        return self.candidates.count

    def begin(self) -> None:
        gap = self.candidates.gap
        if gap is not None:
            self.clock.again(self, gap.next() + self.path.delay)

    def run(self) -> None:
        self.fire()

    def fire(self) -> None:
        now = self._clock.t
        found = self.candidates
        assert found.gap is not None
        self.clock.again(self, now + found.gap.next())
        i = found.pick(now)
        if i >= 0:
            site = self.site
            self.path.arrive_now(site, site.ids[i], found.to, found.length, found.prefix,
                                 site.passwords[i], found.count, found.route)


class Destinations:
    """A buddy, or a number of the destination mix."""

    def __init__(self, traffic: Traffic, site: Site, rng: np.random.Generator) -> None:
        self.site = site
        self.share = traffic.destinations.off_buddy_share
        self.mix: tuple[Destination, ...] = traffic.destinations.mix
        self.weights = list(accumulate([d.weight for d in self.mix]))
        self.u = Draws(rng.random)
        self.slot = -1
        """The chosen buddy's place in the sender's list, -1 for a number of the mix
        (with more than `Site.route_width` buddies, -1 too)."""

    def choose(self, i: int) -> str | None:
        buddies = self.site.buddy_ids[i]
        if buddies and (not self.mix or not self.share or self.u.next() >= self.share):
            k = int(self.u.next() * float(len(buddies)))
            self.slot = k if self.site.route_width else -1
            return buddies[k]
        self.slot = -1
        if not self.mix:
            return None
        entry = self.mix[bisect_right(self.weights, self.u.next() * self.weights[-1])]
        return self._number(entry) + (f"@{entry.domain}" if entry.domain else "")

    def _number(self, entry: Destination) -> str:
        if entry.number is not None:
            return entry.number
        if entry.prefix is not None:
            free = entry.digits - len(entry.prefix)
            return entry.prefix + str(int(self.u.next() * 10 ** free)).zfill(free)
        ids = self.site.ids
        return ids[int(self.u.next() * len(ids))]
