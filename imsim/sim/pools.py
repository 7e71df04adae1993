"""FIFO worker pools of the fast engine (the proxy, the billing AAA), and both engines'
pool summaries.

A `Pool` is a FIFO multi-server queue: because arrivals are admitted in time order
(each arrival is an event), a job's start and finish are known when it arrives, so
finishing needs no event of its own.
"""

from __future__ import annotations

from collections import deque


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


def pool_stats(workers: int, jobs: int, busy_time: float, wait_time: float, max_queue: int,
               elapsed: float) -> dict[str, float]:
    """A worker pool's summary over ``elapsed`` seconds (both engines' pools)."""
    capacity = workers * elapsed
    return {"workers": workers, "jobs": jobs,
            "utilization": busy_time / capacity if capacity else 0.0,
            "mean_wait": wait_time / jobs if jobs else 0.0,
            "max_queue_sampled": max_queue}


class Pool:
    """``workers`` identical servers, one FIFO queue (the proxy, the billing AAA).

    ``admit(now, service)`` returns when the job finishes. Statistics: jobs, total
    waiting and busy time, and queue samples through ``sample(now)``.

    ``free`` holds when each server is next free. Its smallest is the next job's start:
    a heap (`replace_min`). While every job takes the same service time and arrives no
    earlier than the one before, a job's finish is the latest of all, so the servers free
    up in the order they were taken: ``free`` is then a ring, sorted from ``head``, and
    the smallest is at ``head`` (no sifting). A job of another service time, or an
    earlier one, turns the ring into the heap (sorted, it is one), unless every server
    is free when it comes: then any order is the ring's (a heap becomes a ring again).
    """

    def __init__(self, name: str, workers: int) -> None:
        self.name, self.workers = name, workers
        self.free = [0.0] * workers
        self.ring = True
        self.head = 0
        self.same = 0.0     # the service time of the jobs in the ring
        self.last = 0.0     # the latest arrival
        self.latest = 0.0   # the latest finish: every server is free from then on
        self.jobs = 0
        self.wait_time = 0.0
        self.busy_time = 0.0
        self.waiting: deque[float] = deque()
        self.max_queue = 0

    def admit(self, now: float, service: float) -> float:
        if not (self.ring and service == self.same and now >= self.last):
            if now >= self.latest:   # every server is free
                if not self.ring:
                    self.free.sort()
                    self.head = 0
                    self.ring = True
                self.same = service
            elif self.ring:
                self._heap()
        self.last = now
        free = self.free
        head = self.head
        start = free[head]
        if start <= now:
            start = now
        else:
            self.wait_time += start - now
            self.waiting.append(start)
        finish = start + service
        if self.ring:
            free[head] = finish
            head += 1
            self.head = head if head < len(free) else 0
        else:
            replace_min(free, finish)
        if finish > self.latest:
            self.latest = finish
        self.jobs += 1
        self.busy_time += service
        return finish

    def _heap(self) -> None:
        """From a ring to a heap: the ring from ``head`` on is sorted, so a heap."""
        head = self.head
        self.free = self.free[head:] + self.free[:head]
        self.head = 0
        self.ring = False

    def sample(self, now: float) -> tuple[int, int]:
        """(busy workers, jobs waiting) at ``now``."""
        waiting = self.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        queue = len(waiting)
        self.max_queue = max(self.max_queue, queue)
        return sum(1 for f in self.free if f > now), queue

    def stats(self, elapsed: float) -> dict[str, float]:
        return pool_stats(self.workers, self.jobs, self.busy_time, self.wait_time,
                          self.max_queue, elapsed)
