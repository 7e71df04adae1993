"""`imsim.planning.plots`: every figure says what it shows: title, axis labels, tick labels,
legend entries, and bands that stay within the quantity's range (Agg backend)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from imsim import sim  # noqa: E402
from imsim.model import scenario
from imsim.planning import plots, sweep
from tests.helpers import ROOT  # noqa: E402


@pytest.fixture(scope="module")
def result() -> sim.RunResult:
    return sim.run(scenario.load(ROOT / "scenarios" / "planning.yaml"), until=120)


def ticks(axis) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for t in axis.get_ticklabels()]


def legend(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def band_y(fig: Figure, index: int = 0) -> np.ndarray:
    return fig.axes[0].collections[index].get_paths()[0].vertices[:, 1]


MESSAGES = pd.DataFrame({"code": [200, 200, 200, 403, 403, 480],
                         "check": ["delivered"] * 3 + ["product"] * 2 + ["registration"]})


def test_outcomes_bars_are_named_by_sip_answer_and_check() -> None:
    fig = plots.outcomes(MESSAGES)
    ax = fig.axes[0]
    assert ticks(ax.yaxis) == ["480 registration", "403 product", "200 delivered"]
    assert [p.get_width() for p in ax.patches] == [1, 2, 3]
    assert ax.get_title() == "Outcomes: messages by SIP answer and deciding check"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("messages", "SIP answer and check")


def test_outcomes_of_a_run_summary_and_of_a_planning_month() -> None:
    run = {"outcomes": [{"env": "a", "code": 200, "check": "delivered", "messages": 5},
                        {"env": "b", "code": 200, "check": "delivered", "messages": 2},
                        {"env": "a", "code": 404, "check": "recipient", "messages": 1}]}
    assert ticks(plots.outcomes(run).axes[0].yaxis) == ["404 recipient", "200 delivered"]
    month = {"messages": 10, "outcomes": {"delivered": 7, "vendor_rate": 3},
             "refusals": [{"code": 403, "check": "vendor_rate", "step": 4, "messages": 3}]}
    ax = plots.outcomes(month).axes[0]
    assert ticks(ax.yaxis) == ["403 vendor_rate", "200 delivered"]
    assert [p.get_width() for p in ax.patches] == [3, 7]


def test_outcomes_of_a_simulator_run_name_every_bar(result: sim.RunResult) -> None:
    expected = {f"{code} {check}" for code, check in
                zip(result.messages["code"], result.messages["check"], strict=True)}
    for source in (result, result.messages):
        assert set(ticks(plots.outcomes(source).axes[0].yaxis)) == expected


def test_money_by_variant_labels_bars_legend_and_error_bars() -> None:
    runs = pd.DataFrame({"variant": ["a", "a", "b", "b"], "revenue": [1.0, 3, 3, 5],
                         "cost": [0.5, 0.5, 1, 1], "margin": [0.5, 2.5, 2, 4]})
    fig = plots.money_by_variant(sweep.means(runs, ["variant"]), "variant", "USD")
    ax = fig.axes[0]
    assert ax.get_title() == "Revenue, cost and margin by variant (95 % CI, n = 2 runs per point)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("variant", "amount per run USD")
    assert ticks(ax.xaxis) == ["a", "b"]
    assert legend(fig) == ["revenue", "cost", "margin"]
    assert [p.get_height() for p in ax.patches] == [2, 4, 0.5, 1, 1.5, 3]


def test_metric_by_factor_says_n_and_names_each_line() -> None:
    runs = pd.DataFrame({"load": [1, 1, 2, 2] * 2, "workers": [1] * 4 + [2] * 4,
                         "revenue": [1.0, 2, 3, 4, 2, 3, 4, 5]})
    fig = plots.metric_by_factor(sweep.means(runs, ["load", "workers"]), "load", "revenue",
                                 "revenue (USD)", group="workers")
    ax = fig.axes[0]
    assert ax.get_title() == "revenue (USD) against load (95 % interval, n = 2 runs per point)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("load", "revenue (USD)")
    assert legend(fig) == ["workers=1", "workers=2"]
    # t interval of (1, 2): 1.5 -/+ 12.706 * 0.7071 / sqrt(2)
    assert band_y(fig).min() == pytest.approx(1.5 - 12.7062 * 0.5, abs=1e-3)


def test_latency_band_never_goes_below_zero() -> None:
    """Two replications of a p95 latency, 0.01 s and 2 s: the t interval reaches -11 s;
    the band drawn is the log-scale one, above zero."""
    runs = pd.DataFrame({"load": [1, 1, 2, 2], "latency_p95": [0.01, 2.0, 0.5, 0.7]})
    means = sweep.means(runs, ["load"])
    assert means["latency_p95_mean"][0] - means["latency_p95_ci"][0] < -10
    fig = plots.metric_by_factor(means, "load", "latency_p95", "p95 latency (s)")
    low = band_y(fig).min()
    # geometric mean sqrt(0.02), log sd ln(200) / sqrt(2), half-width t * sd / sqrt(2)
    assert 0 < low == pytest.approx(math.exp(math.log(0.02) / 2 - 12.7062 * math.log(200) / 2),
                                    rel=1e-3)


def test_revenue_by_destination_bars_are_rate_codes() -> None:
    xdrs = pd.DataFrame({"rate_code": ["1", "44", "1", "55"], "charged_amount": [0.5, 2, 1, 0],
                         "direction": ["outgoing", "outgoing", "outgoing", "vendor"]})
    fig = plots.revenue_by_destination(xdrs)
    ax = fig.axes[0]
    assert ax.get_title() == "Revenue by destination"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("rate code", "revenue")
    assert ticks(ax.xaxis) == ["44", "1"]
    assert [p.get_height() for p in ax.patches] == [2, 1.5]


def test_latency_cdf_one_curve_per_run_on_a_log_axis(result: sim.RunResult) -> None:
    fig = plots.latency_cdf({"a": result, "b": result.messages})
    ax = fig.axes[0]
    assert legend(fig) == ["a", "b"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("latency (s)", "share of delivered messages")
    assert ax.get_xscale() == "log" and ax.get_ylim() == (0, 1.01)
    assert ax.lines[0].get_ydata()[-1] == 1.0


def test_presence_and_utilization_plots(result: sim.RunResult) -> None:
    loaded = scenario.load(ROOT / "scenarios" / "planning.yaml")
    notify = plots.notify_load(result, loaded.start, "1min").axes[0]
    assert notify.get_title() == "Presence NOTIFY load"
    assert (notify.get_xlabel(), notify.get_ylabel()) == ("time", "NOTIFYs per 1min")
    assert notify.lines[0].get_ydata().sum() == (result.presence["event"] == "NOTIFY").sum()
    fig = plots.proxy_utilization(result)
    envs = sorted(result.utilization["env"].unique())
    assert legend(fig) == [f"{e}: {what}" for e in envs for what in ("busy workers", "queued")]
    assert fig.axes[0].get_ylabel() == "transactions"
