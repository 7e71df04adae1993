"""``imsim check SCENARIO``: the filled-in checklist, the diagnosis and the test messages.

Exit 0 when the service works, 1 when it does not, 2 on a bad scenario file.
"""

from __future__ import annotations

import argparse
from typing import Any

from imsim.model import scenario
from imsim.training.render import FORMATS, render
from imsim.training.trainer import check


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="replay the setup, diagnose it, send the test messages")
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--seed", type=int, default=None, help="simulator seed")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    report = check(scenario.load(args.scenario), seed=args.seed)
    print(render(report, args.format))
    return 0 if report.works else 1
