"""`imsim lab run` against the real stack: lab and model agree message by message.

One stack (Kamailio + the imsim billing service) for the module, re-provisioned per
scenario; scripts played at high speed (the billing service's clock follows the same
epoch and speed, so journal changes take effect at the same scenario seconds).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from imsim.model import scenario
from lab import run, targets
from tests.lab.billing_fixtures import HANDBOOK, ROOT, local_lab

pytestmark = pytest.mark.lab

TRAINING = sorted((ROOT / "scenarios" / "training").glob("*.yaml"))
FAST = 1000.0  # scenario seconds per second: a 900 s training script in 0.9 s


def quiet(line: str) -> None:
    pass


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The module's runtime folder; holds `local.yaml`, a target on free ports."""
    with local_lab(tmp_path_factory.mktemp("lab-run")) as folder:
        yield folder


def play(lab: Path, scenario: Path, out: Path, speed: float = FAST,
         target: Path | None = None, **options: object) -> run.Outcome:
    return run.run(scenario, targets.load(target or lab / "local.yaml"), speed, out,
                   echo=quiet, **options)  # type: ignore[arg-type]


def imsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imsim", "lab", "run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def variant(folder: Path, name: str, change: object) -> Path:
    """A copy of the handbook scenario, changed by ``change(document)``."""
    yaml = YAML(typ="safe")
    document = yaml.load(HANDBOOK.read_text())
    change(document)  # type: ignore[operator]
    path = folder / f"{name}.yaml"
    with path.open("w") as handle:
        yaml.dump(document, handle)
    return path


def test_handbook_agrees_with_the_model(lab, tmp_path):
    outcome = play(lab, HANDBOOK, tmp_path, speed=200)
    result = outcome.comparison
    assert result.ok, result.table.to_string()
    assert result.summary["agreement"] == 100.0 and result.summary["messages"] == 5
    assert list(result.table["lab_code"]) == [200, 200, 200, 403, 404]
    assert list(result.table["lab_rate_code"]) == ["1555", "1555", "1555", None, None]
    assert result.summary["lab_amount"] == result.summary["model_amount"] == "0.030000"
    recon = result.reconciliation
    assert recon is not None and recon["clean"]
    assert (recon["answered_2xx"], recon["customer_xdrs"]) == (3, 3)
    assert result.meta["model seed"] == scenario.load(HANDBOOK).sim.seed  # as `imsim run`
    written = {p.name for p in tmp_path.iterdir()}
    assert {"records.jsonl", "lab_xdrs.csv", "compare.csv", "report.md", "report.html",
            "accounting.jsonl", "model"} <= written


def test_a_wrong_password_is_refused_live_as_in_the_model(lab, tmp_path):
    scenario = variant(tmp_path, "wrong-password", lambda d: d["traffic"]["script"].append(
        {"id": "w1", "at": 60, "from": "15551230001", "to": "15551230002", "body": "x",
         "password": "not-alice"}))
    result = play(lab, scenario, tmp_path / "out", speed=200).comparison
    assert result.ok, result.table.to_string()
    row = result.table.set_index("msg_id").loc["w1"]
    assert (row["model_code"], row["lab_code"], row["lab_xdrs"]) == (403, 403, 0)


def test_cli_run_remote_targets_and_a_tampered_model(lab, tmp_path):
    """CLI end to end on the handbook; then the same run read back through a remote
    target's CSV export, and the export compared with a model whose price differs (exit
    1, per-message diff). A remote JSON API: test_lab_run_portabilling_live.py."""
    out = tmp_path / "cli"
    done = imsim(str(HANDBOOK), "--target", str(lab / "local.yaml"), "--speed", "200",
                 "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RESULT: lab and model agree" in done.stdout
    assert "5/5 messages agree (100.0 %)" in (out / "report.md").read_text()
    assert "data:image/png;base64," in (out / "report.html").read_text()

    runtime = lab / "run"
    export = tmp_path / "export.csv"
    write_export(out / "lab_xdrs.csv", export)
    csv_target = tmp_path / "remote-csv.yaml"
    csv_target.write_text(remote_target(runtime, f"csv: {export}"))
    again = imsim(str(HANDBOOK), "--target", str(csv_target), "--out", str(out),
                  "--compare-only")
    assert again.returncode == 0, again.stdout + again.stderr

    dearer = variant(tmp_path, "dearer", lambda d: d["environments"][0]["tariffs"][1]
                     ["rates"][1].update(price=0.02))
    tampered = imsim(str(dearer), "--target", str(csv_target), "--out", str(out),
                     "--compare-only")
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "m1: amount 0.02 != 0.01" in tampered.stdout
    assert "RESULT: MISMATCH" in tampered.stdout
    assert "| m2 |" in (out / "report.md").read_text()


def remote_target(runtime: Path, source: str) -> str:
    state = YAML(typ="safe").load((runtime / "stack.json").read_text())
    return (f"kind: remote\nproxy: {{host: 127.0.0.1, port: {state['sip_port']}}}\n"
            f"domain: sip.example.com\naccounting: {runtime / 'acc'}\nxdrs: {{{source}}}\n")


def write_export(lab_xdrs: Path, export: Path) -> None:
    """The run's xDRs as a PortaBilling-style CSV export (some PortaBilling names)."""
    names = {"call_id": "h323_conf_id", "connect_time": "bill_time",
             "charged_quantity": "used_quantity"}
    with lab_xdrs.open(newline="") as source, export.open("w", newline="") as target:
        rows = list(csv.DictReader(source))
        writer = csv.DictWriter(target, [names.get(c, c) for c in rows[0]])
        writer.writeheader()
        for row in rows:
            row["connect_time"] = row["connect_time"][:19]  # 'YYYY-MM-DD HH:MM:SS', UTC
            writer.writerow({names.get(k, k): v for k, v in row.items()})


@pytest.mark.parametrize("scenario", TRAINING, ids=[p.stem for p in TRAINING])
def test_every_training_scenario_fails_live_exactly_as_in_the_model(lab, tmp_path, scenario):
    result = play(lab, scenario, tmp_path).comparison
    codes = result.table[["msg_id", "model_code", "lab_code"]].values.tolist()
    assert [(m, model) for m, model, _ in codes] == [(m, lab_) for m, _, lab_ in codes]
    assert result.ok, result.table.to_string()


def test_lab_up_then_run_reuses_the_stack(tmp_path):
    """`imsim lab up SCENARIO` records what it serves, so `lab run SCENARIO` reuses it
    instead of re-provisioning."""
    with local_lab(tmp_path) as folder:
        ports = targets.load(folder / "local.yaml").spec
        up = subprocess.run([sys.executable, "-m", "imsim", "lab", "up", str(HANDBOOK),
                             "--sip-port", str(ports.sip_port),  # type: ignore[union-attr]
                             "--billing-port", str(ports.billing_port)],  # type: ignore[union-attr]
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        said: list[str] = []
        outcome = run.run(HANDBOOK, targets.load(folder / "local.yaml"), 200.0,
                          tmp_path / "out", echo=said.append)
        assert outcome.comparison.ok
        assert said[0].startswith("reusing: "), said[:2]
