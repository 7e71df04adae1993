"""``imsim app trainer|planner``: the point-and-click app served by Voila on 127.0.0.1.

Prints the URL to open; Ctrl-C (or SIGTERM) stops it. Exit 0 when stopped, 2 when
Voila could not start.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from imsim.errors import UsageError
from imsim.training.apps.serve import APPS


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="serve the trainer or planner app (Voila, 127.0.0.1)")
    parser.add_argument("app", choices=sorted(APPS), help="which app")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--root", default=None,
                        help="the project folder holding scenarios/ (default: found from here)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imsim.training.apps.serve import serve
    from imsim.training.apps.widgets import project_root

    root = Path(args.root).resolve() if args.root else project_root()
    if not (root / "scenarios").is_dir():
        raise UsageError(f"--root {root}: no scenarios/ folder there: give the imsim "
                         "project folder")
    return serve(args.app, root, args.port)
