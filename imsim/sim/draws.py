"""Named random streams and samplers: what the simulator draws, in batches.

A stream's values depend only on the seed and the stream's name (`Streams`), so adding
a stream changes no other; `Draws` hands them out one by one from batches of `BATCH`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

import numpy as np

from imsim.model.distributions import Distribution, draws
from imsim.model.settings import SimSettings

BATCH: Final = 4096


class Streams:
    """Named random streams from one `SeedSequence(seed)`: the stream of a name does
    not depend on which other streams exist or in which order they were made."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.root = np.random.SeedSequence(seed)

    def generator(self, name: str) -> np.random.Generator:
        child = np.random.SeedSequence(self.root.entropy,
                                       spawn_key=(*self.root.spawn_key, zlib.crc32(name.encode())))
        return np.random.Generator(np.random.PCG64(child))


class Draws:
    """Values of one stream drawn in batches; ``next()`` costs a list index."""

    __slots__ = ("_draw", "_buffer", "_i")

    def __init__(self, draw: Callable[[int], np.ndarray]) -> None:
        self._draw = draw
        self._buffer: list[float] = []
        self._i = 0

    def next(self) -> float:
        i = self._i
        if i >= len(self._buffer):
            self._buffer = self._draw(BATCH).tolist()
            i = 0
        self._i = i + 1
        return self._buffer[i]


class Fixed(Draws):
    """`Draws` of a constant: draws nothing."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        super().__init__(_nothing)
        self.value = value

    def next(self) -> float:
        return self.value


def _nothing(n: int) -> np.ndarray:
    raise AssertionError("a constant draws nothing")


def sampler(dist: Distribution, rng: np.random.Generator) -> Draws:
    """Values of ``dist`` (``next()``; a constant draws nothing)."""
    if dist.is_constant:
        return Fixed(float(dist.value or 0.0))
    return Draws(draws(dist, rng))


def uniforms(rng: np.random.Generator) -> Draws:
    """Uniform values in [0, 1) (``next()``)."""
    return Draws(rng.random)


def message_draws(settings: SimSettings, streams: Streams) -> tuple[Draws, Draws, Draws]:
    """What a message's path draws, from its named streams, the same in both engines:
    the proxy's MESSAGE service time, billing's service time, and the uniforms that
    decide whether a softphone fails to answer."""
    return (sampler(settings.proxy.service.MESSAGE, streams.generator("service.proxy.MESSAGE")),
            sampler(settings.billing.service, streams.generator("service.billing")),
            uniforms(streams.generator("user_agent.failure")))
