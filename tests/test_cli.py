"""The command line as a user meets it: real processes, exit codes, one-line errors."""

import copy
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import HANDBOOK, ROOT, handbook_document


def imsim(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imsim", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_validate_prints_ok_and_counts():
    done = imsim("validate", str(HANDBOOK))
    assert done.returncode == 0
    assert done.stdout.startswith("ok: handbook: 1 environments")
    assert "3 accounts" in done.stdout


def test_validate_bad_scenario_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(HANDBOOK.read_text().replace("price: 0.05", "price: -0.05"))
    done = imsim("validate", str(bad))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "tariffs[1].rates[2].price" in done.stderr and "step 7" in done.stderr


@pytest.mark.parametrize("args", [
    ("validate", "missing.yaml"),
    ("validate",),
    ("nonsense",),
    ("rate", str(HANDBOOK), "--from", "15551230001", "--to", "1", "--at", "yesterday"),
    ("rate", str(HANDBOOK), "--from", "19999999999", "--to", "15551230002"),
    ("rate", str(HANDBOOK), "--from", "15551230001", "--to", "15551230002", "--length", "x"),
])
def test_bad_input_is_one_clear_line_and_exit_2(args):
    done = imsim(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith(("imsim:", "usage:"))


def test_unreadable_file_is_exit_2(tmp_path):
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    done = imsim("validate", str(folder))
    assert done.returncode == 2 and "is a folder" in done.stderr


def test_rate_prints_one_json_object():
    done = imsim("rate", str(HANDBOOK), "--from", "15551230001", "--to", "+1 555 123 0002",
                 "--length", "12")
    assert done.returncode == 0
    assert json.loads(done.stdout) == {
        "code": 200, "reason": "OK", "step": None, "rate_code": "1555", "units": 1,
        "unit_price": "0.01", "charged_amount": "0.01", "currency": "USD"}


def test_rate_off_peak_and_domain():
    saturday = "2026-01-10T12:00:00+00:00"
    done = imsim("rate", str(HANDBOOK), "--from", "15551230002",
                 "--to", "12125550100@sip.example.com", "--at", saturday)
    answer = json.loads(done.stdout)
    assert (answer["code"], answer["charged_amount"]) == (404, "0")
    assert done.returncode == 1  # refused: "no", as the README's exit codes say


def test_rate_from_an_account_of_another_environment_by_its_domain(tmp_path):
    # the same numbers in a second environment, where tariff B charges 0.03 on-net:
    # --from NUMBER@DOMAIN picks the environment, as a script's `from` does
    document = handbook_document()
    second = copy.deepcopy(document["environments"][0])
    second.update(name="second", domain="second.example.com")
    second["tariffs"][1]["rates"][1]["price"] = 0.03
    document["environments"].append(second)
    path = tmp_path / "two.yaml"
    path.write_text(json.dumps(document, default=str))
    amounts = []
    for sender in ("15551230001", "15551230001@Second.example.com",
                   "+1 555 123 0001@sip.example.com"):
        done = imsim("rate", str(path), "--from", sender, "--to", "15551230002")
        assert done.returncode == 0, done.stderr
        amounts.append(json.loads(done.stdout)["charged_amount"])
    assert amounts == ["0.01", "0.03", "0.01"]
    done = imsim("rate", str(path), "--from", "15551230001@nowhere.example.com", "--to", "1")
    assert done.returncode == 2
    assert "--from 15551230001@nowhere.example.com: no such account" in done.stderr


def test_rate_refusal_names_the_step():
    done = imsim("rate", str(HANDBOOK), "--from", "15551230003", "--to", "15551230001")
    answer = json.loads(done.stdout)
    assert (answer["code"], answer["step"], answer["charged_amount"]) == (403, 8, "0")
    assert done.returncode == 1


@pytest.mark.parametrize(("at", "code", "step"), [
    ("2026-01-05T09:02:00+00:00", 403, 1),   # Messaging enabled at 0 s, propagated at 300 s
    ("2026-01-05T09:00:30+00:00", 403, 1),
    ("2026-01-05T09:10:00+00:00", 200, None),
])
def test_rate_at_a_moment_uses_the_configuration_in_effect_then(at, code, step):
    """21_test_too_soon's journal enables Messaging at its start; the handbook's 'several
    minutes' (propagation_delay: 5m) pass before PortaSIP knows: `rate --at` answers as
    the simulator does at that moment, not with the configuration the journal ends in."""
    done = imsim("rate", str(ROOT / "scenarios/training/21_test_too_soon.yaml"),
                 "--from", "15551230001", "--to", "15551230002", "--at", at)
    answer = json.loads(done.stdout)
    assert (answer["code"], answer["step"]) == (code, step)
