"""``imsim sweep SCENARIO --vary PATH=V1,V2,...``: a replicated full factorial on Dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from imsim.commands.run import _duration, add_engine, writable_folder
from imsim.errors import UsageError


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="run a scenario over a full factorial of parameters")
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument("--vary", action="append", default=[], metavar="PATH=V1,V2,...",
                        help="a factor: a path into the scenario and its values, e.g. "
                        "environments[0].tariffs[1].rates[0].price=0.01,0.02 (repeatable)")
    parser.add_argument("--replications", type=int, default=1, help="runs per combination")
    parser.add_argument("--workers", type=int, default=2,
                        help="LocalCluster worker processes (0: run in this process)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="an existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    parser.add_argument("--seed", type=int, help="base seed (default: sim.seed)")
    parser.add_argument("--common-random-numbers", action="store_true",
                        help="every combination uses the same seeds per replication")
    parser.add_argument("--until", help="simulated duration of each run, e.g. 10m")
    parser.add_argument("--out", default="runs/sweep",
                        help="folder for runs.parquet/csv and means.parquet/csv")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    add_engine(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imsim.planning import sweep

    if args.replications < 1 or args.workers < 0:
        raise UsageError("--replications must be 1 or more and --workers 0 or more")
    if args.seed is not None and args.seed < 0:
        raise UsageError("--seed must be 0 or more")
    until = _duration(args.until) if args.until else None
    writable_folder(args.out, "--out")
    planned = sweep.plan(args.scenario, args.vary, args.replications, args.seed, until,
                         args.common_random_numbers)
    if args.engine:
        from imsim import sim

        planned.scenarios = [sim.with_engine(s, args.engine) for s in planned.scenarios]
    table = sweep.run(planned, workers=args.workers, scheduler=args.scheduler,
                      progress=not args.quiet and sys.stderr.isatty())
    written = table.write(Path(args.out))
    if not args.quiet:
        print(summary(table, [f.name for f in planned.factors]))
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 1 if len(table.failed) else 0


def summary(table: Any, factors: list[str]) -> str:
    """Means +- 95 % half-widths, one line per combination."""
    columns = [*factors, "n"]
    frame = table.means[columns].copy()
    for metric in ("revenue", "margin", "delivered", "latency_p95"):
        mean, half = table.means[f"{metric}_mean"], table.means[f"{metric}_ci"]
        frame[metric] = [f"{m:.4g} ± {h:.2g}" if h == h else f"{m:.4g}"
                         for m, h in zip(mean, half, strict=True)]
    return frame.to_string(index=False)
