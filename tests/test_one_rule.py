"""One rule, two forms: where a vectorised form stands beside the one-message form
(`imsim.rules.batch` beside `imsim.rules.rating`), they are held equal on every
boundary: period starts and ends, midnight, DST changes, unit multiples. And the
rulebook stays pure: deciding and settling import no simulator, no pandas, no lab.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from imsim.model.config import WEEKDAYS, OffPeakPeriod, Rate, Tariff
from imsim.rules.batch import BatchTable, _units, epoch_us
from imsim.rules.rating import RateTable, units_for, zone
from tests.helpers import ROOT
from tests.test_properties import MODERATE

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]
DST = [dt.datetime(2026, 3, 8, 7, tzinfo=dt.UTC), dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC),
       dt.datetime(2026, 10, 25, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC),
       dt.datetime(2026, 4, 4, 15, tzinfo=dt.UTC)]   # New York, Berlin twice, Lord Howe
CLOCKS = st.sampled_from([dt.time(0), dt.time(7), dt.time(19), dt.time(23, 59, 59),
                          dt.time(12, 30)]) | st.times()
periods = st.builds(OffPeakPeriod, days=st.lists(st.sampled_from(WEEKDAYS), min_size=1,
                                                 max_size=7, unique=True).map(tuple),
                    start=CLOCKS, end=CLOCKS)
NUDGES = [dt.timedelta(0), dt.timedelta(microseconds=1), -dt.timedelta(microseconds=1),
          dt.timedelta(minutes=30), -dt.timedelta(hours=1)]


@st.composite
def boundaries(draw, chosen: list[OffPeakPeriod], time_zone: str) -> list[dt.datetime]:
    """Moments at and next to the periods' ends, local midnights and DST changes."""
    day = draw(st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)))
    local = zone(time_zone)
    walls = [dt.datetime.combine(day, clock, local) for p in chosen for clock in
             (p.start, p.end)] + [dt.datetime.combine(day, dt.time(0), local)]
    moments = [w.astimezone(dt.UTC) for w in walls] + DST
    return [m + nudge for m in moments for nudge in NUDGES]


@MODERATE
@given(st.data(), st.lists(periods, min_size=1, max_size=3), st.sampled_from(ZONES))
def test_off_peak_is_one_rule_for_a_message_and_a_frame(data, chosen, time_zone):
    tariff = Tariff(name="T", applied_to="customer", off_peak=tuple(chosen),
                    rates=(Rate(rate_codes=("|",), price=1, off_peak_price=0),))
    moments = data.draw(boundaries(chosen, time_zone))
    one = [RateTable(tariff).is_off_peak(m, time_zone) for m in moments]
    many = BatchTable(tariff).is_off_peak(np.array([epoch_us(m) for m in moments]), time_zone)
    assert list(many) == one


@MODERATE
@given(st.integers(1, 1000), st.lists(st.integers(-2, 2), min_size=1, max_size=20),
       st.lists(st.integers(0, 5), min_size=1, max_size=20))
def test_units_are_one_rule_for_a_message_and_a_frame(unit_size, nudges, multiples):
    lengths = [max(0, k * unit_size + n) for k, n in zip(multiples, nudges, strict=False)]
    frame = pd.DataFrame({"length": lengths})
    assert list(_units(frame, unit_size)) == [units_for(n, unit_size) for n in lengths]
    assert list(_units(frame, None)) == [units_for(n, None) for n in lengths] == [1] * len(lengths)


def test_the_rulebook_imports_no_simulator_pandas_or_lab() -> None:
    code = ("import sys\n"
            "import imsim.rules.proxy, imsim.rules.rating, imsim.rules.decide\n"
            "import imsim.rules.settle, imsim.rules.ledger, imsim.rules.message\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    loaded = set(out.stdout.split())
    assert "imsim" in loaded
    assert not loaded & {"multiprocessing", "simpy", "pandas", "pyarrow", "lab", "ruamel"}
