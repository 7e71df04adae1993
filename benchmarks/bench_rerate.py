"""Re-rating throughput: N synthetic xDRs as Parquet, two variants, 1 and 2 workers.

Writes N outgoing xDR rows of ``scenarios/planning/per_message.yaml`` (drawn by
`imsim.planning.synthetic_messages`, billed by `imsim.planning.rate_messages`, in
imsim's xDR names) as Parquet files of ``--chunk`` rows, then re-rates them with
`imsim.planning.rerate.run` under two variants (the base and a dearer UK/DE retail rate) on a
LocalCluster of 1 and of 2 worker processes. Prints the disk and memory it used,
the host (2 shared cores here: wall rates move with the other load; the rate per
worker CPU-second does not),
rows/s per worker and per variant, the scale-out efficiency (rate on 2 workers / twice
the rate on 1), the peak RSS per worker, the time 1e9 rows would take on 16
workers at the measured per-worker rate and efficiency, what reading and
shuffling alone cost on one worker (the floor under any rating), and a run on one
worker from parts kept by an earlier one (``imsim rerate --keep-parts``). A script, not a test:
``.venv/bin/python benchmarks/bench_rerate.py [--rows N] [--workers 1,2]``.
Default N is the issue's 50,000,000 (about 0.9 GiB of Parquet, 1.5 GiB of deltas).
Goals (issue 18): >= 1,500,000 rows/s per worker per variant; efficiency >= 0.8;
peak RSS per worker < 2 GiB whatever N.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imsim import planning
from imsim.model import scenario
from imsim.planning import parts, rerate

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios/planning/per_message.yaml"
DEARER = "environments[0].tariffs[1].rates[1].price=0.05"
GOAL = 1_500_000   # rows/s per worker per variant (issue 18)
GIB = 2 ** 30


def write_xdrs(folder: Path, rows: int, chunk: int) -> int:
    """``rows`` outgoing xDRs in Parquet files of ``chunk`` rows; the bytes written."""
    loaded = scenario.load(SCENARIO)
    folder.mkdir(parents=True, exist_ok=True)
    root = np.random.SeedSequence(18)
    for k, seed in enumerate(root.spawn(-(-rows // chunk))):
        size = min(chunk, rows - k * chunk)
        drawn = planning.synthetic_messages(loaded, size, seed, days=30)
        rated = planning.rate_messages(loaded, drawn)
        rated = rated[rated["billed"]]
        xdrs(rated, k * chunk).to_parquet(folder / f"xdrs-{k:04d}.parquet", index=False,
                                          row_group_size=chunk)
    return sum(p.stat().st_size for p in folder.glob("*.parquet"))


def xdrs(rated: pd.DataFrame, first: int) -> pd.DataFrame:
    """Rated messages as imsim's outgoing xDR columns (the ones re-rating reads)."""
    return pd.DataFrame({
        "i_xdr": np.arange(first, first + len(rated), dtype=np.int64),
        "env": rated["env"].astype(str).to_numpy(), "account_id": rated["CLI"].astype(str),
        "CLI": rated["CLI"].astype(str), "CLD": rated["CLD"].astype(str),
        "connect_time": rated["connect_time"].to_numpy(), "direction": "outgoing",
        "charged_quantity": rated["units"].to_numpy(),
        "charged_amount": rated["charged_amount"].to_numpy()})


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (run on each worker)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def local(workers: int) -> Any:
    """A LocalCluster's client of ``workers`` processes, started as `imsim rerate`
    starts it (its memory limit and the workers' glibc settings)."""
    return rerate.cluster(workers, None, None, "2GiB", processes=True, config=rerate.WORKERS)


def measure(source: Path, out: Path, workers: int,
            keep_parts: Path | None = None) -> dict[str, float]:
    """One re-rating run on a fresh LocalCluster of ``workers`` processes: rows, wall
    seconds (the cluster's start apart), worker CPU seconds, peak RSS per worker."""
    chosen = rerate.variants(SCENARIO, vary=[DEARER])
    began = time.perf_counter()
    with local(workers) as client:
        started = time.perf_counter()
        cpu = sum(client.run(cpu_seconds).values())
        report = rerate.run([source], chosen, out, client=client, keep_parts=keep_parts)
        seconds = time.perf_counter() - started
        cpu = sum(client.run(cpu_seconds).values()) - cpu
    return {"rows": int(report.summary["messages"].iloc[0]), "seconds": seconds,
            "start": started - began, "cpu": cpu,
            "peak": max(report.peak_rss.values()) / GIB}


def floor(source: Path) -> dict[str, float]:
    """Reading and shuffling alone, on one worker (`parts.by_sender`, each part only
    counted): what re-rating costs before anything is rated."""
    with local(1) as client:
        cpu = sum(client.run(cpu_seconds).values())
        began = time.perf_counter()
        shuffled = parts.by_sender(parts.Reading([source]))
        rows = sum(client.compute(shuffled.map_partitions(len)).result())
        seconds = time.perf_counter() - began
        cpu = sum(client.run(cpu_seconds).values()) - cpu
    return {"rows": rows, "seconds": seconds, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--chunk", type=int, default=500_000, help="rows per Parquet file")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--folder", help="work folder (default: a temporary one)")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench-rerate-"))
    began = time.perf_counter()
    size = write_xdrs(folder / "xdrs", args.rows, args.chunk)
    print(f"wrote {args.rows:,} xDR rows ({args.chunk:,} per file): {size / GIB:.2f} GiB "
          f"Parquet in {time.perf_counter() - began:.0f} s; machine: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GIB:.1f} GiB RAM")
    rates, cpu_rates = {}, {}
    for workers in (int(w) for w in args.workers.split(",")):
        got = measure(folder / "xdrs", folder / f"out-{workers}", workers)
        rates[workers] = got["rows"] / got["seconds"] / workers
        cpu_rates[workers] = got["rows"] / got["cpu"]
        deltas = sum(p.stat().st_size for p in (folder / f"out-{workers}").rglob("*.parquet"))
        print(f"{workers} worker(s): {got['rows']:,} rows x 2 variants in "
              f"{got['seconds']:.1f} s (cluster start {got['start']:.1f} s apart): "
              f"{rates[workers]:,.0f} rows/s per worker = {2 * rates[workers]:,.0f} "
              f"row-variants/s; {got['rows'] / got['cpu']:,.0f} rows per worker CPU-second; "
              f"peak RSS per worker {got['peak']:.2f} GiB; deltas {deltas / GIB:.2f} GiB")
    report(rates, cpu_rates)
    if 1 in rates:
        got = floor(folder / "xdrs")
        print(f"reading and shuffling alone, 1 worker: {got['rows'] / got['seconds']:,.0f} "
              f"rows/s, {got['rows'] / got['cpu']:,.0f} rows per CPU-second: "
              f"{cpu_rates[1] / (got['rows'] / got['cpu']):.0%} of the whole re-rating's "
              f"CPU time (goal: {GOAL:,} rows/s per worker per variant, {2 / GOAL * 1e6:.2f} "
              f"us per row for everything with two variants; this alone "
              f"{got['cpu'] / got['rows'] * 1e6:.2f} us)")
        kept(folder, cpu_rates[1])
    if not args.folder:
        shutil.rmtree(folder)


def kept(folder: Path, cold: float) -> None:
    """``imsim rerate --keep-parts``: a first run that keeps the shuffled parts, then a
    run that reads them back (what every later variant costs on the same month)."""
    first = measure(folder / "xdrs", folder / "out-keep", 1, folder / "parts")
    again = measure(folder / "xdrs", folder / "out-kept", 1, folder / "parts")
    for label, got in (("keeping the parts", first), ("from kept parts", again)):
        rate = got["rows"] / got["cpu"]
        print(f"1 worker, {label}: {got['rows'] / got['seconds']:,.0f} rows/s, "
              f"{rate:,.0f} rows per CPU-second ({rate / cold:.2f} x the run above)")


def report(rates: dict[int, float], cpu_rates: dict[int, float]) -> None:
    """Scale-out efficiency (wall, and per CPU-second: the work added by more workers,
    whatever else the machine runs) and the extrapolated time of 1e9 rows on 16 workers
    (at the per-worker rate measured on the most workers, which holds its efficiency)."""
    most = max(rates)
    if 1 in rates and most > 1:
        print(f"scale-out efficiency 1 -> {most} workers: {rates[most] / rates[1]:.2f} wall, "
              f"{cpu_rates[most] / cpu_rates[1]:.2f} per CPU-second")
    seconds = 1e9 / (rates[most] * 16)
    print(f"extrapolated: 1e9 rows on 16 workers in {seconds / 60:.1f} min "
          f"(at {rates[most]:,.0f} rows/s per worker)")


if __name__ == "__main__":
    main()
