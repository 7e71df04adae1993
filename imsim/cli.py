"""The ``imsim`` command line: one module per command in `imsim.commands`.

Every command returns an exit code: 0 fine, 1 the answer is "no" (a mismatch, a
service that does not work), 2 bad input. Bad input prints one line, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from imsim import __version__
from imsim.errors import UsageError
from imsim.model.memory import no_collection_at_exit
from imsim.model.scenario import ScenarioError

# (command name, module under imsim.commands); each module has register() and run().
COMMANDS: tuple[tuple[str, str], ...] = (
    ("validate", "validate"),
    ("rate", "rate"),
    ("run", "run"),
    ("lab", "lab"),
    ("check", "check"),
    ("checklist", "checklist"),
    ("sweep", "sweep"),
    ("rerate", "rerate"),
    ("app", "app"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"imsim: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="imsim", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"imsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name in COMMANDS:
        module = importlib.import_module(f"imsim.commands.{module_name}")
        module.register(sub, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    no_collection_at_exit()
    try:
        return int(args.handler(args))
    except ScenarioError as exc:
        print(f"imsim: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"imsim: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the system refused: the user's to fix
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"imsim: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
