"""Small builders shared by the unit tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from imsim.model import scenario
from imsim.rules.message import Message

ROOT = Path(__file__).resolve().parent.parent
HANDBOOK = ROOT / "scenarios" / "handbook.yaml"
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def handbook_document() -> Any:
    """The handbook scenario as a plain mutable dict, for tests that change one thing."""
    return YAML(typ="safe").load(HANDBOOK.read_text())


def load_document(document: Any) -> scenario.Scenario:
    return scenario.from_document(document, "test.yaml")


def message(to: str, sender: str = "15551230001", at: dt.datetime = START, length: int = 5,
            domain: str = "sip.example.com", call_id: str = "c1") -> Message:
    return Message("m", sender, to, domain, at, length, call_id)


def money(text: str) -> Decimal:
    return Decimal(text)
