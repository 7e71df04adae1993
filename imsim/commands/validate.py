"""``imsim validate SCENARIO``: ok and the object counts, or the error (exit 2)."""

from __future__ import annotations

import argparse
from typing import Any

from imsim.model import scenario


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="check a scenario file and count its objects")
    parser.add_argument("scenario", help="scenario YAML file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    loaded = scenario.load(args.scenario)
    counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in loaded.counts().items())
    print(f"ok: {loaded.name}: {counts}")
    return 0
