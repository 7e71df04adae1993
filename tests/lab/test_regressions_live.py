"""Every regression scenario (scenarios/regressions/) played live: the lab answers
what the scenario expects, and agrees with the model message by message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imsim.model import scenario
from lab import run, targets
from tests.lab.billing_fixtures import ROOT, local_lab

pytestmark = pytest.mark.lab

REGRESSIONS = sorted((ROOT / "scenarios" / "regressions").glob("*.yaml"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with local_lab(tmp_path_factory.mktemp("regressions")) as folder:
        yield folder


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.stem)
def test_regression_plays_live_as_expected(lab, tmp_path, path):
    outcome = run.run(path, targets.load(lab / "local.yaml"), 100, tmp_path,
                      echo=lambda _: None)
    table = outcome.comparison.table
    assert outcome.comparison.ok, table.to_string()
    expected = scenario.load(path).expected
    lab_codes = dict(zip(table["msg_id"], table["lab_code"], strict=True))
    assert lab_codes == {msg_id: e.code for msg_id, e in expected.items()}
    billed = dict(zip(table["msg_id"], table["lab_xdrs"], strict=True))
    assert {m for m, e in expected.items() if e.billed} == {m for m, n in billed.items() if n}


def test_every_watcher_is_told_what_the_model_tells_it(lab, tmp_path):
    """Presence (issue 15 item 4): the handbook's four buddy-list watches, each told
    'open' in the model and live (before the driver's split, two of them were refused:
    their SUBSCRIBEs left pjsua from another account)."""
    outcome = run.run(ROOT / "scenarios" / "handbook.yaml", targets.load(lab / "local.yaml"),
                      100, tmp_path, echo=lambda _: None)
    presence = outcome.comparison.presence
    assert presence is not None and outcome.comparison.ok, presence
    assert sorted(zip(presence["watcher"], presence["presentity"], presence["lab"],
                      strict=True)) == [
        ("15551230001", "15551230002", "open"), ("15551230001", "15551230003", "open"),
        ("15551230002", "15551230001", "open"), ("15551230003", "15551230001", "open")]
