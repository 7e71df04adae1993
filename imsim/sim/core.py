"""The simulator's core: a callback-style clock on simpy (random streams and samplers:
`imsim.sim.draws`; FIFO worker pools: `imsim.sim.pools`).

Everything in the model is an event that calls a function at a simulated moment
(`Clock.at`), or an object that is its own event (`Event`: a message in flight, the
Poisson stream); no process or generator per message, so a run of millions of messages
costs a few events each. The clock is a
`simpy.Environment` (a subclass overriding its public ``schedule``, ``step``, ``peek``
and ``run``, as `simpy.rt.RealtimeEnvironment` does) and orders its events exactly as
simpy orders its own (by time, then priority, then the order they were scheduled in,
one id counter for both), in a heap of its own: every `Event` carries its time and
id, so scheduling allocates nothing and comparing two events reads two numbers
(compiled, no tuples and no rich comparisons). A simpy process or event scheduled on
the clock runs in its place in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any, Final

import simpy

from imsim.model.memory import paused_gc

NORMAL: Final = simpy.core.NORMAL   # Final: compiled, no module lookup per use
URGENT: Final = simpy.core.URGENT
INF: Final = float("inf")


class Event:
    """A model event: when its time comes the clock calls ``run()`` (a native method
    call when compiled). It carries its own place in the order, ``t`` and ``eid``
    (`Clock.serial`): a message in flight is its own event, rescheduled
    stage after stage without allocating anything."""

    __slots__ = ("t", "eid")

    def __init__(self) -> None:
        self.t = 0.0
        self.eid = 0

    def run(self) -> None:
        raise NotImplementedError


class Call(Event):
    """An event that calls ``fn(arg)``."""

    __slots__ = ("fn", "arg")

    def __init__(self, fn: Callable[[Any], None], arg: Any) -> None:
        super().__init__()
        self.fn = fn
        self.arg = arg

    def run(self) -> None:
        self.fn(self.arg)


class Lane(Event):
    """Events one caller schedules in time order: at ``now`` plus a constant, or at a
    FIFO pool's finish plus a constant (with constant service times a pool's finishes
    never decrease). Only the lane is in the clock's heap, under its first event's time
    and id (its ``t`` and ``eid``); the next event's come in when the first is taken.
    Every event keeps its own time and id, so the order is the one a single heap gives,
    and the heap holds a lane instead of all its events (a registration storm of a
    million softphones queues millions of events). An event earlier than the lane's
    last goes into the heap itself (`Clock.put`)."""

    __slots__ = ("events", "head", "last")

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []   # waiting from ``head`` on
        self.head = 0
        self.last = -INF

    def __len__(self) -> int:
        """Events waiting."""
        return len(self.events) - self.head

    def take(self) -> Event:
        """Take the first event; the lane's time and id become the next one's, if any."""
        head, events = self.head, self.events
        event = events[head]
        head += 1
        if head == len(events):
            events.clear()
            head = 0
        else:
            following = events[head]
            self.t, self.eid = following.t, following.eid
            if head >= 1024 and 2 * head >= len(events):   # drop what was taken
                del events[:head]
                head = 0
        self.head = head
        return event


def _earlier(a: Event, b: Event) -> bool:
    return a.t < b.t or (a.t == b.t and a.eid < b.eid)


def _push(heap: list[Event], event: Event) -> None:
    """Add ``event`` to ``heap`` (`heapq.heappush` on (t, eid))."""
    heap.append(event)
    pos = len(heap) - 1
    while pos > 0:
        parent = (pos - 1) >> 1
        above = heap[parent]
        if not _earlier(event, above):
            break
        heap[pos] = above
        pos = parent
    heap[pos] = event


def _sink(heap: list[Event], event: Event) -> None:
    """Put ``event`` at the top of ``heap`` (whose top was taken, or is ``event`` with a
    later time) and sift it down to its place."""
    size = len(heap)
    pos = 0
    child = 1
    while child < size:
        right = child + 1
        if right < size and _earlier(heap[right], heap[child]):
            child = right
        below = heap[child]
        if not _earlier(below, event):
            break
        heap[pos] = below
        pos = child
        child = 2 * pos + 1
    heap[pos] = event


def _pop(heap: list[Event]) -> None:
    """Drop the top of ``heap``."""
    last = heap.pop()
    if heap:
        _sink(heap, last)


class Clock(simpy.Environment):
    """Simulated time, a `simpy.Environment`: ``at(t, fn, arg)`` calls ``fn(arg)`` at
    ``t``; nothing at or past ``until`` is scheduled (it would never run).

    It keeps two queues: the model's events (a heap of `Event`s and `Lane`s, by time
    and id) and simpy's (what `schedule` is given: timeouts, processes, requests, by
    time, priority and id). Ids come from one counter, so the two interleave as one
    simpy queue would. It overrides simpy's public extension points, as
    `simpy.rt.RealtimeEnvironment` does: `now`, `schedule`, `peek`, `step`, `run`.
    """

    def __init__(self, until: float) -> None:
        super().__init__()
        self.until = until
        self.serial = 0
        """The next event id (the model's and simpy's events share it)."""
        self.simpy_queue: list[tuple[float, int, int, simpy.Event]] = []
        """simpy's events (`schedule`): (time, priority, id, event), a heap."""
        self.queue: list[Event] = []
        """The clock's heap: events and lanes, by (t, eid)."""
        self.t = 0.0
        """The time of the event being processed: ``now``."""
        self._started = False
        self._pending = Lane()
        """What `at` and `put` scheduled before the clock started (every softphone's
        start, spread over the first seconds): sorted once when it starts, it is one
        lane, so the heap stays the size of what is in flight, not of the population."""

    @property
    def now(self) -> float:
        return self.t

    @property
    def env(self) -> Clock:
        """The clock itself: the world's `simpy.Environment`."""
        return self

    # -- simpy's extension points --------------------------------------------------------
    def schedule(self, event: simpy.Event, priority: int = NORMAL, delay: float = 0) -> None:
        """`simpy.Environment.schedule`: ``event`` at ``now + delay``."""
        serial = self.serial
        self.serial = serial + 1
        heappush(self.simpy_queue, (self.t + delay, priority, serial, event))

    def peek(self) -> float:
        """The time of the next event (either queue), ``inf`` if none."""
        if not self._started:
            self._start()
        found = self.simpy_queue[0][0] if self.simpy_queue else INF
        return min(found, self.queue[0].t) if self.queue else found

    def step(self) -> None:
        """Process the next event (either queue); `simpy.core.EmptySchedule` if none."""
        if not self._started:
            self._start()
        if self.simpy_queue and self._simpy_first(INF, 0):
            self._step_simpy()
        elif self.queue:
            self._step_model()
        else:
            raise simpy.core.EmptySchedule()

    def run(self, until: Any = None) -> Any:
        """`simpy.Environment.run`: to a time (None: to ``until``), or until an event
        has been processed (its value)."""
        if until is None or not isinstance(until, simpy.Event):
            self.play(None, 1, self.until if until is None else float(until))
            return None
        return simpy.Environment.run(self, until)

    # -- running -------------------------------------------------------------------------
    def play(self, step: Callable[[float], None] | None = None, chunks: int = 200,
             to: float = -1.0) -> None:
        """Run to ``to`` (default: ``until``); with ``step``, in chunks, calling
        ``step(now)`` after each.

        Nothing the model makes needs the cyclic garbage collector (a queued message and
        its path's lane refer to each other only until it is taken): it is paused
        (`paused_gc`).
        """
        end = self.until if to < 0 else to
        with paused_gc():
            if step is None:
                self.advance(end)
                return
            for k in range(1, chunks + 1):
                self.advance(end * k / chunks)
                step(self.t)

    def advance(self, to: float) -> None:
        """``run(until=to)``: stops where simpy's stop event (urgent, at ``now + (to -
        now)``, with the next id) would; the model's events and simpy's run in their
        order."""
        if to <= self.t:
            raise ValueError(f"until ({to}) must be greater than the current simulation time")
        end = self.t + (to - self.t)
        stop = self.serial
        self.serial = stop + 1
        if not self._started:
            self._start()
        heap, foreign = self.queue, self.simpy_queue
        while True:
            if foreign and self._simpy_first(end, stop):
                self._step_simpy()
                continue
            if not heap:
                break
            top = heap[0]
            if top.t >= end:   # the stop event is urgent: it comes first at ``end``
                break
            self.t = top.t   # `_step_model`, inlined: the loop of every run
            if isinstance(top, Lane):
                event = top.take()
                if top.head < len(top.events):   # its time and id are its next event's
                    _sink(heap, top)
                else:
                    _pop(heap)
                event.run()
            else:
                _pop(heap)
                top.run()
        self.t = end

    def _step_model(self) -> None:
        """Run the model's next event (the top of its heap)."""
        heap = self.queue
        top = heap[0]
        self.t = top.t
        if isinstance(top, Lane):
            event = top.take()
            if top.head < len(top.events):   # its time and id are its next event's
                _sink(heap, top)
            else:
                _pop(heap)
            event.run()
        else:
            _pop(heap)
            top.run()

    def _step_simpy(self) -> None:
        """Process simpy's next event, as `simpy.Environment.step` does."""
        when, _, _, event = heappop(self.simpy_queue)
        self.t = when
        callbacks = event.callbacks
        event.callbacks = None  # type: ignore[assignment]   # as simpy does: processed
        for k, callback in enumerate(callbacks):
            try:
                callback(event)
            except simpy.core.StopSimulation:   # resume the rest when run again
                event.callbacks = callbacks[k + 1:]
                self.schedule(event, URGENT - 1)
                raise
        if not event.ok and not event.defused:
            failure: Any = event.value
            raise type(failure)(*failure.args) from failure

    def _simpy_first(self, end: float, stop: int) -> bool:
        """Whether simpy's next event comes before the model's next and the stop."""
        when, priority, eid, _ = self.simpy_queue[0]
        if (when, priority, eid) > (end, URGENT, stop):
            return False
        heap = self.queue
        if not heap:
            return True
        top = heap[0]
        return (when, priority, eid) < (top.t, NORMAL, top.eid)

    # -- the model's events ------------------------------------------------------------
    def _key(self, event: Event, when: float) -> None:
        """Give ``event`` its time (as simpy computes it: ``now + delay``) and an id."""
        now = self.t
        event.t = now + (when - now)
        serial = self.serial
        event.eid = serial
        self.serial = serial + 1

    def at(self, when: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        if when < self.until:
            call = Call(fn, arg)
            self._key(call, when)
            if self._started:
                _push(self.queue, call)
            else:
                self._pending.events.append(call)

    def again(self, event: Event, when: float) -> None:
        """Schedule an `Event` (a `Call` too) at ``when``, as itself (no allocation)."""
        if when < self.until:
            self._key(event, when)
            _push(self.queue, event)

    def at_lane(self, lane: Lane, when: float, fn: Callable[[Any], None],
                arg: Any = None) -> None:
        """`at`, in ``lane`` (same order, a smaller heap)."""
        if when < self.until:
            self.put(lane, when, Call(fn, arg))

    def put(self, lane: Lane, when: float, event: Event) -> None:
        """Schedule ``event`` at ``when`` (before ``until``) in ``lane``."""
        self._key(event, when)
        when = event.t
        if not self._started:
            self._pending.events.append(event)
        elif lane.head < len(lane.events):
            if when < lane.last:
                _push(self.queue, event)
            else:
                lane.last = when
                lane.events.append(event)
        else:
            lane.last = lane.t = when
            lane.eid = event.eid
            lane.events.append(event)
            _push(self.queue, lane)

    def _start(self) -> None:
        """The pending events, sorted by time (stable: in order of scheduling, which is
        the order of their ids), are one lane in the heap."""
        self._started = True
        lane = self._pending
        lane.events.sort(key=_time)
        if lane.events:
            first = lane.events[0]
            lane.t, lane.eid, lane.last = first.t, first.eid, lane.events[-1].t
            _push(self.queue, lane)


def _time(event: Event) -> float:
    return event.t
