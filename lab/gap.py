"""The gap of a live run: what failed because the proxy or the billing service was away.

A message is in the gap when the lab answered it otherwise than the model (which knows
no outages) and either with an outage code (no answer, 408 from a timeout, 503 from a
dead transport or "Billing unavailable", 504), or while the proxy was away: from its
last answer before the clients saw it down or restarted (the "proxy" records of
`lab.sip.ProxyWatch`) until the clients had registered again (a restarted proxy
answers 480 for recipients it has not seen register yet). The proxy events come along,
so a report says when the proxy went away and when the clients registered again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from lab import driver

OUTAGE_CODES = (408, 503, 504)


def outage(code: Any) -> bool:
    return not isinstance(code, int) or code in OUTAGE_CODES


def find(records: Iterable[dict[str, Any]], model_codes: Mapping[str, int] | None = None
         ) -> dict[str, Any] | None:
    """The gap (None when there is none): failed messages, their codes, the proxy events."""
    records = list(records)
    model_codes = model_codes or {}
    windows = proxy_away(records)
    failed = [row for row in driver.messages(records) if row["sent_at"] is not None
              and model_codes.get(row["msg_id"]) != row["code"]
              and (outage(row["code"]) or any(start <= (row["sent_t"] or 0) <= end
                                               for start, end in windows))]
    proxy = [{"t": r.get("t"), "event": r.get("event")} for r in records
             if r.get("kind") == "proxy"]
    if not failed and not proxy:
        return None
    times = [row["sent_t"] for row in failed if row["sent_t"] is not None]
    return {"messages": len(failed),
            "codes": dict(Counter(str(row["code"]) for row in failed)),
            "from_t": min(times, default=None), "to_t": max(times, default=None),
            "failed": [{"msg_id": row["msg_id"], "t": row["sent_t"], "code": row["code"],
                        "reason": row["reason"]} for row in failed],
            "proxy": proxy}


def proxy_away(records: list[dict[str, Any]], registering: float = 5.0
               ) -> list[tuple[float, float]]:
    """(from, to) scenario seconds the proxy was away: from its last answer before a
    down/restarted event to the last registration answered 200 within `registering`
    seconds after it came back."""
    events = [r for r in records if r.get("kind") == "proxy" and r.get("t") is not None]
    registered = sorted(r["t"] for r in records if r.get("kind") == "register"
                        and r.get("code") == 200 and r.get("t") is not None)
    windows, start = [], None
    for event in sorted(events, key=lambda r: r["t"]):
        if event["event"] in ("down", "restarted") and start is None:
            start = event.get("silent_since_t")
            start = event["t"] if start is None else start
        if event["event"] in ("up", "restarted") and start is not None:
            back = [t for t in registered if event["t"] <= t <= event["t"] + registering]
            windows.append((start, max(back, default=event["t"])))
            start = None
    if start is not None:  # still away at the end of the run
        windows.append((start, float("inf")))
    return windows


def describe(gap: Mapping[str, Any] | None) -> str | None:
    """One line for the summary, or None."""
    if not gap:
        return None
    codes = ", ".join(f"{code} x{n}" for code, n in sorted(gap["codes"].items()))
    line = f"gap: {gap['messages']} messages failed during an outage"
    if gap["messages"]:
        line += f" ({codes}), sent from t={gap['from_t']:g} s to t={gap['to_t']:g} s"
    events = [f"{e['event']} at t={e['t']:g} s" if isinstance(e["t"], int | float)
              else str(e["event"]) for e in gap["proxy"]]
    return line + (f"; proxy {', '.join(events)}" if events else "")
