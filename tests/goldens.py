"""Golden summaries: every scenario under ``scenarios/`` run with its own seed.

    python -m tests.goldens            # diff every scenario against tests/golden/
    python -m tests.goldens --update   # rewrite the goldens after an intended change

``tests/test_sim_golden.py`` runs the same diff. A golden is the run's
``summary.json`` without what varies from run to run (wall-clock time).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
GOLDEN = ROOT / "tests" / "golden"
VOLATILE = ("runtime_s",)


def scenario_files() -> list[Path]:
    return sorted(SCENARIOS.rglob("*.yaml"))


def golden_path(scenario_file: Path) -> Path:
    return GOLDEN / scenario_file.relative_to(SCENARIOS).with_suffix(".json")


def summary_of(scenario_file: Path) -> dict[str, Any]:
    from imsim import sim
    from imsim.model import scenario

    summary = sim.run(scenario.load(scenario_file)).summary
    return {k: v for k, v in summary.items() if k not in VOLATILE}


def render(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True) + "\n"


def diff(scenario_file: Path) -> str:
    """'' when the run matches its golden, else a unified diff (or the missing file)."""
    path = golden_path(scenario_file)
    actual = render(summary_of(scenario_file))
    if not path.exists():
        return f"no golden {path}: run python -m tests.goldens --update\n"
    expected = path.read_text()
    if expected == actual:
        return ""
    return "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                        str(path), "this run"))


def update(scenario_file: Path) -> Path:
    path = golden_path(scenario_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(summary_of(scenario_file)))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--update", action="store_true", help="rewrite the golden files")
    args = parser.parse_args(argv)
    failed = 0
    for scenario_file in scenario_files():
        if args.update:
            print(f"wrote {update(scenario_file).relative_to(ROOT)}")
            continue
        text = diff(scenario_file)
        failed += bool(text)
        print(text or f"ok {scenario_file.relative_to(ROOT)}", end="" if text else "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
