import datetime as dt
from decimal import Decimal

import pytest

from imsim.model.config import OffPeakPeriod, Rate, Tariff
from imsim.rules.rating import RateTable, units_for

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)  # a Monday


def table(*rates, off_peak=()):
    return RateTable(Tariff(name="B", applied_to="customer", rates=rates, off_peak=off_peak))


def rate(codes, price, **extra):
    return Rate(rate_codes=codes, price=Decimal(str(price)), **extra)


def test_longest_matching_prefix_wins():
    rt = table(rate(["4"], 1), rate(["44"], 2), rate(["447"], 3), rate(["|"], 9))
    assert rt.rate("447700900123", T0).rate_code == "447"
    assert rt.rate("441234567890", T0).rate_code == "44"
    assert rt.rate("491234567890", T0).rate_code == "4"


def test_wildcard_only_when_nothing_else_matches():
    rt = table(rate(["44"], 2), rate(["|"], 9))
    assert rt.rate("15551230002", T0).rate_code == "|"
    assert rt.rate("441234567890", T0).rate_code == "44"


def test_no_match_without_wildcard():
    assert table(rate(["44"], 2)).rate("15551230002", T0) is None


def test_latest_effective_rate_in_effect_wins():
    rt = table(rate(["44"], 1, effective_from=T0 - dt.timedelta(days=30)),
               rate(["44"], 2, effective_from=T0 - dt.timedelta(days=1)),
               rate(["44"], 3, effective_from=T0 + dt.timedelta(days=1)))
    assert rt.rate("441234567890", T0).unit_price == Decimal(2)
    assert rt.rate("441234567890", T0 + dt.timedelta(days=2)).unit_price == Decimal(3)


def test_code_not_yet_in_effect_falls_back_to_shorter_code():
    rt = table(rate(["4"], 1), rate(["44"], 2, effective_from=T0 + dt.timedelta(hours=1)))
    assert rt.rate("441234567890", T0).rate_code == "4"
    assert rt.rate("441234567890", T0 + dt.timedelta(hours=1)).rate_code == "44"


def test_off_peak_price_in_the_customer_time_zone():
    evenings = OffPeakPeriod(days=("mon", "tue", "wed", "thu", "fri"),
                             start=dt.time(19), end=dt.time(7))
    rt = table(rate(["1"], "0.02", off_peak_price="0.01"), off_peak=(evenings,))
    # 09:00 UTC Monday is 04:00 Monday in New York: a weekday, before 07:00 -> off-peak, as
    # PortaBilling reads wd{mo-fr} hr{7pm-6am} (each part against the moment itself)
    assert rt.rate("15551230002", T0, time_zone="America/New_York").off_peak is True
    # Saturday 04:00 in New York: not a weekday -> peak (the night is not Friday's)
    saturday = T0 + dt.timedelta(days=5)
    assert rt.rate("15551230002", saturday, time_zone="America/New_York").off_peak is False
    # 01:00 UTC Tuesday is 20:00 Monday in New York -> off-peak.
    tuesday_1am = T0 + dt.timedelta(hours=16)
    hit = rt.rate("15551230002", tuesday_1am, time_zone="America/New_York")
    assert (hit.off_peak, hit.unit_price) == (True, Decimal("0.01"))
    # The same instant in London is Tuesday 01:00, inside Monday's 19:00-07:00 period.
    assert rt.rate("15551230002", tuesday_1am, time_zone="Europe/London").off_peak is True
    # Tuesday 12:00 London is peak.
    assert rt.rate("15551230002", T0 + dt.timedelta(days=1, hours=3),
                   time_zone="Europe/London").off_peak is False


def test_whole_days_off_peak():
    weekend = OffPeakPeriod(days=("sat", "sun"))
    rt = table(rate(["1"], 2, off_peak_price=1), off_peak=(weekend,))
    saturday = T0 + dt.timedelta(days=5)
    assert rt.rate("15551230002", saturday).unit_price == Decimal(1)
    assert rt.rate("15551230002", T0).unit_price == Decimal(2)


def test_off_peak_without_off_peak_price_keeps_the_price():
    rt = table(rate(["1"], 2), off_peak=(OffPeakPeriod(),))
    hit = rt.rate("15551230002", T0)
    assert (hit.off_peak, hit.unit_price) == (False, Decimal(2))


def test_forbidden_rate_is_flagged():
    rt = table(rate(["1900"], 0, status="forbidden"), rate(["1"], 1))
    assert rt.rate("19005550100", T0).forbidden is True
    assert rt.rate("15551230002", T0).forbidden is False


@pytest.mark.parametrize(("length", "size", "units"), [
    (0, None, 1), (500, None, 1), (0, 160, 1), (1, 160, 1), (160, 160, 1), (161, 160, 2),
    (480, 160, 3)])
def test_units(length, size, units):
    assert units_for(length, size) == units


def test_amount_is_units_times_price_in_tariff_currency():
    rt = RateTable(Tariff(name="B", applied_to="customer", currency="EUR",
                          rates=(rate(["|"], "0.015"),)))
    hit = rt.rate("15551230002", T0, length=321, unit_size=160)
    assert (hit.units, hit.amount, hit.currency) == (3, Decimal("0.045"), "EUR")
