"""Every case `imsim lab fuzz` (or a user) found stays: each scenario under
scenarios/regressions/ states its expected outcome per message (``expected:``) and
the simulator gives exactly that. tests/lab/test_regressions_live.py plays the same
files live; tests/test_sim_golden.py keeps their summaries."""

import pytest

from imsim.model import scenario
from imsim.training.trainer import check
from tests.helpers import ROOT

REGRESSIONS = sorted((ROOT / "scenarios" / "regressions").glob("*.yaml"))


def test_the_alias_domain_case_is_kept():
    assert "alias-domains" in [p.stem for p in REGRESSIONS]


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.stem)
def test_regression_outcomes_are_as_expected(path):
    loaded = scenario.load(path)
    assert set(loaded.expected) == {m.id for m in loaded.traffic.script}
    report = check(loaded, seed=1)
    assert [o.msg_id for o in report.outcomes if not o.as_expected] == []
