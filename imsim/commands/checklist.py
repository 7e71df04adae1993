"""``imsim checklist``: the handbook's blank printable checklist."""

from __future__ import annotations

import argparse
from typing import Any

from imsim.training.checklist import blank


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="print the blank printable setup checklist")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print(blank())
    return 0
