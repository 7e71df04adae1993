"""Timing and capacity settings of the simulator (the ``sim:`` block of a scenario)."""

from __future__ import annotations

from pydantic import Field

from imsim.config import Frozen
from imsim.units import Seconds


class SimSettings(Frozen):
    """How long to run and how the platform's parts are sized."""

    until: Seconds | None = None
    seed: int = Field(1, ge=0)
