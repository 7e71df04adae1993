"""Timing and capacity settings of the simulator (the ``sim:`` block of a scenario).

Every field has a default, and `SimSettings.model_dump()` records the defaults used
in a run's summary. Times are seconds (or duration strings); service times are
distributions (`imsim.model.distributions`), a plain number being a constant.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from imsim.model.config import Frozen
from imsim.model.distributions import Distribution, constant
from imsim.model.units import Seconds

METHODS: tuple[str, ...] = ("REGISTER", "SUBSCRIBE", "PUBLISH", "NOTIFY", "MESSAGE")


class ServiceTimes(Frozen):
    """Proxy processing time of one SIP transaction, per method."""

    REGISTER: Distribution = constant(0.001)
    SUBSCRIBE: Distribution = constant(0.001)
    PUBLISH: Distribution = constant(0.001)
    NOTIFY: Distribution = constant(0.0005)
    MESSAGE: Distribution = constant(0.001)


class ProxySettings(Frozen):
    """PortaSIP: a pool of workers, FIFO, each transaction served by one worker."""

    workers: int = Field(4, ge=1, le=100_000)
    service: ServiceTimes = ServiceTimes()


class BillingSettings(Frozen):
    """The billing engine's AAA: one-way latency proxy<->billing, workers, service time."""

    workers: int = Field(2, ge=1, le=100_000)
    latency: Seconds = 0.002
    service: Distribution = constant(0.001)


class NetworkSettings(Frozen):
    """One-way delay between a client and the proxy."""

    delay: Seconds = 0.01


class RegistrationSettings(Frozen):
    """REGISTER expiry; a client refreshes after ``refresh`` x ``expires`` seconds.
    Softphones online at the start register at 0, or spread evenly at random over
    ``spread`` seconds (a large population should not register in one instant)."""

    expires: Seconds = Field(3600.0, gt=0)
    refresh: float = Field(0.5, gt=0, lt=1)
    spread: Seconds = 0.0


class UserAgentSettings(Frozen):
    """How a recipient's softphone answers a MESSAGE."""

    answer_delay: Seconds = 0.0
    failure_probability: float = Field(0.0, ge=0, le=1)
    failure_code: int = Field(486, ge=400, le=699)
    failure_reason: str = "Busy Here"


class RecordSettings(Frozen):
    """What a run keeps row by row (the summary always counts everything).

    Large runs keep only failed messages and no xDRs: delivered messages are
    counted and summed, not kept.
    """

    messages: Literal["all", "failed", "none"] = "all"
    xdrs: bool = True
    presence: bool = True


class SimSettings(Frozen):
    """How long to run and how the platform's parts are sized."""

    until: Seconds | None = None
    seed: int = Field(1, ge=0)
    network: NetworkSettings = NetworkSettings()
    proxy: ProxySettings = ProxySettings()
    billing: BillingSettings = BillingSettings()
    registration: RegistrationSettings = RegistrationSettings()
    user_agent: UserAgentSettings = UserAgentSettings()
    transaction_timeout: Seconds = Field(32.0, gt=0)
    sample_interval: Seconds = Field(1.0, gt=0)
    drain: Seconds = 60.0
    records: RecordSettings = RecordSettings()
    engine: Literal["fast", "simpy"] | None = None
    """The engine that runs the model: ``fast`` (the default when unset: callback
    events on a compiled clock, for large runs) or ``simpy`` (the reference model in
    SimPy's idiom, `imsim.sim.reference`: the one to read and extend). Both give the
    same answer (tests/test_sim_engines.py)."""
