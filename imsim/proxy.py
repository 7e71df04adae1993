"""PortaSIP's part of the message path: service-policy selection and E.164 translation.

Plain functions over `imsim.config` objects; the simulator and the lab billing
service both call them.
"""

from __future__ import annotations

import multiprocessing
import re
import sys
import time
from collections.abc import Iterable
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import Any

import phonenumbers

from imsim.config import ServicePolicy

_SEPARATORS = re.compile(r"[\s\-().]")


@lru_cache(maxsize=1024)
def like_tokens(pattern: str) -> tuple[str | None, ...]:
    """An SQL LIKE pattern as tokens: None for ``%`` (any string), ``""`` for ``_`` (one
    character), else a literal character (lower case); ``\\`` escapes the next one."""
    tokens: list[str | None] = []
    escaped = False
    for char in pattern:
        if escaped:
            tokens.append(char.lower())
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            if not tokens or tokens[-1] is not None:
                tokens.append(None)
        else:
            tokens.append("" if char == "_" else char.lower())
    return tuple(tokens)


def domain_matches(pattern: str, domain: str) -> bool:
    """SQL LIKE, case-insensitive, in O(len(pattern) x len(domain)) at worst: the
    classic wildcard walk that only ever backtracks to the last ``%``."""
    tokens, text = like_tokens(pattern), domain.lower()
    t = p = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(tokens) and tokens[p] is not None and tokens[p] in ("", text[t]):
            t, p = t + 1, p + 1
        elif p < len(tokens) and tokens[p] is None:
            star, mark, p = p, t, p + 1
        elif star >= 0:
            mark += 1
            t, p = mark, star + 1
        else:
            return False
    return all(token is None for token in tokens[p:])


def select_policy(policies: Iterable[ServicePolicy], domain: str) -> ServicePolicy | None:
    """The messaging policy for a recipient domain.

    Highest ``match_priority`` wins; ties go to the more specific pattern (fewer
    wildcards, then longer), then to the policy name, so the choice never depends on
    the order of the list.
    """
    matching = [p for p in policies if domain_matches(p.recipient_domain_pattern, domain)]
    if not matching:
        return None
    return min(matching, key=_policy_rank)


def _policy_rank(policy: ServicePolicy) -> tuple[int, int, int, str]:
    pattern = policy.recipient_domain_pattern
    wildcards = pattern.count("%") + pattern.count("_")
    return (-policy.match_priority, wildcards, -len(pattern), policy.name)


@lru_cache(maxsize=65536)
def to_e164(user_part: str, country: str = "US") -> str | None:
    """Translate a SIP user part to an E.164 number without '+', or None.

    Strips '+', separators and the international prefix; a national number gets the
    country code of ``country`` (an ISO region such as US, GB, DE).
    """
    cleaned = _SEPARATORS.sub("", user_part)
    if not cleaned or not cleaned.lstrip("+").isdigit():
        return None
    try:
        number = phonenumbers.parse(cleaned, country)
    except phonenumbers.NumberParseException:
        return None
    digits = f"{number.country_code}{number.national_number}"
    if number.italian_leading_zero:
        digits = f"{number.country_code}{'0' * (number.number_of_leading_zeros or 1)}"
        digits += str(number.national_number)
    return digits if 6 <= len(digits) <= 15 else None


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


def recipient_number(user_part: str, translate: bool, country: str) -> str | None:
    """The number billing and lookup use: E.164 when the policy translates, else as typed."""
    if translate:
        return to_e164(user_part, country)
    return user_part if user_part.isdigit() else None
