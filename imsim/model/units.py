"""Durations written the way people write them: 300, "90s", "5m", "2h", "1d", "00:05:00"."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as '90s', '5m', '1.5h', '01:30:00'."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if ":" in value:
            parts = [float(p) for p in value.strip().split(":")]
            if len(parts) in (2, 3):
                seconds = 0.0
                for part in parts:
                    seconds = seconds * 60 + part
                return seconds
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    raise ValueError(f"{value!r} is not a duration: write seconds (300) or '90s', '5m', '2h', '1d'")


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, le=10 * 365 * 86400)]
