"""Registrar and presence server in time: REGISTER, PUBLISH, SUBSCRIBE, NOTIFY.

- REGISTER: the binding lasts ``registration.expires`` from the moment the proxy
  processed it (a session's first REGISTER binds then, not while it is queued); the
  softphone refreshes after ``refresh`` x ``expires``. A softphone that stops
  refreshing (a crash) stays registered until its binding expires.
- Coming online: REGISTER, then on its 200 a PUBLISH (open) and a SUBSCRIBE to every
  buddy. Every accepted SUBSCRIBE gets one initial NOTIFY with the buddy's status.
- A status change (PUBLISH with a new status, or a crashed softphone's publication
  expiring with its binding) sends a NOTIFY to every active watcher.
- Going offline cleanly: REGISTER with Expires 0, PUBLISH (closed), and an
  un-SUBSCRIBE per buddy (the subscription ends when it reaches the proxy; no final
  NOTIFY is modelled). Publications and subscriptions are refreshed with the
  registration, so they need no transactions of their own.

Every transaction is a job of the proxy pool with its method's service time.
"""

from __future__ import annotations

from collections.abc import Callable

from imsim.model.settings import METHODS, SimSettings
from imsim.sim.core import Clock, Lane
from imsim.sim.draws import Streams, sampler
from imsim.sim.records import Recorder
from imsim.sim.site import Site

OPEN, CLOSED = 1, 0
STATUS = {OPEN: "open", CLOSED: "closed"}
OnNotify = Callable[[Site, int, int, float], None]


class Signalling:
    """Registrar and presence server of every site (they share the site's proxy)."""

    def __init__(self, clock: Clock, settings: SimSettings, streams: Streams,
                 recorder: Recorder) -> None:
        self.clock, self.recorder = clock, recorder
        self.trace = recorder.trace is not None   # lines are written only for a trace
        self.delay = settings.network.delay
        self.expires = settings.registration.expires
        self.refresh = settings.registration.refresh * self.expires
        self.service = {m: sampler(getattr(settings.proxy.service, m),
                                   streams.generator(f"service.proxy.{m}")) for m in METHODS}
        self.on_notify: OnNotify | None = None
        # Events at now or a proxy finish plus a constant: lanes (`imsim.sim.core.Lane`)
        self.registering, self.refreshing, self.presenting = Lane(), Lane(), Lane()
        self.publishing, self.subscribing, self.leaving = Lane(), Lane(), Lane()
        self.binding = Lane()

    def _job(self, site: Site, method: str, now: float) -> float:
        site.jobs[method] += 1   # 200s, counted (`Site.fold`)
        return site.proxy.admit(now, self.service[method].next())

    def _event(self, when: float, site: Site, event: str, presentity: int, watcher: int,
               status: str, initial: bool = False) -> None:
        """`Recorder.presence_event` of accounts by index (``watcher`` -1: none), their
        numbers looked up only for a row."""
        recorder = self.recorder
        if recorder.keep_presence:
            recorder.presence_event(when, site.name, event, site.ids[presentity],
                                    site.ids[watcher] if watcher >= 0 else "", status, initial)
        else:
            recorder.count_presence(event, initial)

    # -- registrar ---------------------------------------------------------------------
    def online(self, site: Site, i: int, now: float) -> None:
        """The softphone starts: REGISTER (sent now)."""
        site.online[i] = 1
        site.session[i] += 1
        if self.trace:
            self.recorder.log(now, site.ids[i], "REGISTER")
        self.clock.at_lane(self.registering, now + self.delay, self._register,
                           (site, i, site.session[i], True))

    def _register(self, arg: tuple[Site, int, int, bool]) -> None:
        site, i, session, first = arg
        if site.session[i] != session:
            return
        now = self.clock.now
        done = self._job(site, "REGISTER", now)
        if first:   # the binding exists once the proxy has processed the REGISTER
            self.clock.at_lane(self.binding, done, self._bound, (site, i, session, done))
        else:       # a refresh: the binding it extends holds meanwhile
            site.registered_until[i] = done + self.expires
        if self.trace:
            self.recorder.log(done, "registrar", f"200 REGISTER {site.ids[i]} "
                              f"expires {self.expires:g}")
        self.clock.at_lane(self.refreshing, done + self.delay + self.refresh + self.delay,
                           self._register, (site, i, session, False))
        if first:
            self.clock.at_lane(self.presenting, done + 2 * self.delay, self._presence,
                               (site, i, session))

    def _bound(self, arg: tuple[Site, int, int, float]) -> None:
        """A session's first REGISTER has been processed (at ``done``)."""
        site, i, session, done = arg
        if site.session[i] == session:
            site.registered_until[i] = done + self.expires

    def offline(self, site: Site, i: int, now: float, crash: bool = False) -> None:
        """The softphone stops: cleanly (unREGISTER, PUBLISH closed, un-SUBSCRIBE), or
        by a crash (nothing sent; bindings expire)."""
        site.online[i] = 0
        site.session[i] += 1
        if crash:
            if self.trace:
                self.recorder.log(now, site.ids[i], "crash")
            self.clock.at(site.registered_until[i], self._expire, (site, i, site.session[i]))
            return
        if self.trace:
            self.recorder.log(now, site.ids[i], "REGISTER expires 0")
        self.clock.at_lane(self.leaving, now + self.delay, self._logout, (site, i))

    def _logout(self, arg: tuple[Site, int]) -> None:
        site, i = arg
        now = self.clock.now
        site.registered_until[i] = self._job(site, "REGISTER", now)
        self.clock.at_lane(self.publishing, self._job(site, "PUBLISH", now), self._published,
                           (site, i, CLOSED))
        watching, site.watching[i] = site.watching[i], None
        for b in sorted(watching or ()):
            self._job(site, "SUBSCRIBE", now)
            self._unwatch(site, i, b, now, "UNSUBSCRIBE")

    def _expire(self, arg: tuple[Site, int, int]) -> None:
        site, i, session = arg
        if site.session[i] != session:
            return
        now = self.clock.now
        watching, site.watching[i] = site.watching[i], None
        for b in sorted(watching or ()):
            self._unwatch(site, i, b, now, "EXPIRE")
        self._change(site, i, CLOSED, now, "EXPIRE")

    # -- presence ------------------------------------------------------------------------
    def _presence(self, arg: tuple[Site, int, int]) -> None:
        site, i, session = arg
        if site.session[i] != session:
            return
        now = self.clock.now
        if self.trace:
            self.recorder.log(now, site.ids[i], "PUBLISH open")
        self.clock.at_lane(self.publishing, self._job(site, "PUBLISH", now), self._published,
                           (site, i, OPEN))
        for b in site.buddies(i):
            if self.trace:
                self.recorder.log(now, site.ids[i], f"SUBSCRIBE {site.ids[b]}")
            done = self._job(site, "SUBSCRIBE", now)
            self.clock.at_lane(self.subscribing, done, self._subscribed, (site, i, b, session))

    def _published(self, arg: tuple[Site, int, int]) -> None:
        site, i, status = arg
        self._change(site, i, status, self.clock.now, "PUBLISH")

    def _change(self, site: Site, i: int, status: int, now: float, event: str) -> None:
        self._event(now, site, event, i, -1, STATUS[status])
        if self.trace:
            self.recorder.log(now, "presence", f"{event} {site.ids[i]} {STATUS[status]}")
        if site.status[i] == status:
            return
        site.status[i] = status
        for w in sorted(site.watchers[i] or ()):
            done = self._notify(site, w, i, now, False)
            if status == OPEN and self.on_notify is not None:
                self.on_notify(site, w, i, done + self.delay)

    def _subscribed(self, arg: tuple[Site, int, int, int]) -> None:
        site, w, b, session = arg
        if site.session[w] != session:
            return
        now = self.clock.now
        _add(site.watchers, b, w)
        _add(site.watching, w, b)
        self._event(now, site, "SUBSCRIBE", b, w, STATUS[site.status[b]])
        if self.trace:
            self.recorder.log(now, "presence", f"200 SUBSCRIBE {site.ids[w]} -> {site.ids[b]}")
        self._notify(site, w, b, now, True)

    def _notify(self, site: Site, w: int, b: int, now: float, initial: bool) -> float:
        done = self._job(site, "NOTIFY", now)
        status = STATUS[site.status[b]]
        self._event(done, site, "NOTIFY", b, w, status, initial)
        if self.trace:
            self.recorder.log(done, "presence", f"NOTIFY {site.ids[w]}: {site.ids[b]} {status}")
        return done

    def _unwatch(self, site: Site, w: int, b: int, now: float, event: str) -> None:
        watchers = site.watchers[b]
        if watchers is not None and w in watchers:
            watchers.remove(w)
        self._event(now, site, event, b, w, "")


def _add(sets: list[list[int] | None], key: int, value: int) -> None:
    """``sets[key].add(value)`` for a set kept as a small list."""
    found = sets[key]
    if found is None:
        sets[key] = [value]
    elif value not in found:
        found.append(value)
