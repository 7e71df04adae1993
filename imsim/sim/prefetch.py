"""E.164 translations worked out ahead, in a helper process, for the simulator.

A population of a million accounts has a million numbers to translate (phonenumbers
parses one in about 10 us: ten seconds of one core), and a machine has more cores. The
simulator starts an `E164Prefetch` for a large site and hands what has arrived to its
billing engines (`BillingEngine.numbers`, a plain dict): the rules stay pure, the answers
are the same.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from imsim.rules.proxy import to_e164

E164_CHUNK = 1000
"""Translations the `E164Prefetch` helper sends at a time (as it goes: the first ones
are there within milliseconds, while the caller is still deciding its first messages)."""


def _translate_into(conn: Connection, users: list[str], country: str) -> None:
    """The helper process of `E164Prefetch`: every user part's `to_e164`, sent back in
    order, `E164_CHUNK` at a time."""
    try:
        for k in range(0, len(users), E164_CHUNK):
            conn.send([to_e164.__wrapped__(user, country) for user in users[k:k + E164_CHUNK]])
    finally:
        conn.close()


class E164Prefetch:
    """`to_e164` of many user parts (a population's account numbers), worked out in a
    helper process while the caller goes on: phonenumbers parses a number in about
    10 us, so a million accounts' numbers are ten seconds of one core, and a machine
    has more. The helper sends them as it goes (`E164_CHUNK` at a time); `known` has
    those that have arrived, None before the first (the caller translates the others
    itself: the answers are the same). The helper is forked (it reads the numbers from
    the caller's memory); where fork is unavailable, or in a pool's worker, there is no
    helper and `known` stays None."""

    def __init__(self, users: list[str], country: str) -> None:
        self.country = country
        self._users = users
        self._table: dict[str, str | None] | None = None
        self._arrived = 0   # users[:_arrived] are in the table
        self._conn: Connection | None = None
        self._process: Any = None
        # fork is the only start method that shares memory; a daemonic process (a dask
        # or multiprocessing pool's worker: a sweep) may not have children
        if sys.platform != "linux" or multiprocessing.current_process().daemon:
            return
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe(duplex=False)
        process = context.Process(target=_translate_into, args=(child, users, country),
                                  name="imsim-e164", daemon=True)
        try:
            process.start()
        except OSError:   # no process to spare: the caller translates
            self.close()
        else:
            self._process = process
        finally:
            child.close()

    @property
    def complete(self) -> bool:
        """Whether every user part's translation has arrived."""
        return self._table is not None and self._arrived == len(self._users)

    def known(self) -> dict[str, str | None] | None:
        """The translations that have arrived (user part -> E.164, None: not a number),
        None before the first; takes what the helper has sent, without waiting."""
        return self.wait(0.0)

    def wait(self, timeout: float | None = None) -> dict[str, str | None] | None:
        """`known`, waiting up to ``timeout`` seconds (None: no limit) for the rest."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._conn is not None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._conn.poll(left):
                break
            self._receive()
        return self._table

    def _receive(self) -> None:
        assert self._conn is not None
        try:
            numbers = self._conn.recv()
        except (EOFError, OSError):   # the helper ended or died: the caller translates
            self.close()
            return
        table = self._table if self._table is not None else {}
        start = self._arrived
        # a number equal to its user part is that string, not a second copy
        for user, number in zip(self._users[start:start + len(numbers)], numbers,
                                strict=True):
            table[user] = user if number == user else number
        self._table, self._arrived = table, start + len(numbers)
        if self._arrived == len(self._users):
            self.close()

    def __del__(self) -> None:   # a world built and never run: its helper ends too
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass

    def close(self) -> None:
        """Stop waiting: the helper is ended if it still runs."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        process, self._process = self._process, None
        if process is not None:
            if process.is_alive():
                process.terminate()
            process.join()
