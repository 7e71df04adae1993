"""Planning throughput: a synthetic month of 10,000,000 messages generated and rated.

Draws the messages of ``scenarios/planning/per_message.yaml`` (20,000 accounts, four
countries, 24-hour profile) with `imsim.planning.synthetic_messages`, then bills them
with `imsim.planning.rate_messages` (customer and vendor tariffs through `rate_many`,
checks, bundles) and prints rows/s of each part. A script, not a test:
``.venv/bin/python benchmarks/bench_planning.py [--messages N] [--scenario FILE]``.
Goal (issue 6): a month of >= 10,000,000 messages rated in seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from imsim import planning
from imsim.model import scenario

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--scenario", default=str(ROOT / "scenarios/planning/per_message.yaml"))
    parser.add_argument("--days", type=float, default=30.0)
    args = parser.parse_args()
    loaded = scenario.load(args.scenario)
    began = time.perf_counter()
    frame = planning.synthetic_messages(loaded, args.messages, seed=1, days=args.days)
    drawn = time.perf_counter()
    rated = planning.rate_messages(loaded, frame)
    done = time.perf_counter()
    summary = planning.summarize(rated)
    rows = len(frame)
    print(f"{loaded.name}: {rows:,} messages over {args.days:g} days")
    print(f"generate: {drawn - began:6.2f} s  {rows / (drawn - began):12,.0f} rows/s")
    print(f"rate:     {done - drawn:6.2f} s  {rows / (done - drawn):12,.0f} rows/s")
    print(f"total:    {done - began:6.2f} s  {rows / (done - began):12,.0f} rows/s")
    print(f"billed {summary['billed']:,}  revenue {summary['revenue']:,.2f}  "
          f"cost {summary['cost']:,.2f}  margin {summary['margin']:,.2f}")


if __name__ == "__main__":
    main()
