"""`imsim.plots`: every function returns a Figure with its data drawn (Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from imsim import plots, scenario, sim, sweep  # noqa: E402
from tests.helpers import ROOT  # noqa: E402


@pytest.fixture(scope="module")
def result() -> sim.RunResult:
    return sim.run(scenario.load(ROOT / "scenarios" / "planning.yaml"), until=120)


def test_run_plots(result: sim.RunResult) -> None:
    loaded = scenario.load(ROOT / "scenarios" / "planning.yaml")
    figures = [plots.revenue_by_destination(result), plots.outcomes(result),
               plots.outcomes(result.messages), plots.latency_cdf({"a": result}),
               plots.notify_load(result, loaded.start, "1min"),
               plots.proxy_utilization(result)]
    for fig in figures:
        assert isinstance(fig, Figure) and fig.axes[0].get_title()
        assert fig.axes[0].has_data()


def test_sweep_plots() -> None:
    runs = pd.DataFrame({"variant": ["a", "a", "b", "b"], "revenue": [1.0, 2, 3, 4],
                         "cost": [0.5, 0.5, 1, 1], "margin": [0.5, 1.5, 2, 3],
                         "load": [1, 1, 2, 2]})
    means = sweep.means(runs, ["variant"])
    fig = plots.money_by_variant(means, "variant", "USD")
    assert len(fig.axes[0].patches) == 6
    by_load = sweep.means(runs, ["load"])
    assert plots.metric_by_factor(by_load, "load", "revenue").axes[0].has_data()
