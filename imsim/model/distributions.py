"""Random distributions as a scenario writes them: ``{dist: exponential, mean: 2.0}``.

A plain number or a duration string ('5m') is a constant. Each kind takes exactly
its own parameters; anything else is refused at load time. `draws` samples them with
numpy, for the simulator (`imsim.sim.draws.sampler`) and planning alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field, model_validator

from imsim.model.config import Frozen
from imsim.model.units import parse_duration

Number = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]

DistName = Literal["constant", "exponential", "uniform", "normal", "lognormal", "gamma",
                   "geometric", "poisson"]

# parameters each distribution takes; a tuple of alternatives means "one of them"
PARAMETERS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "exponential": ("mean",),
    "uniform": ("low", "high"),
    "normal": ("mean", "sd"),
    "lognormal": ("mean", "sd"),
    "gamma": ("mean", "shape"),
    "geometric": ("mean|p",),
    "poisson": ("mean",),
}
_ALL = ("value", "mean", "low", "high", "sd", "shape", "p")


class Distribution(Frozen):
    """One distribution: ``dist`` and its parameters (seconds, or counts)."""

    dist: DistName
    value: Number | None = None
    mean: Number | None = None
    low: Number | None = None
    high: Number | None = None
    sd: Number | None = None
    shape: float | None = Field(None, gt=0)
    p: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            return {"dist": "constant", "value": value}
        return value

    @model_validator(mode="after")
    def _parameters(self) -> Distribution:
        wanted = PARAMETERS[self.dist]
        allowed = {name for group in wanted for name in group.split("|")}
        extra = [n for n in _ALL if getattr(self, n) is not None and n not in allowed]
        if extra:
            raise ValueError(f"{self.dist} takes {' and '.join(wanted)}, not {extra[0]}")
        for group in wanted:
            names = group.split("|")
            if sum(getattr(self, n) is not None for n in names) != 1:
                raise ValueError(f"{self.dist} needs {' or '.join(names)}")
        if self.dist == "uniform" and self.low is not None and self.high is not None \
                and self.low > self.high:
            raise ValueError("uniform needs low <= high")
        if self.dist in ("exponential", "gamma", "lognormal", "poisson") and not self.mean:
            raise ValueError(f"{self.dist} needs a mean greater than 0")
        if self.dist == "geometric" and self.mean is not None and self.mean < 1:
            raise ValueError("geometric counts start at 1: its mean must be 1 or more")
        return self

    @property
    def average(self) -> float:
        """The distribution's mean (normal: before clipping at 0)."""
        if self.dist == "constant":
            return float(self.value or 0.0)
        if self.dist == "uniform":
            return (float(self.low or 0.0) + float(self.high or 0.0)) / 2
        if self.dist == "geometric" and self.p is not None:
            return 1.0 / self.p
        return float(self.mean or 0.0)

    @property
    def is_constant(self) -> bool:
        return self.dist == "constant"


def constant(value: float) -> Distribution:
    return Distribution(dist="constant", value=value)


def exponential(mean: float) -> Distribution:
    return Distribution(dist="exponential", mean=mean)


def draws(d: Distribution, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    """A function giving ``n`` values of ``d`` from ``rng`` at a time (a normal is
    clipped at 0; a lognormal's ``mean`` and ``sd`` are its own, not the log's)."""
    mean = float(d.mean or 0.0)
    if d.dist == "constant":
        value = float(d.value or 0.0)
        return lambda n: np.full(n, value)
    if d.dist == "exponential":
        return lambda n: rng.exponential(mean, n)
    if d.dist == "uniform":
        return lambda n: rng.uniform(float(d.low or 0.0), float(d.high or 0.0), n)
    if d.dist == "normal":
        return lambda n: np.maximum(rng.normal(mean, float(d.sd or 0.0), n), 0.0)
    if d.dist == "lognormal":
        sigma2 = float(np.log1p((float(d.sd or 0.0) / mean) ** 2))
        mu = float(np.log(mean)) - sigma2 / 2
        return lambda n: rng.lognormal(mu, sigma2 ** 0.5, n)
    if d.dist == "gamma":
        shape = float(d.shape or 1.0)
        return lambda n: rng.gamma(shape, mean / shape, n)
    if d.dist == "geometric":
        p = d.p if d.p is not None else 1.0 / mean
        return lambda n: rng.geometric(p, n).astype(float)
    if d.dist == "poisson":
        return lambda n: rng.poisson(mean, n).astype(float)
    raise ValueError(f"no sampler for {d.dist}")
