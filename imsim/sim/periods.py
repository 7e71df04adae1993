"""Moments where a rating can change: the memo key of `BillingEngine.decide`.

A decision depends on time only through rates' ``effective_from`` and off-peak
periods read in a customer's time zone. Between two consecutive breakpoints listed
here every rating is the same, so the simulator reuses a decision within a period.
Breakpoints: every ``effective_from``; per time zone of the environment (and UTC),
every local midnight, every off-peak start and end, and every UTC offset change
(DST), over the run's days. Times are integer microseconds since the scenario start.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from imsim.model.config import Environment

DAY = dt.timedelta(days=1)


def microseconds(moment: dt.datetime, start: dt.datetime) -> int:
    delta = moment - start
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def breakpoints(env: Environment, start: dt.datetime, until: float) -> list[int]:
    """Sorted breakpoints (µs since ``start``) for a run of ``until`` seconds."""
    points = {microseconds(r.effective_from, start) for t in env.tariffs for r in t.rates
              if r.effective_from is not None}
    clocks = {p.start for t in env.tariffs for p in t.off_peak}
    clocks |= {p.end for t in env.tariffs for p in t.off_peak}
    if clocks:
        zones = {c.time_zone for c in env.customers} | {"UTC"}
        end = start + dt.timedelta(seconds=until)
        for name in sorted(zones):
            points |= {microseconds(m, start) for m in _local(ZoneInfo(name), clocks, start, end)}
    return sorted(points)


def _local(zone: ZoneInfo, clocks: set[dt.time], start: dt.datetime,
           end: dt.datetime) -> list[dt.datetime]:
    out = []
    day = start.astimezone(zone).date() - DAY
    while dt.datetime.combine(day, dt.time(0), zone) <= end + DAY:
        for clock in {dt.time(0), *clocks}:
            for fold in (0, 1):
                out.append(dt.datetime.combine(day, clock, zone).replace(fold=fold))
        out.extend(_offset_changes(zone, day))
        day += DAY
    return out


def _offset_changes(zone: ZoneInfo, day: dt.date) -> list[dt.datetime]:
    """The instant(s) of the day where the zone's UTC offset changes (to the second)."""
    lo = dt.datetime.combine(day, dt.time(0), zone).astimezone(dt.UTC)
    hi = lo + DAY
    if lo.astimezone(zone).utcoffset() == hi.astimezone(zone).utcoffset():
        return []
    first = lo.astimezone(zone).utcoffset()
    while (hi - lo) > dt.timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == first:
            lo = mid
        else:
            hi = mid
    return [hi.replace(microsecond=0), hi.replace(microsecond=0) + dt.timedelta(seconds=1)]
