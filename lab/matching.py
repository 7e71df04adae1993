"""Which xDR bills which test message, when the xDRs carry none of imsim's ids.

    found = match(sent, xdrs, skew=measured_skew(records), tolerance=3.0)
    found.pairs   # {index of the xDR: msg_id}
    found.orphans # indexes of the xDRs no message claims

A message is what the driver recorded: its msg_id, the SIP Call-ID, CLI and CLD (the
numbers as the billing writes them: the model's own translation when it bills the
message, else the digits of From and To) and the wall time it was sent.

1. An xDR with imsim's ``msg_id`` (the lab's own billing service) bills that message
   (its customer and its vendor xDR both).
2. An xDR with a Call-ID bills the message of that Call-ID, and no other.
3. An xDR without one bills a message between the same CLI and CLD whose send time,
   moved by the remote clock's skew, is within ``tolerance`` seconds of the xDR's
   connect time. Per (CLI, CLD) both sides are taken in time order (xDRs of one second
   in i_xdr order) and paired greedily, earliest first: the most pairs there can be,
   never crossed. Messages answered 2xx are paired first, refused ones after.

One xDR per message at most; every xDR left over is an orphan.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from imsim.rules.message import Xdr

TOLERANCE = 3.0  # seconds: 1 s of 'HH:MM:SS' truncation, 1 s of Date, network and queues


@dataclass(frozen=True)
class Sent:
    """A test message as the driver saw it leave."""

    msg_id: str
    call_id: str
    cli: str
    cld: str
    sent_at: float  # wall time (Unix seconds, the driver's clock)
    answered: bool = True  # with a 2xx (paired by time before the refused ones)


@dataclass
class Matching:
    pairs: dict[int, str] = field(default_factory=dict)  # xDR index -> msg_id
    orphans: list[int] = field(default_factory=list)  # xDR indexes
    how: dict[int, str] = field(default_factory=dict)  # xDR index -> msg_id/call_id/time

    def by(self, how: str) -> int:
        """How many pairs were made this way ("msg_id", "call_id" or "time")."""
        return sum(1 for h in self.how.values() if h == how)


def digits(number: str) -> str:
    """A number as the billing compares it: its digits only ("+1 (555) 123" -> "1555123")."""
    return "".join(c for c in str(number) if c.isdigit())


def rewriter(rules: Iterable[tuple[str, str]]) -> Callable[[str], str]:
    """A deployment's number translation: its digits, then each (regex, replacement) in
    order (e.g. ("^0", "44"): a national number to E.164)."""
    compiled = [(re.compile(pattern), replace) for pattern, replace in rules]

    def translate(number: str) -> str:
        found = digits(number)
        for pattern, replace in compiled:
            found = pattern.sub(replace, found)
        return found

    return translate


def match(sent: Sequence[Sent], xdrs: Sequence[Xdr], skew: float = 0.0,
          tolerance: float = TOLERANCE, translate: Callable[[str], str] = digits
          ) -> Matching:
    """Pair xDRs with messages: by msg_id, by Call-ID, else by CLI, CLD and time;
    ``translate``: an xDR's number as the messages write it (the target's rewrites)."""
    found, free = Matching(), {s.msg_id: s for s in sent}
    by_call = {s.call_id: s.msg_id for s in sent if s.call_id}
    known, timed = set(free), []
    for index, xdr in enumerate(xdrs):
        key, how = _claim(xdr, free, by_call, known)
        if key is not None:
            found.pairs[index], found.how[index] = key, how
            free.pop(key, None)
        elif how == "time":
            timed.append(index)
    for round_ in (True, False):  # 2xx messages first: a refused one is rarely billed
        ready = [s for s in free.values() if s.answered == round_]
        for index, msg_id in _by_time(ready, xdrs, timed, skew, tolerance, translate):
            found.pairs[index], found.how[index] = msg_id, "time"
            timed.remove(index)
            del free[msg_id]
    found.orphans = [i for i in range(len(xdrs)) if i not in found.pairs]
    return found


def _claim(xdr: Xdr, free: dict[str, Sent], by_call: dict[str, str], known: set[str]
           ) -> tuple[str | None, str]:
    """(msg_id, how) for an xDR that names its message; (None, "time") for one to pair
    by time; (None, "") for an orphan: it names a message not played, or a Call-ID
    already billed. imsim's own billing service writes a customer and a vendor xDR with
    the msg_id: both are the message's (the comparison counts them)."""
    if xdr.msg_id:
        return (xdr.msg_id, "msg_id") if xdr.msg_id in known else (None, "")
    if xdr.call_id:
        msg_id = by_call.get(xdr.call_id)
        return (msg_id, "call_id") if msg_id in free else (None, "")
    return None, "time"


def _by_time(free: Iterable[Sent], xdrs: Sequence[Xdr], timed: list[int], skew: float,
             tolerance: float, translate: Callable[[str], str]) -> list[tuple[int, str]]:
    """Per (CLI, CLD): both sides in time order, each xDR to the earliest message still
    within reach."""
    waiting: dict[tuple[str, str], list[Sent]] = defaultdict(list)
    for message in sorted(free, key=lambda s: s.sent_at):
        waiting[(digits(message.cli), digits(message.cld))].append(message)
    pairs = []
    for index in sorted(timed, key=lambda i: (xdrs[i].connect_time, xdrs[i].i_xdr)):
        xdr = xdrs[index]
        queue = waiting.get((translate(xdr.CLI), translate(xdr.CLD)), [])
        at = xdr.connect_time.timestamp() - skew
        while queue and queue[0].sent_at < at - tolerance:
            queue.pop(0)  # too early for this xDR and every later one
        if queue and queue[0].sent_at <= at + tolerance:
            pairs.append((index, queue.pop(0).msg_id))
    return pairs


# -- the remote clock ----------------------------------------------------------------

def proxy_time(date: str | None) -> float | None:
    """A SIP Date header (RFC 1123, GMT) as Unix seconds; None when absent or unreadable."""
    if not date:
        return None
    try:
        moment = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def measured_skew(records: Iterable[dict[str, Any]]) -> float:
    """How far the remote clock runs ahead of ours (seconds, median over the answers that
    carried a Date header; 0 without any). A Date is truncated to the second: +0.5."""
    offsets = [stamp + 0.5 - float(r["answered_at"]) for r in records
               if r.get("kind") == "message" and r.get("answered_at")
               and (stamp := proxy_time(r.get("date"))) is not None]
    return round(statistics.median(offsets), 3) if offsets else 0.0
