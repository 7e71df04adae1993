"""A dask client for sweeps and re-rating: one given, one connected to a running cluster
(``--scheduler``), or a LocalCluster of single-threaded workers on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


@contextmanager
def cluster(workers: int, scheduler: str | None = None, client: Any = None,
            memory_limit: str = "auto", processes: bool = True,
            config: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A dask client: the given one, one connected to ``scheduler``, or a LocalCluster
    of ``workers`` single-threaded workers on 127.0.0.1 (``config``: dask settings for
    it)."""
    if client is not None:
        yield client
        return
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as connected:
            yield connected
        return
    # TCP on loopback also for threads: the in-process transport looks up a public
    # address to name itself. The workers log nothing: a task's error reaches the caller
    # as its exception (a bad export: one line), not also as a worker's traceback
    with dask.config.set(dict(config or {})), LocalCluster(
            n_workers=max(1, workers), threads_per_worker=1, processes=processes,
            host="127.0.0.1", protocol="tcp://", dashboard_address=None,
            memory_limit=memory_limit, silence_logs=logging.CRITICAL) as local, \
            Client(local) as connected:
        yield connected
