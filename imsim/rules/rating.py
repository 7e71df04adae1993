"""Rating: which rate of a tariff applies to a destination number at a moment.

Rules (PortaBilling's):

- the longest rate code that is a prefix of the number wins;
- ``|`` is the wildcard, used only when no code matches;
- among rates of one code, the one with the latest ``effective_from`` already in
  effect wins; a code with no rate in effect yet is skipped for a shorter one;
- during an off-peak period of the tariff (read in the customer's time zone) the
  rate's ``off_peak_price`` applies when it has one;
- a rate with status ``forbidden`` refuses the destination;
- units = ceil(length / billing_unit_size), at least 1; every message is one unit
  when the policy sets no unit size.

`RateTable` rates one message; `imsim.rules.batch.rate_many` rates a whole DataFrame with
the same rules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from imsim.model.config import WILDCARD, Rate, RateStatus, Tariff

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_CACHE_LIMIT = 1_000_000
_CANDIDATES_LIMIT = 100_000
"""Numbers whose candidate codes are kept (a number is rated again and again only
while the simulator learns its decisions; with a million numbers, a full cache would
hold a million entries per tariff)."""

Versions = tuple[tuple[dt.datetime, Rate], ...]


@dataclass(frozen=True, slots=True)
class Rating:
    """What one message costs under one tariff."""

    tariff: str
    rate_code: str
    units: int
    unit_price: Decimal
    amount: Decimal
    currency: str
    off_peak: bool
    forbidden: bool = False


def units_for(length: int, unit_size: int | None) -> int:
    if not unit_size:
        return 1
    return max(1, -(-length // unit_size))


class RateTable:
    """A tariff's rates, indexed by code for longest-prefix lookup."""

    def __init__(self, tariff: Tariff) -> None:
        self.tariff = tariff
        codes: dict[str, list[tuple[dt.datetime, Rate]]] = {}
        for rate in tariff.rates:
            since = rate.effective_from or _EPOCH
            for code in rate.rate_codes:
                codes.setdefault(code, []).append((since, rate))
        self.codes: dict[str, Versions] = {
            code: tuple(sorted(versions, key=lambda v: v[0], reverse=True))
            for code, versions in codes.items()
        }
        self.lengths = sorted({len(c) for c in self.codes if c != WILDCARD}, reverse=True)
        self._candidates: dict[str, tuple[tuple[str, Versions], ...]] = {}
        self._shared: dict[tuple[str, ...], tuple[tuple[str, Versions], ...]] = {}
        self._ratings: dict[tuple[str, int, bool, int], Rating] = {}

    def candidates(self, number: str) -> tuple[tuple[str, Versions], ...]:
        """Every code matching ``number``, longest first, the wildcard last."""
        found = self._candidates.get(number)
        if found is None:
            hits = [(number[:n], self.codes[number[:n]]) for n in self.lengths
                    if n <= len(number) and number[:n] in self.codes]
            if WILDCARD in self.codes:
                hits.append((WILDCARD, self.codes[WILDCARD]))
            found = tuple(hits)   # the same for numbers matching the same codes: shared
            found = self._shared.setdefault(tuple(code for code, _ in hits), found)
            if len(self._candidates) >= _CANDIDATES_LIMIT:
                self._candidates.clear()
            self._candidates[number] = found
        return found

    def lookup(self, number: str, at: dt.datetime) -> tuple[str, Rate] | None:
        """The rate code and rate in effect for ``number`` at ``at``, or None."""
        for code, versions in self.candidates(number):
            for since, rate in versions:
                if since <= at:
                    return code, rate
        return None

    def is_off_peak(self, at: dt.datetime, time_zone: str) -> bool:
        if not self.tariff.off_peak:
            return False
        local = at.astimezone(zone(time_zone))
        return any(period.contains(local) for period in self.tariff.off_peak)

    def rate(self, number: str, at: dt.datetime, length: int = 0,
             unit_size: int | None = None, time_zone: str = "UTC") -> Rating | None:
        """Rate one message; None when no code matches and there is no wildcard."""
        found = self.lookup(number, at)
        if found is None:
            return None
        code, rate = found
        off_peak = rate.off_peak_price is not None and self.is_off_peak(at, time_zone)
        units = units_for(length, unit_size)
        key = (code, id(rate), off_peak, units)   # the table holds its rates: ids are stable
        rating = self._ratings.get(key)
        if rating is None:
            if len(self._ratings) >= _CACHE_LIMIT:
                self._ratings.clear()
            rating = self._ratings[key] = self._rating(code, rate, off_peak, units)
        return rating

    def _rating(self, code: str, rate: Rate, off_peak: bool, units: int) -> Rating:
        price = rate.off_peak_price if off_peak and rate.off_peak_price is not None else rate.price
        return Rating(self.tariff.name, code, units, price, price * units, self.tariff.currency,
                      off_peak, rate.status is RateStatus.forbidden)


_ZONES: dict[str, ZoneInfo] = {}


def zone(name: str) -> ZoneInfo:
    found = _ZONES.get(name)
    if found is None:
        found = _ZONES[name] = ZoneInfo(name)
    return found
