"""``imsim rate``: what would this message cost, or why is it refused (no time runs)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from imsim.errors import UsageError
from imsim.model import scenario
from imsim.model.replay import environment_at, timeline
from imsim.model.traffic import ScriptedMessage
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Message


def register(sub: Any, name: str) -> None:
    parser = sub.add_parser(name, help="rate or refuse one message, as JSON; exit 0 "
                            "when the message would be sent, 1 when it is refused")
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument("--from", dest="sender", required=True,
                        help="sending account: NUMBER or NUMBER@DOMAIN")
    parser.add_argument("--to", required=True, help="NUMBER or NUMBER@DOMAIN")
    parser.add_argument("--at", help="ISO time with zone (default: the scenario start)")
    parser.add_argument("--length", type=int, default=0, help="body length in bytes")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    loaded = scenario.load(args.scenario)
    if not args.sender.strip() or not args.to.strip():
        raise UsageError("--from and --to: write a number, e.g. 15551230001")
    line = ScriptedMessage.model_validate({"at": 0, "from": args.sender, "to": args.to})
    sender = line.sender   # as a script's `from`: NUMBER as written, or NUMBER@DOMAIN
    env = loaded.home_of(sender, line.sender_domain)
    if env is None:
        raise UsageError(f"--from {args.sender}: no such account in {args.scenario}")
    to_user, _, domain = args.to.partition("@")
    at = parse_time(args.at) if args.at else loaded.start
    if args.length < 0:
        raise UsageError("--length must be 0 or more")
    env = environment_at(timeline(loaded)[env.name], (at - loaded.start).total_seconds())
    message = Message("rate", sender, to_user, domain or env.domain, at, args.length, "rate")
    decision = BillingEngine(env).authorize(message, Ledger.of(env))
    print(json.dumps(describe(decision)))
    return 0 if decision.ok else 1  # the README's exit codes: 1 is "no"


def parse_time(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r}: write an ISO time such as 2026-01-05T09:00:00+00:00")\
            from None
    if moment.tzinfo is None:
        raise UsageError(f"--at {text!r}: add a time zone, e.g. +00:00")
    return moment


def describe(decision: Any) -> dict[str, Any]:
    rating = decision.customer
    return {
        "code": decision.code,
        "reason": decision.reason,
        "step": decision.step,
        "rate_code": rating.rate_code if rating else None,
        "units": rating.units if rating else 0,
        "unit_price": str(rating.unit_price) if rating else None,
        "charged_amount": str(rating.amount) if rating and decision.billed else "0",
        "currency": rating.currency if rating else None,
    }
