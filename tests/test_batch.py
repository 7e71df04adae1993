"""`rate_many` rates a DataFrame with exactly the rules of `RateTable.rate`."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from imsim.model.config import OffPeakPeriod, Rate, Tariff
from imsim.model.scenario import load
from imsim.rules.batch import COLUMNS, MICRO, BatchTable, rate_many
from imsim.rules.rating import RateTable
from tests.helpers import HANDBOOK

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)  # a Monday
NY = "America/New_York"


def tariff(*rates, off_peak=(), currency="USD"):
    return Tariff(name="B", applied_to="customer", rates=rates, off_peak=off_peak,
                  currency=currency)


def rate(codes, price, **extra):
    return Rate(rate_codes=codes, price=Decimal(str(price)), **extra)


def one_by_one(frame, plan, *, unit_size=None, time_zone="UTC", at=None):
    """The one-message path over a frame, in `rate_many`'s columns (the reference)."""
    table = RateTable(plan)
    rows = []
    lengths = frame["length"] if "length" in frame else [0] * len(frame)
    times = [at] * len(frame) if at is not None else frame["connect_time"]
    for cld, length, when in zip(frame["CLD"], lengths, times, strict=True):
        hit = table.rate(str(cld), when.to_pydatetime() if isinstance(when, pd.Timestamp)
                         else when, int(length), unit_size, time_zone)
        rows.append(None if hit is None else hit)
    return rows


def assert_agrees(frame, plan, **kw):
    """Every row of rate_many equals RateTable.rate, money to the micro-unit."""
    got = rate_many(frame, plan, **kw)
    assert list(got.columns) == list(COLUMNS)
    assert got.index.equals(frame.index)
    for (_, row), want in zip(got.iterrows(), one_by_one(frame, plan, **kw), strict=True):
        if want is None:
            assert not row.matched and pd.isna(row.rate_code) and row.units == 0
            assert row.charged_amount_micro == 0 and np.isnan(row.charged_amount)
            continue
        assert row.matched
        assert (row.rate_code, row.units, row.off_peak, row.forbidden, row.currency) == (
            want.rate_code, want.units, want.off_peak, want.forbidden, want.currency)
        assert Decimal(int(row.unit_price_micro)) / MICRO == want.unit_price
        assert Decimal(int(row.charged_amount_micro)) / MICRO == want.amount
        assert row.unit_price == float(want.unit_price)
        assert row.charged_amount == float(want.amount)
    return got


def handbook_tariff_b():
    return load(HANDBOOK).environments[0].tariff("tariff B")


def test_handbook_tariff_longest_prefix_and_wildcard():
    frame = pd.DataFrame({"CLD": ["15551230002", "12125550000", "447700900123", "33123456789"]})
    monday_noon_ny = T0 + dt.timedelta(hours=8)   # peak
    got = assert_agrees(frame, handbook_tariff_b(), at=monday_noon_ny, time_zone=NY)
    assert got.rate_code.tolist() == ["1555", "1", "44", "|"]
    assert got.charged_amount_micro.tolist() == [10_000, 20_000, 50_000, 100_000]
    assert got.charged_amount.tolist() == [0.01, 0.02, 0.05, 0.10]


def test_off_peak_per_row_in_the_customer_time_zone():
    monday_noon_ny = T0 + dt.timedelta(hours=8)
    monday_8pm_ny = T0 + dt.timedelta(hours=16)  # 01:00 UTC Tuesday
    monday_4am_ny = T0   # 09:00 UTC: Monday in hr{7pm-6am}, as PortaBilling reads it
    frame = pd.DataFrame({"CLD": ["12125550000", "12125550000", "15551230002", "12125550000"],
                          "connect_time": pd.to_datetime([monday_noon_ny, monday_8pm_ny,
                                                          monday_8pm_ny, monday_4am_ny])})
    got = assert_agrees(frame, handbook_tariff_b(), time_zone=NY)
    assert got.off_peak.tolist() == [False, True, False, True]   # 1555: no off-peak price
    assert got.unit_price.tolist() == [0.02, 0.01, 0.01, 0.01]


def test_off_peak_with_a_scalar_time():
    saturday = T0 + dt.timedelta(days=5)
    got = assert_agrees(pd.DataFrame({"CLD": [12125550000]}), handbook_tariff_b(), at=saturday)
    assert got.off_peak.tolist() == [True]


def test_latest_effective_rate_and_fallback_to_a_shorter_code():
    plan = tariff(rate(["4"], 1),
                  rate(["44"], 2, effective_from=T0 - dt.timedelta(days=1)),
                  rate(["44"], 3, effective_from=T0 + dt.timedelta(days=1)),
                  rate(["447"], 7, effective_from=T0 + dt.timedelta(hours=1)))
    times = [T0 - dt.timedelta(days=2), T0, T0 + dt.timedelta(hours=2), T0 + dt.timedelta(days=2)]
    frame = pd.DataFrame({"CLD": ["447700900123"] * 4, "connect_time": pd.to_datetime(times)})
    got = assert_agrees(frame, plan)
    assert got.rate_code.tolist() == ["4", "44", "447", "447"]
    assert got.unit_price.tolist() == [1.0, 2.0, 7.0, 7.0]
    late = pd.DataFrame({"CLD": ["441234567890"] * 4, "connect_time": pd.to_datetime(times)})
    assert assert_agrees(late, plan).unit_price.tolist() == [1.0, 2.0, 2.0, 3.0]


def test_nothing_in_effect_and_no_wildcard_is_no_match():
    plan = tariff(rate(["44"], 2, effective_from=T0))
    got = assert_agrees(pd.DataFrame({"CLD": ["441234567890"]}), plan,
                        at=T0 - dt.timedelta(seconds=1))
    assert got.matched.tolist() == [False]


def test_forbidden_rates_are_flagged_and_rated():
    plan = tariff(rate(["44"], 2, status="forbidden"), rate(["|"], 1))
    got = assert_agrees(pd.DataFrame({"CLD": ["441234567890", "33123456789"]}), plan, at=T0)
    assert got.forbidden.tolist() == [True, False]
    assert got.matched.tolist() == [True, True]


def test_wildcard_only_table():
    plan = tariff(rate(["|"], "0.001"))
    got = assert_agrees(pd.DataFrame({"CLD": [15551230002, 441234567890]}), plan, at=T0)
    assert got.rate_code.tolist() == ["|", "|"]


def test_no_match_without_wildcard():
    plan = tariff(rate(["44"], 2))
    got = assert_agrees(pd.DataFrame({"CLD": ["15551230002", "441234567890"]}), plan, at=T0)
    assert got.matched.tolist() == [False, True]
    assert got.charged_amount.sum() == 2.0


def test_units_from_length_and_unit_size():
    plan = tariff(rate(["1"], "0.015"))
    frame = pd.DataFrame({"CLD": ["15551230002"] * 4, "length": [0, 160, 161, 500]})
    got = assert_agrees(frame, plan, at=T0, unit_size=160)
    assert got.units.tolist() == [1, 1, 2, 4]
    assert got.charged_amount_micro.tolist() == [15_000, 15_000, 30_000, 60_000]
    assert assert_agrees(frame, plan, at=T0).units.tolist() == [1, 1, 1, 1]


def test_str_and_int_numbers_and_odd_strings_follow_the_same_rules():
    plan = tariff(rate(["044"], 4), rate(["44"], 2), rate(["1234567890123456789"], 9),
                  rate(["|"], 1))
    texts = ["0441234", "441234", "12345678901234567890", "", "12a", "+441234"]
    got = assert_agrees(pd.DataFrame({"CLD": texts}, index=list("abcdef")), plan, at=T0)
    assert got.rate_code.tolist() == ["044", "44", "1234567890123456789", "|", "|", "|"]
    ints = rate_many(pd.DataFrame({"CLD": [441234, 10**18 + 5]}), plan, at=T0)
    assert ints.rate_code.tolist() == ["44", "|"]


def test_missing_number_never_matches():
    plan = tariff(rate(["|"], 1))
    got = rate_many(pd.DataFrame({"CLD": ["441234", None]}), plan, at=T0)
    assert got.matched.tolist() == [True, False]


def test_money_is_exact_in_micro_units():
    plan = tariff(rate(["1"], "0.000001"), rate(["2"], "123456.789012"))
    frame = pd.DataFrame({"CLD": ["15551230002", "25551230002"], "length": [1000, 7]})
    got = assert_agrees(frame, plan, at=T0, unit_size=1)
    assert got.charged_amount_micro.tolist() == [1000, 864197523084]


def test_empty_frame():
    got = rate_many(pd.DataFrame({"CLD": pd.Series([], dtype="int64")}),
                    tariff(rate(["1"], 1)), at=T0)
    assert list(got.columns) == list(COLUMNS) and len(got) == 0


def test_a_time_is_required_and_must_be_aware():
    plan = tariff(rate(["1"], 1))
    with pytest.raises(ValueError, match="connect_time"):
        rate_many(pd.DataFrame({"CLD": ["1"]}), plan)
    naive = pd.DataFrame({"CLD": ["1"], "connect_time": [dt.datetime(2026, 1, 1)]})
    with pytest.raises(ValueError, match="tz-aware"):
        rate_many(naive, plan)


def test_compiled_table_is_reusable():
    plan = handbook_tariff_b()
    table = BatchTable(plan)
    frame = pd.DataFrame({"CLD": ["447700900123"]})
    assert rate_many(frame, table, at=T0).equals(rate_many(frame, plan, at=T0))


def test_random_frame_against_the_one_message_path():
    rng = np.random.default_rng(7)
    codes = sorted({str(rng.integers(1, 10 ** int(rng.integers(1, 5)))) for _ in range(60)})
    rates = [rate([c], Decimal(int(rng.integers(0, 10**6))).scaleb(-6),
                  off_peak_price="0.001" if i % 3 == 0 else None,
                  status="forbidden" if i % 11 == 0 else "normal",
                  effective_from=T0 + dt.timedelta(hours=int(rng.integers(-48, 48)))
                  if i % 4 == 0 else None)
             for i, c in enumerate(codes)]
    plan = tariff(*rates, rate(["|"], "0.5"),
                  off_peak=(OffPeakPeriod(days=("mon", "tue"), start=dt.time(19),
                                          end=dt.time(7)),))
    numbers = rng.integers(10**5, 10**12, size=300)
    times = pd.to_datetime(T0) + pd.to_timedelta(rng.integers(-3 * 86400, 3 * 86400, 300),
                                                 unit="s")
    frame = pd.DataFrame({"CLD": numbers, "connect_time": times,
                          "length": rng.integers(0, 400, 300)})
    assert_agrees(frame, plan, unit_size=70, time_zone="Europe/Berlin")
