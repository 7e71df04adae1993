"""``imsim run``: the table, the files, the flags."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from imsim.cli import main
from imsim.rules.message import XDR_COLUMNS
from tests.helpers import HANDBOOK, ROOT


def test_run_writes_every_frame_and_the_summary(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(HANDBOOK), "--out", str(tmp_path), "--seed", "9"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["messages.csv", "presence.csv", "sip.csv", "summary.json",
                     "utilization.csv", "xdrs.csv"]
    assert tuple(pd.read_csv(tmp_path / "xdrs.csv").columns) == XDR_COLUMNS
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 9 and summary["messages"]["delivered"] == 3
    assert summary["config"]["sim"]["proxy"]["workers"] == 4
    out = capsys.readouterr().out
    assert "delivered" in out and "tariff B" in out


def test_parquet_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(HANDBOOK), "--out", str(tmp_path), "--format", "parquet",
                 "--quiet", "--until", "1m"]) == 0
    assert capsys.readouterr().out == ""
    assert len(pd.read_parquet(tmp_path / "messages.parquet")) == 5
    assert json.loads((tmp_path / "summary.json").read_text())["until"] == 60.0


@pytest.mark.parametrize("flags", [["--until", "soon"], ["--until", "0"], ["--seed", "-1"]])
def test_bad_flags_exit_2(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(HANDBOOK), *flags]) == 2
    assert capsys.readouterr().err.startswith("imsim: ")


def test_random_traffic_needs_until(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "scenarios" / "planning.yaml").read_text().replace("  until: 10m\n", "")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert main(["run", str(path)]) == 2
    assert "--until" in capsys.readouterr().err


def test_progress_follows_simulated_time() -> None:
    from imsim import sim
    from imsim.model import scenario

    seen: list[float] = []
    result = sim.run(scenario.load(HANDBOOK), progress=seen.append)
    assert len(seen) == 200 and seen[-1] == result.summary["until"]
    assert seen == sorted(seen)


@pytest.mark.parametrize("engine", ["fast", "simpy"])
def test_run_on_either_engine(engine: str, tmp_path: Path) -> None:
    assert main(["run", str(HANDBOOK), "--out", str(tmp_path), "--quiet",
                 "--engine", engine]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["sim"]["engine"] == engine
    assert summary["messages"]["delivered"] == 3


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_unknown_engine_exits_2(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, str(HANDBOOK), "--engine", "turbo"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("imsim: ") and "--engine" in err and len(err.splitlines()) == 1


def test_sweep_on_the_simpy_engine(tmp_path: Path) -> None:
    assert main(["sweep", str(HANDBOOK), "--vary", "sim.proxy.workers=1,2", "--workers", "0",
                 "--engine", "simpy", "--out", str(tmp_path), "--quiet"]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 2 and set(runs["delivered"]) == {3}
