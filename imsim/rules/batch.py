"""Rate a whole DataFrame of messages at once, for planning runs.

`rate_many` applies exactly the rules of `imsim.rules.rating.RateTable.rate` (longest code,
``|`` last, latest ``effective_from`` in effect with fallback to a shorter code,
off-peak prices in the customer's time zone, forbidden rates flagged, units from the
policy's unit size) to every row, with numpy instead of a Python loop:

- numbers become int64 and are left-aligned to 18 digits; for each distinct code
  length L, longest first, the L-digit prefix is one integer division, looked up in a
  dense array (L <= 7) or a hashed `pandas.Index` of the codes of that length;
- effective dates: every (code, effective_from) version is ranked; a row's time rank
  picks, per code, the latest version already in effect (one gather when all rows share
  a rank, else a `searchsorted` on ``code * (ranks + 1) + rank``);
- rows that cannot be int64 (more than 18 digits, non-digit strings) fall back to
  `RateTable.lookup`, one at a time, so even they follow the same rules.

Money: exact integer **micro-units** (1e-6 of the tariff's currency; a price has at
most 6 decimal places) in ``unit_price_micro`` / ``charged_amount_micro`` (int64), so
``Decimal(micro) / 10**6`` equals the one-message path's `Decimal` exactly. The float
columns ``unit_price`` / ``charged_amount`` are ``micro / 1e6`` (NaN when nothing
matched), which equals ``float(decimal_amount)`` for amounts below 2**53 micro-units.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from imsim.model.config import WEEKDAYS, WILDCARD, OffPeakPeriod, RateStatus, Tariff
from imsim.rules.rating import RateTable, zone

MICRO = 1_000_000
MAX_DIGITS = 18            # every 18-digit number fits in int64
DENSE_MAX_LENGTH = 7       # prefixes up to 10**7 values use a direct-lookup array
COLUMNS: tuple[str, ...] = ("rate_code", "unit_price", "units", "charged_amount", "currency",
                            "off_peak", "forbidden", "matched",
                            "unit_price_micro", "charged_amount_micro")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_US_PER_DAY = 86_400 * MICRO
_POW10 = np.array([10**k for k in range(MAX_DIGITS + 1)], dtype=np.int64)
_INT64_MAX = 2**63 - 1
_NAT = -(2**63)

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def epoch_us(at: dt.datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware date-time."""
    if at.tzinfo is None:
        raise ValueError("at needs a time zone, e.g. 2026-01-05T09:00:00+00:00")
    return int((at - _EPOCH) // _US)


def to_micro(price: Decimal) -> int:
    scaled = price.scaleb(6)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {price} has more than 6 decimal places")
    return int(scaled)


class _PrefixIndex:
    """Codes of one length L: L-digit prefix (int64) -> code id, -1 when absent."""

    def __init__(self, length: int, values: Ints, ids: Ints) -> None:
        self.length = length
        self.divisor = int(_POW10[MAX_DIGITS - length])
        self.dense: npt.NDArray[np.int32] | None = None
        self.index: pd.Index | None = None
        self.ids = ids
        if length <= DENSE_MAX_LENGTH:
            self.dense = np.full(10**length, -1, dtype=np.int32)
            self.dense[values] = ids
        else:
            self.index = pd.Index(values)

    def find(self, aligned: Ints) -> Ints:
        prefix = aligned // self.divisor
        if self.dense is not None:
            return self.dense[prefix].astype(np.int64)
        assert self.index is not None
        found = self.index.get_indexer(prefix)
        return np.where(found >= 0, self.ids[found], -1)


@dataclass(frozen=True)
class _Versions:
    """Every (code, effective_from) version, sorted by code then date, plus a sentinel
    last row (code -1, nothing) that index -1 selects."""

    code: Ints
    since: Ints
    price: Ints
    off_peak_price: Ints   # -1: the rate has no off-peak price
    forbidden: Bools
    dates: Ints            # distinct effective dates, ascending
    key: Ints              # code * (len(dates) + 1) + rank of since (1-based); sorted


class BatchTable:
    """A tariff compiled for `rate_many`; build once and reuse for many frames."""

    def __init__(self, tariff: Tariff) -> None:
        self.tariff = tariff
        self.rates = RateTable(tariff)
        self.code_names = sorted(self.rates.codes, key=lambda c: (c == WILDCARD, len(c), c))
        self.code_ids = {code: i for i, code in enumerate(self.code_names)}
        self.wildcard = self.code_ids.get(WILDCARD, -1)
        self.version_of: dict[tuple[str, int], int] = {}
        self.versions = self._versions()
        self.prefixes = self._prefix_indexes()
        self.max_price = int(max(self.versions.price.max(initial=0),
                                 self.versions.off_peak_price.max(initial=0)))
        self._chosen: dict[int, Ints] = {}

    def _versions(self) -> _Versions:
        rows: list[tuple[int, int, int, int, bool]] = []
        for code, versions in self.rates.codes.items():
            for since, rate in versions:  # latest first; ties: first in the tariff
                key = (code, epoch_us(since))
                if key not in self.version_of:
                    self.version_of[key] = -1
                    off = -1 if rate.off_peak_price is None else to_micro(rate.off_peak_price)
                    rows.append((self.code_ids[code], key[1], to_micro(rate.price), off,
                                 rate.status is RateStatus.forbidden))
        rows.sort(key=lambda row: (row[0], row[1]))
        for i, row in enumerate(rows):
            self.version_of[(self.code_names[row[0]], row[1])] = i
        rows.append((-1, 0, 0, -1, False))
        columns = [np.array(col, dtype=np.int64) for col in zip(*rows, strict=True)]
        code_id, since_us, price, off_peak_price, forbidden = columns
        dates = np.unique(since_us[:-1])
        rank = np.searchsorted(dates, since_us[:-1]) + 1
        return _Versions(code_id, since_us, price, off_peak_price, forbidden.astype(bool), dates,
                         code_id[:-1] * (len(dates) + 1) + rank)

    def _prefix_indexes(self) -> list[_PrefixIndex]:
        by_length: dict[int, list[tuple[int, int]]] = {}
        for code, i in self.code_ids.items():
            if code != WILDCARD and len(code) <= MAX_DIGITS:
                by_length.setdefault(len(code), []).append((int(code), i))
        out = []
        for length in sorted(by_length, reverse=True):
            values, ids = zip(*by_length[length], strict=True)
            out.append(_PrefixIndex(length, np.array(values, dtype=np.int64),
                                    np.array(ids, dtype=np.int64)))
        return out

    # -- effective dates ---------------------------------------------------------------
    def rank(self, at_us: Ints) -> Ints:
        """How many distinct effective dates are <= each time (0: nothing in effect)."""
        return np.searchsorted(self.versions.dates, at_us, side="right").astype(np.int64)

    def chosen(self, rank: int) -> Ints:
        """Per code id (and -1 -> sentinel), the version in effect at ``rank``, or -1."""
        found = self._chosen.get(rank)
        if found is None:
            v = self.versions
            in_effect = np.nonzero(v.key % (len(v.dates) + 1) <= rank)[0]
            codes = v.code[in_effect]
            last = np.r_[codes[1:] != codes[:-1], True] if len(codes) else codes.astype(bool)
            found = np.full(len(self.code_names) + 1, -1, dtype=np.int64)
            found[codes[last]] = in_effect[last]
            self._chosen[rank] = found
        return found

    def version_at(self, code: Ints, rank: Ints) -> Ints:
        """Per row, the version of ``code`` (>= 0) in effect at ``rank`` (-1: none)."""
        v = self.versions
        pos = np.searchsorted(v.key, code * (len(v.dates) + 1) + rank, side="right") - 1
        return np.where((pos >= 0) & (v.code[np.maximum(pos, 0)] == code), pos, -1)

    # -- lookup ------------------------------------------------------------------------
    def lookup(self, number: Ints, digits: Ints, rank: Ints) -> Ints:
        """The version index for int64 numbers of ``digits`` digits at time ``rank``."""
        found = np.full(len(number), -1, dtype=np.int64)
        if len(number) == 0:
            return found
        resolve = self._resolver(rank)
        aligned = number * _POW10[MAX_DIGITS - digits]
        shortest = int(digits.min())
        for prefix in self.prefixes:
            code = prefix.find(aligned)
            if prefix.length > shortest:
                code[digits < prefix.length] = -1
            found = np.where(found < 0, resolve(code), found)
            if found.min(initial=0) >= 0:
                return found
        if self.wildcard >= 0:
            found = np.where(found < 0, resolve(np.full(len(found), self.wildcard)), found)
        return found

    def _resolver(self, rank: Ints) -> Callable[[Ints], Ints]:
        """code ids -> version indexes at each row's rank: a gather, then a search only
        for the codes whose version changes between the earliest and latest row."""
        first, last = self.chosen(int(rank.min())), self.chosen(int(rank.max()))
        if first is last:
            return first.__getitem__
        changing = first != last

        def resolve(code: Ints) -> Ints:
            found = first[code]
            rows = np.nonzero(changing[code])[0]
            found[rows] = self.version_at(code[rows], rank[rows])
            return found
        return resolve

    def lookup_one(self, number: str, at: dt.datetime) -> int:
        """The version index for one number, by `RateTable.lookup` (the slow path)."""
        hit = self.rates.lookup(number, at)
        if hit is None:
            return -1
        code, rate = hit
        return self.version_of[(code, epoch_us(rate.effective_from or _EPOCH))]

    def is_off_peak(self, at_us: Ints, time_zone: str) -> Bools:
        """Per row: inside one of the tariff's off-peak periods in ``time_zone``."""
        utc = pd.DatetimeIndex(at_us.astype("datetime64[us]")).tz_localize("UTC")
        wall = utc.tz_convert(zone(time_zone)).tz_localize(None).as_unit("us").asi8
        day = wall // _US_PER_DAY
        weekday, clock = (day + 3) % 7, wall - day * _US_PER_DAY  # 1970-01-01: a Thursday
        out = np.zeros(len(at_us), dtype=bool)
        for period in self.tariff.off_peak:
            out |= _in_period(period, weekday, clock)
        return out


def _in_period(period: OffPeakPeriod, weekday: Ints, clock: Ints) -> Bools:
    """`OffPeakPeriod.contains`, vectorised over local weekdays and clocks (us)."""
    days = np.array([day in period.days for day in WEEKDAYS])
    today, start, end = days[weekday], _clock_us(period.start), _clock_us(period.end)
    if start == end:
        return today
    if start < end:
        return today & (clock >= start) & (clock < end)
    return today & ((clock >= start) | (clock < end))


def _clock_us(time: dt.time) -> int:
    return ((time.hour * 60 + time.minute) * 60 + time.second) * MICRO + time.microsecond


# -- the frame --------------------------------------------------------------------------

_COMPILED: dict[int, tuple[Tariff, BatchTable]] = {}


def compiled(tariff: Tariff | BatchTable) -> BatchTable:
    """The `BatchTable` of a tariff, cached for the last few tariffs used."""
    if isinstance(tariff, BatchTable):
        return tariff
    found = _COMPILED.get(id(tariff))
    if found is None or found[0] is not tariff:
        if len(_COMPILED) >= 8:
            _COMPILED.pop(next(iter(_COMPILED)))
        found = _COMPILED[id(tariff)] = (tariff, BatchTable(tariff))
    return found[1]


@dataclass
class _Numbers:
    """The CLD column split into a fast part (int64 + digit count) and the rest."""

    fast: Ints           # row positions
    number: Ints
    digits: Ints
    slow: Ints           # row positions rated one at a time
    text: list[str]      # their numbers, as `RateTable` sees them


def _numbers(cld: pd.Series) -> _Numbers:
    if pd.api.types.is_integer_dtype(cld.dtype):
        missing = cld.isna().to_numpy()
        values = cld.to_numpy(dtype=np.int64, na_value=-1)
        good = (values >= 0) & (values < 10**MAX_DIGITS) & ~missing
        fast = np.nonzero(good)[0]
        number = values[fast]
        digits = np.maximum(np.searchsorted(_POW10, number, side="right"), 1)
        slow = np.nonzero(~good & ~missing)[0]
        return _Numbers(fast, number, digits.astype(np.int64), slow,
                        [str(v) for v in values[slow]])
    text = _arrow_text(cld)
    good = pc.fill_null(pc.and_(pc.ascii_is_decimal(text),
                                pc.less_equal(pc.binary_length(text), MAX_DIGITS)), False)
    digits = pc.binary_length(text).to_numpy(zero_copy_only=False)
    if not pc.all(good).as_py():
        text = pc.if_else(good, text, "0")
    number = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
    ok = good.to_numpy(zero_copy_only=False)
    fast, slow = np.nonzero(ok)[0], np.nonzero(~ok & cld.notna().to_numpy())[0]
    return _Numbers(fast, number[fast], digits[fast].astype(np.int64), slow,
                    [str(cld.iloc[row]) for row in slow])


def _arrow_text(cld: pd.Series) -> pa.Array:
    text = pa.array(cld.astype("str").array)
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def _times(frame: pd.DataFrame, at: dt.datetime | None) -> Ints:
    if at is not None:
        return np.full(len(frame), epoch_us(at), dtype=np.int64)
    if "connect_time" not in frame:
        raise ValueError("rate_many needs a connect_time column or a scalar at=")
    column = frame["connect_time"]
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"connect_time must be tz-aware datetime64, not {column.dtype}")
    return pd.DatetimeIndex(column).as_unit("us").asi8.astype(np.int64)


def _units(frame: pd.DataFrame, unit_size: int | None) -> Ints:
    if not unit_size or "length" not in frame:
        return np.ones(len(frame), dtype=np.int64)
    length = frame["length"].fillna(0).to_numpy(dtype=np.int64)
    return np.maximum(1, -(-length // unit_size))


def rate_many(frame: pd.DataFrame, tariff: Tariff | BatchTable, *, unit_size: int | None = None,
              time_zone: str = "UTC", at: dt.datetime | None = None) -> pd.DataFrame:
    """Rate every row of ``frame`` under ``tariff``, as `RateTable.rate` rates one message.

    ``frame`` has ``CLD`` (E.164 digits, str or int64), optionally ``length`` and
    ``connect_time`` (tz-aware); a scalar ``at`` is used for every row instead of
    ``connect_time``. Returns one row per input row (same index) with `COLUMNS`:
    ``rate_code`` is categorical (NaN when nothing matched), money as described in the
    module docstring, ``units`` and the micro amounts are 0 when nothing matched
    (``matched`` False; a missing CLD never matches). Forbidden rates are matched,
    rated and flagged ``forbidden``.
    """
    table = compiled(tariff)
    times, units = _times(frame, at), _units(frame, unit_size)
    _check_overflow(table, units)
    version = np.full(len(frame), -1, dtype=np.int64)
    numbers = _numbers(frame["CLD"])
    version[numbers.fast] = table.lookup(numbers.number, numbers.digits,
                                         table.rank(times[numbers.fast]))
    for row, text in zip(numbers.slow, numbers.text, strict=True):
        if times[row] == _NAT:
            continue
        when = _EPOCH + dt.timedelta(microseconds=int(times[row]))
        version[row] = table.lookup_one(text, when)
    off_peak = _off_peak(table, version, times, time_zone, at)
    return _result(frame.index, table, version, units, off_peak)


def _check_overflow(table: BatchTable, units: Ints) -> None:
    if table.max_price * int(units.max(initial=1)) > _INT64_MAX:
        raise OverflowError("charged amounts exceed int64 micro-units; rate in smaller batches "
                            "or with smaller prices")


def _off_peak(table: BatchTable, version: Ints, times: Ints, time_zone: str,
              at: dt.datetime | None) -> Bools:
    off_peak = np.zeros(len(version), dtype=bool)
    if not table.tariff.off_peak:
        return off_peak
    candidates = np.nonzero(table.versions.off_peak_price[version] >= 0)[0]
    if len(candidates) == 0:
        return off_peak
    if at is not None:
        off_peak[candidates] = table.rates.is_off_peak(at, time_zone)
    else:
        off_peak[candidates] = table.is_off_peak(times[candidates], time_zone)
    return off_peak


def _result(index: pd.Index, table: BatchTable, version: Ints, units: Ints,
            off_peak: Bools) -> pd.DataFrame:
    v = table.versions
    matched = version >= 0
    price = np.where(off_peak, v.off_peak_price[version], v.price[version])
    units = np.where(matched, units, 0)
    amount = price * units
    currency = pd.Categorical.from_codes(np.zeros(len(version), dtype=np.int8),
                                         categories=[table.tariff.currency])
    return pd.DataFrame({
        "rate_code": pd.Categorical.from_codes(v.code[version], categories=table.code_names),
        "unit_price": np.where(matched, price / MICRO, np.nan),
        "units": units,
        "charged_amount": np.where(matched, amount / MICRO, np.nan),
        "currency": currency,
        "off_peak": off_peak,
        "forbidden": v.forbidden[version],
        "matched": matched,
        "unit_price_micro": price,
        "charged_amount_micro": amount,
    }, index=index, copy=False)
