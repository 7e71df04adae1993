"""The simulator's core: a callback-style clock on simpy, named random streams,
samplers and FIFO worker pools.

Everything in the model is an event that calls a function at a simulated moment
(`Clock.at`), or an object that is its own event (`Event`: a message in flight, the
Poisson stream); no process or generator per message, so a run of millions of messages
costs a few simpy events each. `Clock.run` steps simpy's own event queue in a
tight loop: the same heap, the same (time, priority, id) order and the same times as
`simpy.Environment.run`, without a method call per event (the model is run by
`Clock.run`, which keeps the time in `Clock.t`; any other simpy event in the queue
is handed to ``env.step``). A `Pool` is a FIFO
multi-server queue: because arrivals are admitted in time order (each arrival is an
event), a job's start and finish are known when it arrives, so finishing needs no
event of its own.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any, Final

import numpy as np
import simpy

from imsim.distributions import Distribution
from imsim.memory import paused_gc

NORMAL: Final = simpy.core.NORMAL   # Final: compiled, no module lookup per use
URGENT: Final = simpy.core.URGENT
BATCH: Final = 4096
INF: Final = float("inf")


def dispatch(event: Any) -> None:
    """The one simpy callback of every model event: call its function."""
    event.fn(event._value)


DISPATCH: Any = (dispatch,)
"""The callbacks of every `Call` (shared: simpy only iterates them)."""
OWN: Any = (None,)
"""The callbacks of an `Event` (simpy only iterates them; the clock calls ``run()``)."""
LANE: Any = (None,)
"""The callbacks of a `Lane` in simpy's queue (the clock takes its first event)."""


class Call:
    """A simpy event that calls ``fn(arg)`` when it is processed."""

    __slots__ = ("callbacks", "_ok", "_value", "fn")

    def __init__(self, fn: Callable[[Any], None], arg: Any) -> None:
        self.callbacks = DISPATCH
        self._ok = True
        self._value = arg
        self.fn = fn


class Event:
    """A model object that is its own simpy event (`Clock.again`, `Clock.put`): when it
    is processed the clock calls ``run()``, a native method call when compiled (no
    bound method, no attribute looked up by name)."""

    __slots__ = ("callbacks", "_ok", "_value")

    def __init__(self) -> None:
        self.callbacks: Any = OWN
        self._ok = True
        self._value: Any = None

    def run(self) -> None:
        raise NotImplementedError


class Lane:
    """Events one caller schedules in time order: at ``now`` plus a constant, or at a
    FIFO pool's finish plus a constant (with constant service times a pool's finishes
    never decrease). Only the first of them is in simpy's queue, under the entry it
    was given when scheduled; the next one goes in when it is taken. Every event keeps
    its own (time, priority, id), so the order is the one a single queue gives, and the
    queue holds a lane's first event instead of all of them (a registration storm of a
    million softphones queues millions of events). An event earlier than the lane's
    last goes into the queue itself (`Clock.put`)."""

    __slots__ = ("keys", "events", "head", "last", "callbacks", "_ok", "_value")

    def __init__(self) -> None:
        self.keys: list[Any] = []     # waiting from ``head`` on (lists: indexing is
        self.events: list[Any] = []   # compiled, a deque's methods are called by name)
        self.head = 0
        self.last = -INF
        self.callbacks = LANE
        self._ok = True
        self._value = None

    def __len__(self) -> int:
        """Events waiting."""
        return len(self.keys) - self.head

    def add(self, key: Any, event: Any) -> None:
        self.keys.append(key)
        self.events.append(event)

    def take(self) -> Any:
        """Take the first event (its key was the queue's); the next one's key, if any, is
        then ``keys[head]``."""
        head, keys, events = self.head, self.keys, self.events
        event = events[head]
        events[head] = None
        head += 1
        if head == len(keys):
            keys.clear()
            events.clear()
            head = 0
        elif head >= 1024 and 2 * head >= len(keys):   # drop what was taken
            del keys[:head]
            del events[:head]
            head = 0
        self.head = head
        return event


class Clock:
    """Simulated time: ``at(t, fn, arg)`` calls ``fn(arg)`` at ``t``; nothing at or past
    ``until`` is scheduled (it would never run)."""

    def __init__(self, until: float) -> None:
        self.env = simpy.Environment()
        self.until = until
        self._queue: list[Any] = self.env._queue  # type: ignore[attr-defined]
        self._eid = self.env._eid  # type: ignore[attr-defined]
        self._next_id: Callable[[], int] = self._eid.__next__   # simpy's event ids
        self._push: Callable[[list[Any], Any], None] = heappush
        self.t = 0.0
        """The time of the event being processed: simpy's ``env.now``, kept here while
        the clock runs (`advance` hands it to simpy whenever simpy steps itself)."""
        self._started = False
        self._pending: list[Any] = []
        """What `at` scheduled before the clock started (every softphone's start, spread
        over the first seconds): sorted once when it starts, it becomes one `Lane`
        (each entry keeps its own (time, priority, id)), so the queue stays the size of
        what is in flight, not of the population."""

    @property
    def now(self) -> float:
        return self.t

    def at(self, when: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        if when < self.until:
            now = self.t
            entry = (now + (when - now), NORMAL, self._next_id(), Call(fn, arg))
            if self._started:
                self._push(self._queue, entry)
            else:
                self._pending.append(entry)

    def again(self, event: Event | Call, when: float) -> None:
        """Schedule an `Event` (``event.run()``) or a `Call` at ``when``, as itself (no
        allocation but the queue entry)."""
        if when < self.until:
            now = self.t
            self._push(self._queue, (now + (when - now), NORMAL, self._next_id(), event))

    def at_lane(self, lane: Lane, when: float, fn: Callable[[Any], None],
                arg: Any = None) -> None:
        """`at`, in ``lane`` (same order, a shorter queue)."""
        if when < self.until:
            self.put(lane, when, Call(fn, arg))

    def put(self, lane: Lane, when: float, event: Any) -> None:
        """Schedule ``event`` (a `Call`, or an `Event`) at ``when`` (before ``until``) in
        ``lane``."""
        now = self.t
        when = now + (when - now)
        if not self._started:
            self._pending.append((when, NORMAL, self._next_id(), event))
        elif when < lane.last and lane.head < len(lane.keys):
            self._push(self._queue, (when, NORMAL, self._next_id(), event))
        else:
            key = (when, NORMAL, self._next_id(), lane)
            lane.last = when
            if lane.head == len(lane.keys):
                self._push(self._queue, key)
            lane.add(key, event)

    def run(self, step: Callable[[float], None] | None = None, chunks: int = 200) -> None:
        """Run to ``until``; with ``step``, in chunks, calling ``step(now)`` after each.

        Nothing the model makes needs the cyclic garbage collector (a queued message and
        its path's lane refer to each other only until it is taken): it is paused
        (`paused_gc`).
        """
        with paused_gc():
            if step is None:
                self.advance(self.until)
                return
            for k in range(1, chunks + 1):
                self.advance(self.until * k / chunks)
                step(self.now)

    def advance(self, to: float) -> None:
        """``env.run(until=to)``: the stop event is scheduled as simpy schedules it
        (urgent, at ``now + (to - now)``); model events are dispatched inline, any
        other event is handed back to ``env.step``."""
        env = self.env
        if to <= self.t:
            raise ValueError(f"until ({to}) must be greater than the current simulation time")
        stop = Call(dispatch, None)
        stop.callbacks = []
        env._now = self.t
        env.schedule(stop, URGENT, to - self.t)  # type: ignore[arg-type]
        queue = self._queue
        if not self._started:
            self._start()
        pop, push = heappop, heappush   # locals: no module lookup per event
        while True:
            entry: tuple[float, int, int, Any] = pop(queue)
            event = entry[3]
            if isinstance(event, Lane):   # its first event is this entry's
                lane = event
                event = lane.take()
                if lane.head < len(lane.keys):
                    push(queue, lane.keys[lane.head])
            if isinstance(event, Event):
                self.t = entry[0]
                event.run()
            elif event is stop:
                self.t = env._now = entry[0]
                return
            elif isinstance(event, Call):
                self.t = entry[0]
                event.fn(event._value)
            else:
                push(queue, entry)
                env._now = self.t
                env.step()
                self.t = env._now

    def _start(self) -> None:
        """The pending entries, sorted, become a lane whose first entry is queued."""
        self._started = True
        pending, self._pending = self._pending, []
        pending.sort()
        lane = Lane()
        for when, priority, eid, event in pending:
            lane.add((when, priority, eid, lane), event)
        pending.clear()
        if lane.keys:
            lane.last = lane.keys[-1][0]
            heappush(self._queue, lane.keys[0])


def replace_min(heap: list[float], item: float) -> None:
    """`heapq.heapreplace` for a heap of floats (take the smallest, put ``item``): the
    same smallest value every time, and, compiled, float comparisons without calls."""
    size = len(heap)
    pos = 0
    child = 1
    while child < size:
        right = child + 1
        if right < size and heap[right] < heap[child]:
            child = right
        if not heap[child] < item:
            break
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    heap[pos] = item


class Streams:
    """Named random streams from one `SeedSequence(seed)`: the stream of a name does
    not depend on which other streams exist or in which order they were made."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.root = np.random.SeedSequence(seed)

    def generator(self, name: str) -> np.random.Generator:
        child = np.random.SeedSequence(self.root.entropy,
                                       spawn_key=(*self.root.spawn_key, zlib.crc32(name.encode())))
        return np.random.Generator(np.random.PCG64(child))


class Draws:
    """Values of one stream drawn in batches; ``next()`` costs a list index."""

    __slots__ = ("_draw", "_buffer", "_i")

    def __init__(self, draw: Callable[[int], np.ndarray]) -> None:
        self._draw = draw
        self._buffer: list[float] = []
        self._i = 0

    def next(self) -> float:
        i = self._i
        if i >= len(self._buffer):
            self._buffer = self._draw(BATCH).tolist()
            i = 0
        self._i = i + 1
        return self._buffer[i]


def sampler(dist: Distribution, rng: np.random.Generator) -> Callable[[], float]:
    """A zero-argument function drawing from ``dist`` (a constant draws nothing)."""
    if dist.is_constant:
        value = float(dist.value or 0.0)
        return lambda: value
    return Draws(_batch(dist, rng)).next


def _batch(d: Distribution, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    mean = float(d.mean or 0.0)
    if d.dist == "exponential":
        return lambda n: rng.exponential(mean, n)
    if d.dist == "uniform":
        return lambda n: rng.uniform(float(d.low or 0.0), float(d.high or 0.0), n)
    if d.dist == "normal":
        return lambda n: np.maximum(rng.normal(mean, float(d.sd or 0.0), n), 0.0)
    if d.dist == "lognormal":
        sigma2 = float(np.log1p((float(d.sd or 0.0) / mean) ** 2))
        mu = float(np.log(mean)) - sigma2 / 2
        return lambda n: rng.lognormal(mu, sigma2 ** 0.5, n)
    if d.dist == "gamma":
        shape = float(d.shape or 1.0)
        return lambda n: rng.gamma(shape, mean / shape, n)
    if d.dist == "geometric":
        p = d.p if d.p is not None else 1.0 / mean
        return lambda n: rng.geometric(p, n).astype(float)
    if d.dist == "poisson":
        return lambda n: rng.poisson(mean, n).astype(float)
    raise ValueError(f"no sampler for {d.dist}")


def uniforms(rng: np.random.Generator) -> Callable[[], float]:
    return Draws(rng.random).next


class Pool:
    """``workers`` identical servers, one FIFO queue (the proxy, the billing AAA).

    ``admit(now, service)`` returns when the job finishes. Statistics: jobs, total
    waiting and busy time, and queue samples through ``sample(now)``.
    """

    def __init__(self, name: str, workers: int) -> None:
        self.name, self.workers = name, workers
        self.free = [0.0] * workers
        self.jobs = 0
        self.wait_time = 0.0
        self.busy_time = 0.0
        self.waiting: deque[float] = deque()
        self.max_queue = 0

    def admit(self, now: float, service: float) -> float:
        free = self.free
        start = free[0]
        if start <= now:
            start = now
        else:
            self.wait_time += start - now
            self.waiting.append(start)
        finish = start + service
        replace_min(free, finish)
        self.jobs += 1
        self.busy_time += service
        return finish

    def sample(self, now: float) -> tuple[int, int]:
        """(busy workers, jobs waiting) at ``now``."""
        waiting = self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        queue = len(waiting)
        self.max_queue = max(self.max_queue, queue)
        return sum(1 for f in self.free if f > now), queue

    def stats(self, elapsed: float) -> dict[str, float]:
        capacity = self.workers * elapsed
        return {"workers": self.workers, "jobs": self.jobs,
                "utilization": self.busy_time / capacity if capacity else 0.0,
                "mean_wait": self.wait_time / self.jobs if self.jobs else 0.0,
                "max_queue_sampled": self.max_queue}
