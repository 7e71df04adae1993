"""``imsim run SCENARIO``: simulate, print a summary table, write the frames."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from imsim.errors import UsageError
from imsim.model import scenario
from imsim.model.units import parse_duration


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="simulate a scenario and write its results")
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument("--seed", type=int, help="random seed (default: sim.seed)")
    parser.add_argument("--until", help="simulated duration, e.g. 3600, 90s, 2h")
    parser.add_argument("--out", help="write xdrs, messages, presence, sip, utilization and "
                        "summary.json into this folder")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help="file format of the frames (default csv)")
    parser.add_argument("--quiet", action="store_true", help="no table, no progress bar")
    add_engine(parser)
    parser.set_defaults(handler=run)


def add_engine(parser: Any) -> None:
    """``--engine fast|simpy`` (default: the scenario's ``sim.engine``, else fast)."""
    parser.add_argument("--engine", choices=("fast", "simpy"),
                        help="the simulator engine: fast (compiled, for large runs) or "
                        "simpy (the reference model) (default: sim.engine, else fast)")


def run(args: argparse.Namespace) -> int:
    from imsim import sim

    loaded = scenario.load(args.scenario)
    until = _duration(args.until) if args.until else None
    if args.seed is not None and args.seed < 0:
        raise UsageError("--seed must be 0 or more")
    if args.out:
        writable_folder(args.out, "--out")
    try:
        world = sim.world(loaded, args.seed, until, engine=args.engine)
    except sim.UntilRequired as exc:
        raise UsageError(str(exc)) from None
    result = _with_progress(world, args.quiet)
    if args.out:
        result.write(Path(args.out), args.format)
    if not args.quiet:
        print(table(result.summary))
    return 0


def writable_folder(path: str, flag: str) -> Path:
    """Create ``path`` (and its parents) before any work, or a UsageError: a run never
    finds out at the end that it cannot write its results."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".imsim-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write there ({exc.strerror})") from None
    return folder


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--until {text!r}: {exc}") from None
    if seconds <= 0:
        raise UsageError("--until must be longer than 0")
    return seconds


def _with_progress(world: Any, quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return world.run()
    from tqdm import tqdm

    with tqdm(total=round(world.until), unit="sim s", leave=False, file=sys.stderr) as bar:
        def step(now: float) -> None:
            bar.update(round(now) - bar.n)
        return world.run(step)


def table(summary: dict[str, Any]) -> str:
    """The summary as a few aligned lines for the terminal."""
    counts = summary["messages"]
    lines = [f"{summary['scenario']}: seed {summary['seed']}, {summary['until']:g} s simulated "
             f"in {summary['runtime_s']:.2f} s",
             f"messages: {counts['sent']} sent, {counts['delivered']} delivered, "
             f"{counts['in_flight']} in flight", "", f"{'env':<12}{'code':>5}  {'check':<20}"
             f"{'messages':>10}"]
    for row in summary["outcomes"]:
        lines.append(f"{row['env']:<12}{row['code']:>5}  {row['check']:<20}{row['messages']:>10}")
    lines += ["", f"{'env':<12}{'direction':<10}{'tariff':<16}{'rate code':<10}{'xdrs':>8}"
              f"{'amount':>14}"]
    for row in summary["money"]:
        lines.append(f"{row['env']:<12}{row['direction']:<10}{row['tariff']:<16}"
                     f"{row['rate_code']:<10}{row['xdrs']:>8}{row['amount']:>10} "
                     f"{row['currency']}")
    latency = summary["latency"]
    if latency["p50"] is not None:
        lines += ["", f"latency (s): p50 {latency['p50']:g}  p95 {latency['p95']:g}  "
                  f"p99 {latency['p99']:g}  max {latency['max']:g}"]
    presence = summary["presence"]
    lines.append(f"presence: {presence.get('PUBLISH', 0)} PUBLISH, "
                 f"{presence.get('NOTIFY', 0)} NOTIFY on change, "
                 f"{presence.get('NOTIFY-initial', 0)} initial NOTIFY")
    return "\n".join(lines)
