"""Traffic of a scenario: scripted messages and the stochastic models the simulator plays.

Distributions are written ``{dist: exponential, mean: 2.0}`` (`imsim.model.distributions`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from imsim.model.config import Frozen, account_number
from imsim.model.distributions import Distribution
from imsim.model.units import Seconds


class ScriptedMessage(Frozen):
    """One line of ``traffic.script``: at, from, to, body or length, id."""

    at: Seconds
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    body: str | None = None
    length: int | None = Field(None, ge=0, le=65536)
    id: str | None = Field(None, min_length=1, max_length=64)
    password: str | None = None

    model_config = Frozen.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _body_or_length(self) -> ScriptedMessage:
        if self.body is not None and self.length is not None and self.length != len(
                self.body.encode()):
            raise ValueError("give either body or length, not both with different sizes")
        return self

    @property
    def size(self) -> int:
        if self.body is not None:
            return len(self.body.encode())
        return self.length if self.length is not None else 0

    @property
    def sender(self) -> str:
        return account_number(self.from_.split("@", 1)[0])

    @property
    def sender_domain(self) -> str | None:
        return self.from_.split("@", 1)[1].strip().lower() if "@" in self.from_ else None


# -- stochastic models (played by the simulator) ---------------------------------------

class PoissonTraffic(Frozen):
    """Each online account sends messages as a Poisson process of ``rate_per_hour``."""

    rate_per_hour: float = Field(gt=0, le=1_000_000)


class Destination(Frozen):
    """One entry of the destination mix: a fixed number, a prefix padded with random
    digits up to ``digits``, or ``account: any`` (a random account of the sender's
    environment)."""

    weight: float = Field(1.0, gt=0)
    number: str | None = Field(None, pattern=r"^\+?[0-9]{1,15}$")
    prefix: str | None = Field(None, pattern=r"^[0-9]{1,14}$")
    digits: int = Field(11, ge=2, le=15)
    account: Literal["any"] | None = None
    domain: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Destination:
        kinds = [k for k in ("number", "prefix", "account") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of number, prefix or account")
        if self.prefix is not None and len(self.prefix) >= self.digits:
            raise ValueError("digits must be longer than the prefix")
        return self


class Destinations(Frozen):
    """Where Poisson messages go: a buddy, or (``off_buddy_share`` of them, and always
    for accounts without buddies) a number drawn from ``mix``."""

    off_buddy_share: float = Field(0.0, ge=0, le=1)
    mix: tuple[Destination, ...] = ()


class Conversations(Frozen):
    """A buddy coming online starts a conversation with ``probability``: a number of
    messages (alternating sides) separated by think times."""

    probability: float = Field(ge=0, le=1)
    messages: Distribution = Distribution(dist="geometric", mean=4.0)
    think_time: Distribution = Distribution(dist="exponential", mean=20.0)


class Churn(Frozen):
    """Online/offline sessions of every softphone."""

    online: Distribution = Distribution(dist="exponential", mean=3600.0)
    offline: Distribution = Distribution(dist="exponential", mean=3600.0)
    initially_online: float = Field(1.0, ge=0, le=1)
    crash_probability: float = Field(0.0, ge=0, le=1)


class Elasticity(Frozen):
    """Demand scaled by (unit price / reference_price) ** coefficient, at most ``cap``."""

    reference_price: float = Field(gt=0)
    coefficient: float = Field(-0.5, ge=-10, le=10)
    cap: float = Field(4.0, ge=1, le=100)


class Traffic(Frozen):
    """The scenario's traffic: ``script`` is played as written; the models are random.

    ``profile`` holds 24 hourly multipliers of the Poisson rate, read on the sender's
    local clock. ``offline`` lists accounts whose softphone never starts.
    """

    script: tuple[ScriptedMessage, ...] = ()
    poisson: PoissonTraffic | None = None
    conversations: Conversations | None = None
    churn: Churn | None = None
    profile: tuple[float, ...] | None = None
    destinations: Destinations = Destinations()
    elasticity: Elasticity | None = None
    length: Distribution = Distribution(dist="constant", value=32)
    offline: tuple[str, ...] = ()

    @field_validator("profile")
    @classmethod
    def _hours(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is None:
            return value
        if len(value) != 24 or min(value) < 0 or max(value) <= 0:
            raise ValueError("profile needs 24 hourly multipliers, >= 0, not all 0")
        return value

    @field_validator("offline", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(account_number(str(item)) for item in value)
        return value

    @property
    def stochastic(self) -> bool:
        return any(m is not None for m in (self.poisson, self.conversations, self.churn))
