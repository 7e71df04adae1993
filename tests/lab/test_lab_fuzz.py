"""`lab.fuzz` without the live stack: bad input, and shrinking a disagreement to a
regression case. The "live" side here is the model with the lab's bug of issue 15
put back (every message to a domain other than the sender's own: 404, nothing
billed), so the harness must find it, shrink it and write it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from imsim import compare, sim
from imsim.model import generate, scenario
from lab.fuzz import Fuzz
from lab.targets import load as load_target
from tests.lab.billing_fixtures import ROOT


def imsim(*args: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imsim", "lab", "fuzz", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "IMSIM_LAB_DIR": str(folder)})


class OldAliasBug(Fuzz):
    """Plays the model as the lab before the fix: other recipient domains got 404."""

    def play(self, document: dict[str, Any], key: str) -> compare.Comparison:
        model = sim.run(generate.load(document), seed=0)
        lines = {line["id"]: line for line in document["traffic"]["script"]}
        moved = {m for m, line in lines.items() if "@" in line["to"]
                 and line["to"].split("@")[1] != line["from"].split("@")[1]}
        lab = model.messages.copy()
        hit = lab["msg_id"].isin(moved)
        lab.loc[hit, "code"], lab.loc[hit, "delivered_at"] = 404, math.nan
        xdrs = model.xdrs[~model.xdrs["msg_id"].isin(moved)]
        return compare.compare(model.messages, model.xdrs, lab, xdrs)


def test_a_disagreement_is_shrunk_to_a_regression_case(tmp_path):
    fuzz = OldAliasBug(load_target(None), tmp_path, shrink_seconds=120, echo=lambda _: None)
    tally = fuzz.run(examples=40, seed=0)
    assert not tally.ok and tally.agreement < 100
    case = tmp_path / "disagreement-0.yaml"
    found = scenario.load(case)
    [line] = found.traffic.script   # shrunk to the one message that shows it
    assert "@" in line.to and line.to.split("@")[1] != line.sender_domain
    assert found.expected[line.id].code == 200 and found.expected[line.id].billed
    assert f"#   {line.id}: code 200 != 404" in case.read_text()


def test_agreement_is_exit_0_material(tmp_path):
    class Agrees(OldAliasBug):
        def play(self, document: dict[str, Any], key: str) -> compare.Comparison:
            model = sim.run(generate.load(document), seed=0)
            return compare.compare(model.messages, model.xdrs, model.messages, model.xdrs)

    tally = Agrees(load_target(None), tmp_path, echo=lambda _: None).run(examples=5, seed=3)
    assert tally.ok and tally.scenarios == 5 and tally.agreement == 100.0
    assert not list(tmp_path.glob("disagreement-*"))


def test_bad_input_is_one_line_exit_2(tmp_path):
    for args, words in ((["--examples", "0"], "--examples 0"), (["--speed", "0"], "--speed 0"),
                        (["--shrink-seconds", "-1"], "--shrink-seconds -1"),
                        (["--target", str(tmp_path / "none.yaml")], "none.yaml")):
        done = imsim(*args, "--out", str(tmp_path / "out"), folder=tmp_path / "run")
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
