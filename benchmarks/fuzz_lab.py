"""Generated scenarios played through the model and the live stack (`imsim lab fuzz`).

    .venv/bin/python benchmarks/fuzz_lab.py [--examples 300] [--seed 0] [--speed 50]

Starts the embedded stack on free loopback ports in a temporary runtime folder, plays
``--examples`` scenarios from `imsim.model.generate` (model, live, compare per message) and
prints scenarios per minute, messages played and the agreement figure; a disagreement
is shrunk (at most ``--shrink-seconds``) and written to ``--out``. Stops the stack.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--shrink-seconds", type=float, default=600.0)
    parser.add_argument("--out", default=None, help="default: a temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="imsim-fuzz-"))
    os.environ["IMSIM_LAB_DIR"] = str(folder / "run")
    from lab import targets
    from lab.fuzz import Fuzz
    from lab.stack import Stack

    target = folder / "local.yaml"
    target.write_text(f"kind: local\nsip_port: {free(socket.SOCK_DGRAM)}\n"
                      f"billing_port: {free(socket.SOCK_STREAM)}\n")
    out = Path(args.out) if args.out else folder / "out"
    try:
        tally = Fuzz(targets.load(str(target)), out, args.speed,
                     args.shrink_seconds).run(args.examples, args.seed)
    finally:
        Stack(folder / "run").down()
    print(f"scenarios: {tally.scenarios} in {tally.seconds:.0f} s "
          f"({tally.scenarios / tally.seconds * 60:.1f} scenarios/min)")
    print(f"messages played: {tally.messages}; agreeing: {tally.agreed} "
          f"({tally.agreement:.2f} %)")
    print(f"disagreement: {'none' if tally.ok else 'shrunk case written to ' + str(out)}")
    return 0 if tally.ok else 1


if __name__ == "__main__":
    sys.exit(main())
