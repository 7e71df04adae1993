"""Golden summaries of every scenario under scenarios/ (regenerate them with
``python -m tests.goldens --update`` after an intended change, and review the diff)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import goldens as golden


@pytest.mark.parametrize("scenario_file", golden.scenario_files(),
                         ids=lambda p: str(p.relative_to(golden.SCENARIOS)))
def test_summary_matches_golden(scenario_file: Path) -> None:
    difference = golden.diff(scenario_file)
    assert not difference, difference
