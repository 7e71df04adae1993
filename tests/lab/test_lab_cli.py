"""``imsim lab up|status|down`` as a user runs them (real processes, free ports)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lab import sip
from tests.lab.billing_fixtures import ROOT, free_tcp_port, require_kamailio
from tests.lab.fake_billing import free_port


def imsim(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imsim", "lab", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "IMSIM_LAB_DIR": str(folder)})


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.lab
def test_up_status_down(tmp_path):
    require_kamailio()
    folder, sip_port, billing_port = tmp_path / "run", free_port(), free_tcp_port()
    assert imsim(folder, "status").returncode == 1
    try:
        up = imsim(folder, "up", "--sip-port", str(sip_port), "--billing-port", str(billing_port))
        assert up.returncode == 0, up.stderr
        assert up.stdout.startswith("started:") and "scenario handbook" in up.stdout
        assert sip.options_ping("127.0.0.1", sip_port) == 200
        status = imsim(folder, "status")
        assert status.returncode == 0 and f"127.0.0.1:{sip_port}" in status.stdout
        assert "billing pid" in status.stdout and "scenario handbook" in status.stdout
        again = imsim(folder, "up", "--sip-port", str(free_port()))
        assert again.returncode == 0 and again.stdout.startswith("already running:")
        assert "alice-secret" not in "".join(p.read_text(errors="replace")
                                             for p in folder.rglob("*") if p.is_file()
                                             and not p.name.startswith("xdr"))
    finally:
        down = imsim(folder, "down")
    assert down.returncode == 0 and down.stdout.startswith("stopped: pids")
    pids = [int(p) for p in down.stdout.split("pids", 1)[1].replace(",", " ").split()]
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)
    assert imsim(folder, "status").returncode == 1
    assert imsim(folder, "down").stdout.startswith("lab stack was not running")


def test_errors_are_one_line_exit_2(tmp_path):
    folder = tmp_path / "run"
    for args, text in [(("up", str(tmp_path / "missing.yaml")), "no such file"),
                       (("up", "--sip-port", "0"), "--sip-port 0"),
                       (("up", "--speed", "0"), "--speed"),
                       (("sideways",), "invalid choice")]:
        done = imsim(folder, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and text in done.stderr
        assert "Traceback" not in done.stderr


def test_compare_only_without_an_earlier_run_is_one_line_exit_2(tmp_path):
    # --compare-only reads the records of the run in --out; a mistyped folder compared
    # nothing with the model and reported every message "not played in the lab"
    export = tmp_path / "xdrs.csv"
    export.write_text("account_id,CLI,CLD,connect_time,charged_amount\n")
    target = tmp_path / "remote.yaml"
    target.write_text(f"kind: remote\nproxy: {{host: 127.0.0.1, port: 5999}}\n"
                      f"xdrs: {{csv: {export}}}\n")
    out = tmp_path / "runs" / "typo"
    done = imsim(tmp_path / "run", "run", str(ROOT / "scenarios" / "handbook.yaml"),
                 "--target", str(target), "--out", str(out), "--compare-only")
    assert done.returncode == 2, done.stdout
    assert f"--out {out}: no records.jsonl of an earlier run" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_port_in_use_is_refused(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = imsim(tmp_path / "run", "up", "--sip-port", str(free_port()),
                     "--billing-port", str(port))
    assert done.returncode == 2 and f"--billing-port {port}" in done.stderr
