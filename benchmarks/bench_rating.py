"""Rating throughput: the one-message path, `rate_many`, and a plain dict-probe loop.

Rates 1,000,000 destination numbers against a synthetic, seeded 50,000-prefix tariff
and prints rows/s for each path and the ratio to the dict probe measured in the same
run. A script, not a test: ``.venv/bin/python benchmarks/bench_rating.py [--rows N]``.
Goal (issue 2): `rate_many` >= 3,000,000 rows/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from imsim.model.config import OffPeakPeriod, Rate, Tariff
from imsim.rules.batch import BatchTable, rate_many
from imsim.rules.rating import RateTable

SEED = 20260105
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
LENGTHS = {2: 0.02, 3: 0.08, 4: 0.20, 5: 0.30, 6: 0.25, 7: 0.10, 8: 0.05}


def prefixes(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct destination codes, 2 to 8 digits, leading digit 1-9."""
    found: set[str] = set()
    lengths, weights = list(LENGTHS), list(LENGTHS.values())
    while len(found) < count:
        for length in rng.choice(lengths, size=count, p=weights):
            if len(found) < count:
                found.add(str(rng.integers(10 ** (int(length) - 1), 10 ** int(length))))
    return sorted(found)


def tariff(rng: np.random.Generator, codes: list[str]) -> Tariff:
    """One rate per code (10 % with an off-peak price, 1 % forbidden), 5 % of the codes
    with a second rate taking effect mid-week, and the wildcard."""
    prices = rng.integers(1_000, 200_000, size=len(codes))
    rates = []
    for code, micro in zip(codes, prices, strict=True):
        price = Decimal(int(micro)).scaleb(-6)
        extra: dict[str, Any] = {}
        if rng.random() < 0.10:
            extra["off_peak_price"] = Decimal(int(micro) // 2).scaleb(-6)
        if rng.random() < 0.01:
            extra["status"] = "forbidden"
        rates.append(Rate(rate_codes=(code,), price=price, **extra))
        if rng.random() < 0.05:
            rates.append(Rate(rate_codes=(code,), price=price * 2,
                              effective_from=START + dt.timedelta(days=3)))
    rates.append(Rate(rate_codes=("|",), price=Decimal("0.5")))
    evenings = OffPeakPeriod(days=("mon", "tue", "wed", "thu", "fri"),
                             start=dt.time(19), end=dt.time(7))
    return Tariff(name="bench", applied_to="customer", rates=tuple(rates),
                  off_peak=(evenings, OffPeakPeriod(days=("sat", "sun"))))


def numbers(rng: np.random.Generator, codes: list[str], rows: int) -> np.ndarray:
    """80 % a code followed by random digits, 20 % random numbers; 11 or 12 digits."""
    which = rng.integers(0, len(codes), size=rows)
    picked = np.array([int(c) for c in codes], dtype=np.int64)[which]
    width = np.array([len(c) for c in codes])[which]
    total = rng.integers(11, 13, size=rows)
    tail = rng.integers(0, 10**12, size=rows) % (10 ** (total - width))
    coded = picked * 10 ** (total - width) + tail
    random = rng.integers(10**10, 10**12, size=rows)
    return np.where(rng.random(rows) < 0.8, coded, random).astype(np.int64)


def best(run: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def dict_probe(codes: dict[str, Decimal], lengths: list[int], cld: list[str]) -> int:
    """The plain loop: longest prefix by slicing and probing a dict, wildcard last."""
    found = 0
    for number in cld:
        for length in lengths:
            if number[:length] in codes:
                found += 1
                break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--prefixes", type=int, default=50_000)
    parser.add_argument("--sample", type=int, default=100_000,
                        help="rows rated by the one-message path (extrapolated)")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    codes = prefixes(rng, args.prefixes)
    plan = tariff(rng, codes)
    cld = numbers(rng, codes, args.rows)
    week = rng.integers(0, 7 * 86_400 * 10**6, size=args.rows)
    connect = pd.DatetimeIndex(np.datetime64(START.replace(tzinfo=None), "us")
                                + week.astype("timedelta64[us]")).tz_localize("UTC")
    frames = {
        "int64 CLD, scalar at": (pd.DataFrame({"CLD": cld}), START),
        "str CLD, scalar at": (pd.DataFrame({"CLD": cld.astype(str)}), START),
        "int64 CLD, per-row connect_time (week, rate changes, off-peak)":
            (pd.DataFrame({"CLD": cld, "connect_time": connect, "length": 100}), None),
    }
    print(f"setup: {args.prefixes} prefixes ({len(plan.rates)} rates), {args.rows} numbers "
          f"in {time.perf_counter() - started:.1f} s")

    texts = [str(n) for n in cld]
    flat = {c: Decimal(0) for c in codes}
    lengths = sorted({len(c) for c in codes}, reverse=True)
    probe = args.rows / best(lambda: dict_probe(flat, lengths, texts), repeat=1)
    print(f"dict-probe loop:          {probe:>12,.0f} rows/s")

    sample = texts[: args.sample]
    single_table = RateTable(plan)
    single = len(sample) / best(lambda: [single_table.rate(n, START) for n in sample], 1)
    print(f"one-message RateTable.rate: {single:>10,.0f} rows/s "
          f"({len(sample)} rows, cold cache)  x{single / probe:.2f} of dict probe")

    started = time.perf_counter()
    table = BatchTable(plan)
    print(f"BatchTable compile:       {time.perf_counter() - started:>10.3f} s")
    for label, (frame, at) in frames.items():
        speed = args.rows / best(lambda f=frame, a=at: rate_many(f, table, at=a, unit_size=160,
                                                                time_zone="America/New_York"))
        print(f"rate_many [{label}]: {speed:>12,.0f} rows/s  x{speed / probe:.1f} of dict probe")

    check = rate_many(frames["int64 CLD, scalar at"][0].iloc[: args.sample], table, at=START)
    same = all(
        (r.rate_code if r else None) == (c if m else None)
        for r, c, m in zip((single_table.rate(n, START) for n in sample),
                           check["rate_code"], check["matched"], strict=True))
    print(f"rate_many agrees with RateTable.rate on the sample: {same}")


if __name__ == "__main__":
    main()
