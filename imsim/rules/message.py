"""What travels the message path: a MESSAGE as billing sees it, the answer billing gives
(`Decision`) and the billing record a delivered message leaves (`Xdr`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, NamedTuple

from imsim.rules.rating import Rating

OK_REASON: Final = "OK"


@dataclass(frozen=True, slots=True)
class Message:
    """One MESSAGE as the proxy sees it after authentication."""

    msg_id: str
    sender: str
    to_user: str
    to_domain: str
    at: dt.datetime
    length: int = 0
    call_id: str = ""

    @property
    def hold(self) -> str:
        """The ledger key of this message's reservation: one per message, even when
        messages share a Call-ID (or leave it empty)."""
        return f"{self.call_id}\x1f{self.msg_id}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a MESSAGE: SIP code, reason phrase naming the check, handbook step."""

    code: int
    reason: str
    step: int | None
    check: str
    recipient: str | None = None
    billed: bool = False
    customer: Rating | None = None
    vendor: Rating | None = None
    incoming: Rating | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


def refuse(code: int, check: str, step: int | None, reason: str) -> Decision:
    return Decision(code, reason, step, check)


class Xdr(NamedTuple):
    """One billing record, PortaBilling column names (DESIGN.md)."""

    i_xdr: int
    env: str
    account_id: str
    CLI: str
    CLD: str
    connect_time: dt.datetime
    call_id: str
    msg_id: str
    service: str
    direction: str
    tariff: str
    rate_code: str
    charged_quantity: int
    unit_price: Decimal
    charged_amount: Decimal
    currency: str
    sip_code: int
    reason: str


XDR_COLUMNS: tuple[str, ...] = Xdr._fields
