"""``imsim rerate XDRS... --scenario BASE.yaml``: last month's traffic under variants."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from imsim.commands.run import writable_folder
from imsim.errors import UsageError


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="re-rate xDR exports under candidate configurations")
    parser.add_argument("xdrs", nargs="+", metavar="XDRS",
                        help="xDR exports: CSV, CSV.gz, Parquet files or folders, globs")
    parser.add_argument("--scenario", required=True, help="the base scenario (variant 'base')")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FILE.yaml",
                        help="another candidate scenario (repeatable)")
    parser.add_argument("--vary", action="append", default=[], metavar="PATH=V1,V2,...",
                        help="a factor on the base scenario; each combination is a variant")
    parser.add_argument("--out", default="runs/rerate", help="folder for tables and deltas")
    parser.add_argument("--column", action="append", default=[], metavar="THEIRS=OURS",
                        help="an export column that means one of ours, e.g. "
                        "h323_conf_id=call_id (repeatable)")
    parser.add_argument("--time-zone", default="UTC",
                        help="zone of export times written without one (default UTC)")
    parser.add_argument("--i-service", help="PortaBilling's i_service of messaging: only "
                        "those xDRs are re-rated")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="an existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    parser.add_argument("--memory-limit", default="2GiB", help="per LocalCluster worker")
    parser.add_argument("--partitions", type=int,
                        help="parts after the shuffle by sender (default: the input's)")
    parser.add_argument("--keep-parts", metavar="DIR",
                        help="keep the exports' messages, shuffled by sender, in DIR; a later "
                        "run on the same exports and options reads them back instead (no "
                        "parsing, no shuffle)")
    parser.add_argument("--top", type=int, default=10, help="winners and losers per variant")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imsim.planning import rerate

    if args.workers < 1 or args.top < 1 or (args.partitions is not None
                                            and args.partitions < 1):
        raise UsageError("--workers, --top and --partitions must be 1 or more")
    mapping = columns(args.column)
    writable_folder(args.out, "--out")
    chosen = rerate.variants(args.scenario, args.variant, args.vary)
    report = rerate.run(args.xdrs, chosen, args.out, workers=args.workers,
                        scheduler=args.scheduler, partitions=args.partitions,
                        progress=not args.quiet and sys.stderr.isatty(), mapping=mapping,
                        time_zone=args.time_zone, i_service=args.i_service, top=args.top,
                        memory_limit=args.memory_limit, keep_parts=args.keep_parts)
    if args.keep_parts and not args.quiet:
        print(f"parts: {'read back from' if report.parts_reused else 'kept in'} "
              f"{args.keep_parts}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print(report.summary.to_string(index=False))
        print(f"wrote {args.out}: summary, by_rate_code, by_product, by_customer, by_day, "
              "refusals, winners_losers (.csv)" + (", warnings.txt" if report.warnings else "")
              + " and deltas/ (Parquet)")
    return 0


def columns(pairs: list[str]) -> dict[str, str]:
    """``--column THEIRS=OURS`` flags as a mapping."""
    mapping = {}
    for pair in pairs:
        theirs, sep, ours = (part.strip() for part in pair.partition("="))
        if not sep or not theirs or not ours:
            raise UsageError(f"--column {pair!r}: write THEIRS=OURS, e.g. h323_conf_id=call_id")
        mapping[theirs] = ours
    return mapping
