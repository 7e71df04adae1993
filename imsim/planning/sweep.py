"""Sweeps: a full factorial over scenario parameters, replicated, on Dask.

```python
plan = sweep.plan("scenarios/planning.yaml",
                  ["environments[0].tariffs[1].rates[0].price=0.01,0.02",
                   "sim.proxy.workers=2,4"], replications=5)
table = sweep.run(plan, workers=2)        # or client=..., or workers=0: in this process
table.runs, table.means                   # one row per run; means with 95 % CIs
```

A factor is a path into the scenario *document* (the YAML, before validation) and
its values (YAML scalars; a missing mapping key on the way is created). Every
combination is re-validated by `imsim.model.scenario.from_document`, so a bad path or value
is a `ScenarioError` naming it before anything runs.

Seeds: ``SeedSequence(base).spawn(combinations)``, each spawned again into
``replications``: a run's seed depends only on (combination, replication) and the
base seed, not on the order runs finish in, so a sweep gives the same table in this
process or on any cluster. With ``common_random_numbers`` every combination uses the
seeds of the replications instead (variants compared on the same random traffic).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ruamel.yaml import YAML

from imsim.model import scenario as scenario_mod
from imsim.model.problems import Path_, ScenarioError, format_path
from imsim.model.scenario import Scenario
from imsim.model.settings import RecordSettings
from imsim.planning.cluster import cluster
from imsim.results import money_columns

LEAN = RecordSettings(messages="none", xdrs=False, presence=False)


@dataclass(frozen=True)
class Factor:
    """One ``--vary PATH=V1,V2,...``: where in the document, and the values to try."""

    name: str
    path: Path_
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Run:
    """One run of the sweep: a combination of factor values, a replication, a seed."""

    index: int
    combination: int
    replication: int
    seed: int
    values: tuple[Any, ...]


@dataclass
class Plan:
    """A validated sweep: the scenario of each combination and every run."""

    source: str
    factors: tuple[Factor, ...]
    scenarios: list[Scenario]
    runs: list[Run]
    until: float | None = None
    replications: int = 1


@dataclass
class Table:
    """What a sweep returns: one row per run, and per-combination means."""

    runs: pd.DataFrame
    means: pd.DataFrame
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)

    def write(self, out: str | Path) -> list[Path]:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name in ("runs", "means"):
            frame: pd.DataFrame = getattr(self, name)
            for path in (folder / f"{name}.parquet", folder / f"{name}.csv"):
                if path.suffix == ".csv":
                    frame.to_csv(path, index=False)
                else:
                    frame.to_parquet(path, index=False)
                written.append(path)
        return written


# -- factors ---------------------------------------------------------------------------

def parse_path(text: str) -> Path_:
    """``environments[0].tariffs[1].rates[0].price`` -> ('environments', 0, ...)."""
    parts: list[str | int] = []
    for chunk in text.strip().split("."):
        name, _, rest = chunk.partition("[")
        if not name and not (parts and rest):
            raise ScenarioError(f"bad path {text!r}: empty part", source="--vary",
                                fix="write keys separated by dots, indexes as [0]")
        if name:
            parts.append(name)
        for index in filter(None, ("[" + rest).split("[")) if rest else ():
            if not index.endswith("]") or not index[:-1].isdigit():
                raise ScenarioError(f"bad index in {text!r}", source="--vary",
                                    fix="write list indexes as [0], [1], ...")
            parts.append(int(index[:-1]))
    return tuple(parts)


def parse_vary(text: str) -> Factor:
    """``PATH=V1,V2,...`` (values are YAML: 0.01, true, 10m, [1, 2])."""
    path_text, sep, values_text = text.partition("=")
    if not sep or not values_text.strip():
        raise ScenarioError(f"--vary {text!r}: write PATH=V1,V2,...", source="--vary")
    values = tuple(_yaml_value(v) for v in split_values(values_text))
    return Factor(path_text.strip(), parse_path(path_text), values)


def split_values(text: str) -> list[str]:
    """Split on commas outside brackets and braces (so lists can be values)."""
    out, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += char
    return [v.strip() for v in [*out, current] if v.strip()]


def _yaml_value(text: str) -> Any:
    return YAML(typ="safe").load(io.StringIO(text))


def assign(document: Any, path: Path_, value: Any, name: str) -> None:
    """Set ``value`` at ``path`` in ``document`` (missing mapping keys are created)."""
    node = document
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = path[: depth + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or not 0 <= part < len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ScenarioError(f"--vary {name}: no item [{part}] here ({size} items)",
                                    source="--vary", path=where,
                                    fix="count list items from 0")
        elif not isinstance(node, dict):
            raise ScenarioError(f"--vary {name}: {format_path(path[:depth]) or 'the top'} "
                                "is not a mapping", source="--vary", path=where)
        elif not last and part not in node:
            node[part] = {} if isinstance(path[depth + 1], str) else []
        if last:
            node[part] = value
        else:
            node = node[part]


# -- the plan ----------------------------------------------------------------------------

def plan(source: str | Path, vary: Sequence[str | Factor], replications: int = 1,
         seed: int | None = None, until: float | None = None,
         common_random_numbers: bool = False) -> Plan:
    """Validate every combination of ``vary`` and give each run its seed."""
    if replications < 1:
        raise ScenarioError("replications must be 1 or more", source="--replications")
    if not Path(source).is_file():
        scenario_mod.load(source)  # raises the loader's own "no such file" error
    text = Path(source).read_text(encoding="utf-8")
    factors = tuple(f if isinstance(f, Factor) else parse_vary(f) for f in vary)
    combos = list(itertools.product(*(f.values for f in factors)))
    scenarios = [_variant(text, factors, combo, str(source)) for combo in combos]
    base = scenarios[0].sim.seed if seed is None else seed
    seeds = run_seeds(base, len(combos), replications, common_random_numbers)
    runs = [Run(c * replications + r, c, r, seeds[c][r], combo)
            for c, combo in enumerate(combos) for r in range(replications)]
    return Plan(str(source), factors, scenarios, runs, until, replications)


def _variant(text: str, factors: tuple[Factor, ...], combo: tuple[Any, ...],
             source: str) -> Scenario:
    changed = scenario_mod.parse_yaml(text, source)  # a fresh document, line numbers kept
    for factor, value in zip(factors, combo, strict=True):
        assign(changed, factor.path, value, factor.name)
    label = ", ".join(f"{f.name}={v}" for f, v in zip(factors, combo, strict=True))
    return scenario_mod.from_document(changed, f"{source} [{label}]" if label else source)


def run_seeds(base: int, combinations: int, replications: int,
              common: bool = False) -> list[list[int]]:
    """Per combination, per replication: a 63-bit seed from ``SeedSequence(base)``."""
    root = np.random.SeedSequence(base)
    if common:
        shared = [_seed(child) for child in root.spawn(replications)]
        return [list(shared) for _ in range(combinations)]
    return [[_seed(rep) for rep in combo.spawn(replications)]
            for combo in root.spawn(combinations)]


def _seed(sequence: np.random.SeedSequence) -> int:
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


# -- one run -----------------------------------------------------------------------------

def run_one(scenario: Scenario, seed: int, until: float | None = None) -> dict[str, Any]:
    """Simulate one run and reduce its summary to a row (no frames are kept)."""
    from imsim import sim

    lean = scenario.sim.model_copy(update={"records": LEAN})
    result = sim.run(scenario.model_copy(update={"sim": lean}), seed=seed, until=until)
    return summary_row(result.summary)


def summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The sweep's columns from a run's ``summary``."""
    row: dict[str, Any] = money_columns(summary["totals"])
    row["sent"] = summary["messages"]["sent"]
    row["delivered"] = summary["messages"]["delivered"]
    for outcome in summary["outcomes"]:
        key = f"outcome_{outcome['check']}"
        row[key] = row.get(key, 0) + outcome["messages"]
    for p in (50, 95, 99):
        value = summary["latency"][f"p{p}"]
        row[f"latency_p{p}"] = math.nan if value is None else value
    presence = summary["presence"]
    row["notify"] = presence.get("NOTIFY", 0) + presence.get("NOTIFY-initial", 0)
    proxies = [p for name, p in summary["pools"].items() if name.endswith("/proxy")]
    row["proxy_utilization"] = float(np.mean([p["utilization"] for p in proxies]))
    row["proxy_wait"] = float(np.mean([p["mean_wait"] for p in proxies]))
    return row


def _task(scenario: Scenario, item: Run, until: float | None) -> tuple[Run, dict[str, Any]]:
    try:
        return item, {"error": "", **run_one(scenario, item.seed, until)}
    except Exception as exc:  # a failed run is reported with its factors; others go on
        return item, {"error": f"{type(exc).__name__}: {exc}"}


# -- running -----------------------------------------------------------------------------

def run(plan_: Plan, workers: int = 0, scheduler: str | None = None, client: Any = None,
        progress: bool = False, report: Callable[[str], None] | None = None) -> Table:
    """Run every run of the plan: in this process (``workers=0``), on a LocalCluster of
    ``workers`` processes, on the cluster at ``scheduler``, or on a given ``client``."""
    pairs = list(_execute(plan_, workers, scheduler, client, progress))
    pairs.sort(key=lambda pair: pair[0].index)
    runs = _runs_frame(plan_, pairs)
    failed = runs[runs["error"] != ""]
    for _, row in failed.iterrows():
        where = ", ".join(f"{f.name}={row[f.name]}" for f in plan_.factors)
        (report or _stderr)(f"run {row['run']} failed ({where}, replication "
                            f"{row['replication']}, seed {row['seed']}): {row['error']}")
    return Table(runs, means(runs[runs["error"] == ""], [f.name for f in plan_.factors]),
                 failed)


def _stderr(text: str) -> None:
    print(f"imsim: {text}", file=sys.stderr)


def _execute(plan_: Plan, workers: int, scheduler: str | None, client: Any,
             progress: bool) -> Iterator[tuple[Run, dict[str, Any]]]:
    bar = _bar(len(plan_.runs), progress)
    if client is None and scheduler is None and workers == 0:
        for item in plan_.runs:
            yield _task(plan_.scenarios[item.combination], item, plan_.until)
            bar.update()
        bar.close()
        return
    with cluster(workers, scheduler, client) as dask:
        from distributed import as_completed

        scattered = dask.scatter(plan_.scenarios)
        futures = [dask.submit(_task, scattered[item.combination], item, plan_.until,
                               pure=False) for item in plan_.runs]
        for future in as_completed(futures):
            yield future.result()
            bar.update()
    bar.close()




def _bar(total: int, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="run", disable=not progress, file=sys.stderr, leave=False)


def _runs_frame(plan_: Plan, pairs: Iterable[tuple[Run, dict[str, Any]]]) -> pd.DataFrame:
    rows = []
    for item, result in pairs:
        factors = {f.name: _cell(v) for f, v in zip(plan_.factors, item.values, strict=True)}
        rows.append({**factors, "run": item.index, "combination": item.combination,
                     "replication": item.replication, "seed": item.seed, **result})
    frame = pd.DataFrame(rows)
    outcomes = [c for c in frame.columns if c.startswith("outcome_")]
    return frame.fillna({c: 0 for c in outcomes}).astype({c: "int64" for c in outcomes})


def _cell(value: Any) -> Any:
    """Factor values as table cells: scalars as they are, lists/mappings as JSON."""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value) if not isinstance(value, int | float | bool | str) else value


# -- statistics --------------------------------------------------------------------------

BOOKKEEPING = ("run", "combination", "replication", "seed")
POSITIVE_PREFIX = "latency_"


def positive_metrics(metrics: Sequence[str]) -> list[str]:
    """The metrics that are positive by nature: the latencies."""
    return [m for m in metrics if m.startswith(POSITIVE_PREFIX)]


def _log_interval(frame: pd.DataFrame, keys: list[str], metric: str, t: np.ndarray,
                  n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """exp(mean(log x) -/+ t * sd(log x) / sqrt(n)) per group; NaN unless every x > 0."""
    values = frame[metric].astype(float)
    logs = np.log(values.where(values > 0))
    by = [frame[k] for k in keys]
    usable = values.groupby(by, sort=False, dropna=False).min().to_numpy() > 0
    grouped = logs.groupby(by, sort=False, dropna=False)
    centre = grouped.mean().to_numpy()
    half = t * grouped.std(ddof=1).to_numpy() / np.sqrt(n)
    low, high = np.exp(centre - half), np.exp(centre + half)
    return np.where(usable, low, np.nan), np.where(usable, high, np.nan)


def means(runs: pd.DataFrame, factors: Sequence[str], level: float = 0.95,
          metrics: Sequence[str] | None = None,
          positive: Sequence[str] | None = None) -> pd.DataFrame:
    """Per factor combination: ``n`` runs and, per metric (default: every numeric
    column but the factors and run bookkeeping), ``_mean``, ``_ci`` (the half-width of
    the t-distribution confidence interval; NaN with one run), ``_low`` and ``_high``.

    A metric in ``positive`` (default: the latencies, `positive_metrics`) cannot be negative:
    its ``_low``/``_high`` are the t interval of the logarithms taken back (never below
    zero, wider above than below), NaN when a run's value is not above zero."""
    from scipy import stats

    if metrics is None:
        metrics = [c for c in runs.select_dtypes("number").columns
                   if c not in factors and c not in BOOKKEEPING]
    keys = list(factors) or ["_all"]
    frame = runs.assign(_all="all") if not factors else runs
    grouped = frame.groupby(keys, sort=False, dropna=False)
    out = grouped.size().rename("n").to_frame()
    n = out["n"].to_numpy()
    t = np.where(n > 1, stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)), np.nan)
    for metric in metrics:
        mean = grouped[metric].mean().to_numpy()
        half = t * grouped[metric].std(ddof=1).to_numpy() / np.sqrt(n)
        out[f"{metric}_mean"], out[f"{metric}_ci"] = mean, half
        out[f"{metric}_low"], out[f"{metric}_high"] = mean - half, mean + half
        if metric in (positive_metrics(metrics) if positive is None else positive):
            out[f"{metric}_low"], out[f"{metric}_high"] = _log_interval(frame, keys, metric,
                                                                        t, n)
    out = out.reset_index()
    return out.drop(columns="_all") if not factors else out
