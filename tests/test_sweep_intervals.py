"""`sweep.means`: intervals that respect their quantity. A latency cannot be negative, so
its ``_low``/``_high`` are the t interval of the logs taken back; money keeps the t
interval (a margin may be negative)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from imsim.planning import sweep

T_1 = 12.7062  # t(0.975, 1 degree of freedom)
RUNS = pd.DataFrame({"w": [1, 1], "latency_p95": [0.1, 0.4], "margin": [-1.0, 3.0]})


def test_latency_interval_is_log_scale_by_default() -> None:
    row = sweep.means(RUNS, ["w"]).iloc[0]
    centre, half = math.log(0.2), T_1 * (math.log(4) / math.sqrt(2)) / math.sqrt(2)
    assert row["latency_p95_low"] == pytest.approx(math.exp(centre - half), rel=1e-4)
    assert row["latency_p95_high"] == pytest.approx(math.exp(centre + half), rel=1e-4)
    assert row["latency_p95_mean"] == pytest.approx(0.25)
    assert row["latency_p95_ci"] == pytest.approx(T_1 * 0.15, rel=1e-4)  # unchanged


def test_money_keeps_the_t_interval() -> None:
    row = sweep.means(RUNS, ["w"]).iloc[0]
    assert row["margin_low"] == pytest.approx(1.0 - T_1 * 2.0, rel=1e-4)


def test_positive_names_the_metrics_explicitly() -> None:
    row = sweep.means(RUNS, ["w"], positive=[]).iloc[0]
    assert row["latency_p95_low"] == pytest.approx(0.25 - T_1 * 0.15, rel=1e-4)
    row = sweep.means(RUNS.assign(margin=[1.0, 3.0]), ["w"], positive=["margin"]).iloc[0]
    assert row["margin_low"] > 0


def test_a_value_not_above_zero_gives_no_log_interval() -> None:
    row = sweep.means(RUNS.assign(latency_p95=[0.0, 0.4]), ["w"]).iloc[0]
    assert math.isnan(row["latency_p95_low"]) and math.isnan(row["latency_p95_high"])
