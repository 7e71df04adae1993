"""Every command, fed a missing or unreadable file, a wrong flag or a bad value, answers
with one clear line and exit 2 — never a traceback, never a half-written result."""

import os
import subprocess
import sys

import pytest

from tests.helpers import HANDBOOK, ROOT

H = str(HANDBOOK)


def imsim(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "IMSIM_LAB_DIR": os.environ.get("IMSIM_TEST_LAB_DIR", "/nonexistent")}
    return subprocess.run([sys.executable, "-m", "imsim", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, env=env)


CASES = {
    # missing files
    "validate missing": ("validate", "missing.yaml"),
    "rate missing": ("rate", "missing.yaml", "--from", "1", "--to", "2"),
    "run missing": ("run", "missing.yaml"),
    "check missing": ("check", "missing.yaml"),
    "sweep missing": ("sweep", "missing.yaml", "--vary", "sim.proxy.workers=1,2"),
    "lab run missing": ("lab", "run", "missing.yaml"),
    "lab up missing": ("lab", "up", "missing.yaml"),
    # unreadable: a folder where a file is expected
    "validate folder": ("validate", "scenarios"),
    "run folder": ("run", "scenarios"),
    "check folder": ("check", "scenarios"),
    # wrong flags
    "validate flag": ("validate", H, "--nope"),
    "run flag": ("run", H, "--speed", "3"),
    "check flag": ("check", H, "--verbose"),
    "checklist flag": ("checklist", "--format", "pdf"),
    "lab flag": ("lab", "sideways"),
    "sweep flag": ("sweep", H, "--replicates", "2"),
    "no command": (),
    # bad values
    "run seed": ("run", H, "--seed", "minus-one"),
    "run until": ("run", H, "--until", "forever"),
    "run format": ("run", H, "--format", "xlsx"),
    "check format": ("check", H, "--format", "pdf"),
    "rate at": ("rate", H, "--from", "15551230001", "--to", "15551230002", "--at", "noon"),
    "rate length": ("rate", H, "--from", "15551230001", "--to", "15551230002", "--length", "-3"),
    "sweep vary path": ("sweep", H, "--vary", "environments[9].tariffs[0].rates[0].price=1",
                        "--workers", "0"),
    "sweep vary value": ("sweep", H, "--vary", "sim.proxy.workers=many", "--workers", "0"),
    "sweep vary shape": ("sweep", H, "--vary", "sim.proxy.workers", "--workers", "0"),
    "lab speed": ("lab", "run", H, "--speed", "0"),
    "lab target missing": ("lab", "run", H, "--target", "missing-target.yaml"),
    "lab port": ("lab", "up", H, "--sip-port", "70000"),
}


@pytest.mark.parametrize("args", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_and_exit_2(args, tmp_path):
    done = imsim(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and (lines[-1].startswith("imsim") or lines[0].startswith("usage:"))
    assert len([line for line in lines if line.startswith("imsim")]) == 1


@pytest.mark.parametrize("command", [("run", H), ("sweep", H, "--vary",
                                     "sim.proxy.workers=1,2", "--workers", "0"),
                                     ("lab", "run", H, "--compare-only")])
def test_unwritable_output_folder_is_one_line(command, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = imsim(*command, "--out", str(blocker / "out"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("imsim:")
