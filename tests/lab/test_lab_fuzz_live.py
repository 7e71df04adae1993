"""`imsim lab fuzz` against the real stack (Kamailio + billing service + pjsua2), as CI
runs it: a fixed seed, a small budget, every generated scenario agrees 100 %."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from lab.stack import Stack
from tests.lab.billing_fixtures import ROOT, free_tcp_port, require_kamailio
from tests.lab.fake_billing import free_port

pytestmark = pytest.mark.lab
EXAMPLES = int(os.environ.get("IMSIM_LAB_FUZZ_EXAMPLES", "5"))


def test_generated_scenarios_agree_live(tmp_path):
    require_kamailio()
    target = tmp_path / "local.yaml"
    target.write_text(f"kind: local\nsip_port: {free_port()}\nbilling_port: {free_tcp_port()}\n")
    env = {**os.environ, "IMSIM_LAB_DIR": str(tmp_path / "run")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "imsim", "lab", "fuzz", "--examples", str(EXAMPLES),
             "--seed", "0", "--target", str(target), "--out", str(tmp_path / "out"),
             "--shrink-seconds", "0"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60 + 30 * EXAMPLES)
    finally:
        Stack(tmp_path / "run").down()
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = re.match(r"(\d+) scenarios, (\d+) messages, (\d+) agree \(100\.0 %\)", last)
    assert found, last
    assert int(found[1]) == EXAMPLES and int(found[2]) == int(found[3]) > 0
    assert not list((tmp_path / "out").glob("disagreement-*"))
