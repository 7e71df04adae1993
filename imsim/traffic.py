"""Traffic of a scenario: scripted messages (and, in the simulator, stochastic models)."""

from __future__ import annotations

from pydantic import Field, model_validator

from imsim.config import Frozen
from imsim.units import Seconds


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
        return self.from_.split("@", 1)[0].strip().lstrip("+")

    @property
    def sender_domain(self) -> str | None:
        return self.from_.split("@", 1)[1] if "@" in self.from_ else None


class Traffic(Frozen):
    """The scenario's traffic; ``script`` is played as written."""

    script: tuple[ScriptedMessage, ...] = ()
