"""`imsim.planning.sweep` and ``imsim sweep``: factors, seeds, sequential == parallel on Dask,
failures, confidence intervals, and the direction of change of the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from imsim.cli import main
from imsim.model.scenario import ScenarioError
from imsim.planning import sweep
from tests.helpers import ROOT

PLANNING = ROOT / "scenarios" / "planning.yaml"
PRICE = "environments[0].tariffs[1].rates[0].price"
SHORT = 60.0


@pytest.fixture(scope="module")
def cluster() -> Any:
    """One LocalCluster (2 processes, 1 thread each, loopback) for every test here."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster: Any) -> Any:
    from distributed import Client

    with Client(cluster) as connected:
        yield connected


def test_paths_and_values() -> None:
    assert sweep.parse_path("environments[0].tariffs[1].rates[0].price") == (
        "environments", 0, "tariffs", 1, "rates", 0, "price")
    factor = sweep.parse_vary("traffic.profile=[1, 2],[3, 4] ")
    assert factor.values == ([1, 2], [3, 4])
    assert sweep.parse_vary("sim.until=10m,1h").values == ("10m", "1h")
    assert sweep.parse_vary(f"{PRICE}=0.01,0.02").values == (0.01, 0.02)


def test_seeds_depend_only_on_combination_and_replication() -> None:
    few, more = sweep.run_seeds(7, 2, 2), sweep.run_seeds(7, 3, 5)
    assert [row[:2] for row in more[:2]] == few
    assert len({s for row in more for s in row}) == 15
    common = sweep.run_seeds(7, 3, 2, common=True)
    assert common[0] == common[1] == common[2]


def test_every_combination_is_validated_with_its_values() -> None:
    planned = sweep.plan(PLANNING, [f"{PRICE}=0.01,0.03", "sim.proxy.workers=1,2,3"],
                         replications=2)
    assert len(planned.scenarios) == 6 and len(planned.runs) == 12
    last = planned.scenarios[-1]
    assert (str(last.environments[0].tariffs[1].rates[0].price), last.sim.proxy.workers) == (
        "0.03", 3)


@pytest.mark.parametrize("vary, where", [
    ("environments[3].name=x", "environments[3]"),
    ("sim.proxi.workers=2", "sim.proxi"),
    ("sim.proxy.workers=0,2", "sim.proxy.workers"),
    ("traffic.poisson.rate_per_hour", "PATH=V1"),
])
def test_bad_vary_is_a_scenario_error_naming_it(vary: str, where: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ScenarioError, match=where.replace("[", r"\[").replace("]", r"\]")):
        sweep.plan(PLANNING, [vary])
    assert main(["sweep", str(PLANNING), "--vary", vary, "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and where in err


def test_sequential_equals_parallel_and_scheduler_address(client: Any, cluster: Any,
                                                          tmp_path: Path) -> None:
    planned = sweep.plan(PLANNING, [f"{PRICE}=0.01,0.02"], replications=2, until=SHORT)
    alone = sweep.run(planned, workers=0)
    assert alone.runs.equals(sweep.run(planned, client=client).runs)
    assert main(["sweep", str(PLANNING), "--vary", f"{PRICE}=0.01,0.02", "--replications",
                 "2", "--until", "1m", "--scheduler", cluster.scheduler_address,
                 "--out", str(tmp_path), "--quiet"]) == 0
    written = pd.read_parquet(tmp_path / "runs.parquet")
    assert written.equals(alone.runs)
    assert pd.read_csv(tmp_path / "means.csv")["n"].tolist() == [2, 2]


def test_a_failed_run_is_reported_and_the_others_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    planned = sweep.plan(PLANNING, ["sim.proxy.workers=1,2"], until=SHORT)
    real = sweep.run_one

    def flaky(scenario: Any, seed: int, until: float | None = None) -> dict[str, Any]:
        if scenario.sim.proxy.workers == 2:
            raise RuntimeError("worker lost")
        return real(scenario, seed, until)

    monkeypatch.setattr(sweep, "run_one", flaky)
    lines: list[str] = []
    table = sweep.run(planned, report=lines.append)
    assert table.runs["error"].tolist() == ["", "RuntimeError: worker lost"]
    assert table.means["sim.proxy.workers"].tolist() == [1]
    assert len(lines) == 1 and "sim.proxy.workers=2" in lines[0] and "worker lost" in lines[0]


def test_confidence_intervals_narrow_with_more_replications(client: Any) -> None:
    few = sweep.run(sweep.plan(PLANNING, [], replications=3, until=SHORT), client=client)
    many = sweep.run(sweep.plan(PLANNING, [], replications=12, until=SHORT), client=client)
    assert many.means["revenue_ci"].iloc[0] < few.means["revenue_ci"].iloc[0]
    low, high = many.means["revenue_low"].iloc[0], many.means["revenue_high"].iloc[0]
    assert low < many.runs["revenue"].mean() < high


def test_without_elasticity_a_higher_price_raises_revenue(client: Any) -> None:
    planned = sweep.plan(PLANNING, ["traffic.elasticity.coefficient=0", f"{PRICE}=0.01,0.02"],
                         replications=3, until=SHORT, common_random_numbers=True)
    runs = sweep.run(planned, client=client).runs
    revenue = runs.pivot(index="replication", columns=PRICE, values="revenue")
    assert (revenue[0.02] > revenue[0.01]).all()
    delivered = runs.pivot(index="replication", columns=PRICE, values="delivered")
    assert (delivered[0.02] == delivered[0.01]).all()  # same traffic, only the price moved


def test_more_proxy_workers_lower_latency(client: Any) -> None:
    planned = sweep.plan(PLANNING, ["sim.proxy.service.MESSAGE=0.02", "sim.proxy.workers=1,4"],
                         replications=2, until=SHORT, common_random_numbers=True)
    means = sweep.run(planned, client=client).means.set_index("sim.proxy.workers")
    assert means.loc[4, "latency_p95_mean"] < means.loc[1, "latency_p95_mean"]
    assert means.loc[4, "proxy_wait_mean"] < means.loc[1, "proxy_wait_mean"]
