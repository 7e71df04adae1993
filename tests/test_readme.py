"""The README's Python examples run as written, from a fresh checkout's root."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_python_examples():
    assert BLOCKS


def test_the_simpy_extension_example_runs_and_prints_its_answer():
    example = next(block for block in BLOCKS if "def outage(env)" in block)
    done = subprocess.run([sys.executable, "-c", example], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Answer(msg_id='user-1', code=200, reason='OK'" in done.stdout
