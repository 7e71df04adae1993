"""``imsim lab up|down|status``: the embedded live stack (Kamailio + imsim billing service).

    imsim lab up [SCENARIO] [--sip-port 5060] [--billing-port 8070] [--speed 1]
    imsim lab status      exit 0 when the stack runs, 1 when it does not
    imsim lab down        stops exactly the processes `up` started
    imsim lab run SCENARIO [--target FILE] [--speed 50] [--out DIR] [--seed N]
                          play it live, compare with the model: exit 0 all agree,
                          1 a mismatch (per-message diff in the report), 2 bad input
    imsim lab fuzz [--examples 15] [--seed 0] [--target FILE] [--out runs/fuzz]
                          generated scenarios played both ways (`lab.fuzz`): exit 0 all
                          agree, 1 a disagreement (shrunk, written to --out), 2 bad input

The runtime folder is $IMSIM_LAB_DIR (default lab/run/); it holds the generated
Kamailio config, the subscriber table (ha1 only), accounting, logs, the xDR store and
`lab.json` (which scenario the stack serves).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from imsim.errors import UsageError
from imsim.model import scenario

DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "handbook.yaml"
XDR_DB = "xdr.sqlite"
INFO = "lab.json"


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="start, stop or inspect the live lab stack")
    actions = parser.add_subparsers(dest="action", metavar="ACTION",
                                    parser_class=type(parser))
    actions.required = True
    up = actions.add_parser("up", help="start Kamailio and the billing service")
    up.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO),
                    help="scenario YAML file (default: the handbook scenario)")
    up.add_argument("--sip-port", type=int, default=5060, help="SIP port on 127.0.0.1")
    up.add_argument("--billing-port", type=int, default=8070,
                    help="billing service port on 127.0.0.1")
    up.add_argument("--speed", type=float, default=1.0,
                    help="scenario seconds per wall-clock second")
    up.set_defaults(handler=run_up)
    down = actions.add_parser("down", help="stop the processes 'up' started")
    down.set_defaults(handler=run_down)
    status = actions.add_parser("status", help="what runs; exit 0 if up, 1 if down")
    status.set_defaults(handler=run_status)
    play = actions.add_parser("run", help="play a scenario live and compare with the model")
    play.add_argument("scenario", help="scenario YAML file")
    play.add_argument("--target", help="target file (default: lab/targets/local.yaml, "
                      "the embedded stack)")
    play.add_argument("--speed", type=float, default=50.0,
                      help="scenario seconds per wall-clock second (default 50)")
    play.add_argument("--out", help="output folder (default runs/lab/NAME-TIME)")
    play.add_argument("--seed", type=int, help="the model's seed (default: sim.seed, "
                      "as for imsim run)")
    play.add_argument("--processes", type=int, default=1,
                      help="driver processes at least (more when accounts need them)")
    play.add_argument("--compare-only", action="store_true",
                      help="no play: compare the records already in --out with the "
                      "target's xDRs (e.g. a CSV export taken after the run)")
    play.set_defaults(handler=run_lab)
    fuzz = actions.add_parser("fuzz", help="generated scenarios, model against live; "
                              "shrinks a disagreement to a regression case")
    fuzz.add_argument("--examples", type=int, default=15, help="scenarios to play (15)")
    fuzz.add_argument("--seed", type=int, default=0, help="the same seed, the same scenarios")
    fuzz.add_argument("--target", help="target file (default: the embedded stack)")
    fuzz.add_argument("--out", default="runs/fuzz", help="output folder (runs/fuzz)")
    fuzz.add_argument("--speed", type=float, default=50.0,
                      help="scenario seconds per wall-clock second (default 50)")
    fuzz.add_argument("--shrink-seconds", type=float, default=600.0,
                      help="time to shrink a disagreement (default 600)")
    fuzz.set_defaults(handler=run_fuzz)


def run_up(args: argparse.Namespace) -> int:
    from lab import provision, run
    from lab.stack import Stack, StackError, check_free, set_aside

    stack = Stack(sip_port=_port(args.sip_port, "--sip-port"),
                  billing_port=_port(args.billing_port, "--billing-port"))
    current = stack.status()
    if current.running:
        print(f"already running: {current.describe()}{_serving(stack.dir)}")
        return 0
    if not 0 < args.speed <= 1e6:
        raise UsageError(f"--speed {args.speed}: must be > 0")
    loaded = scenario.load(args.scenario)
    check_free(args.sip_port, args.billing_port)
    stack.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    set_aside(stack.dir / XDR_DB)
    stack.billing = provision.billing_command(args.scenario, args.billing_port,
                                              stack.dir / XDR_DB, args.speed)
    try:
        status = stack.up(provision.subscribers(loaded), provision.buddies(loaded))
    except (StackError, ValueError) as exc:
        raise UsageError(f"{str(exc).splitlines()[0]} (logs in {stack.dir})") from None
    # the same record `lab run` writes, so a `lab run` of this scenario reuses the stack
    run.record_serving(stack.dir, Path(args.scenario), loaded, run.fingerprint(args.scenario))
    print(f"started: {status.describe()}{_serving(stack.dir)}")
    return 0


def run_lab(args: argparse.Namespace) -> int:
    from lab import run, targets

    if args.compare_only and not args.out:
        raise UsageError("--compare-only needs --out (the folder of the earlier run)")
    if args.seed is not None and args.seed < 0:
        raise UsageError("--seed must be 0 or more")
    if not 1 <= args.processes <= 64:
        raise UsageError(f"--processes {args.processes}: from 1 to 64")
    outcome = run.run(Path(args.scenario), targets.load(args.target), args.speed,
                      Path(args.out) if args.out else None, args.seed, args.processes,
                      args.compare_only)
    return 0 if outcome.comparison.ok else 1


def run_fuzz(args: argparse.Namespace) -> int:
    from lab import targets
    from lab.fuzz import Fuzz

    if args.shrink_seconds < 0:
        raise UsageError(f"--shrink-seconds {args.shrink_seconds}: must be >= 0")
    fuzz = Fuzz(targets.load(args.target), Path(args.out), args.speed, args.shrink_seconds)
    return 0 if fuzz.run(args.examples, args.seed).ok else 1


def run_down(args: argparse.Namespace) -> int:
    from lab.stack import Stack

    stack = Stack()
    stopped = stack.down()
    (stack.dir / INFO).unlink(missing_ok=True)
    if stopped:
        print(f"stopped: pids {', '.join(str(pid) for pid in stopped)}")
    else:
        print(f"lab stack was not running (runtime folder {stack.dir})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from lab.stack import Stack

    stack = Stack()
    status = stack.status()
    if not status.running:
        print(status.describe())
        return 1
    if status.billing_pid is None:
        print(f"{status.describe()}; billing service NOT running (imsim lab down, then up)")
        return 1
    print(f"{status.describe()}, billing pid {status.billing_pid}{_serving(stack.dir)}")
    return 0


def _serving(folder: Path) -> str:
    try:
        info = json.loads((folder / INFO).read_text())
        return f", scenario {info['name']} ({info['scenario']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _port(port: int, flag: str) -> int:
    if not 0 < port < 65536:
        raise UsageError(f"{flag} {port}: not a port number (1-65535)")
    return port
