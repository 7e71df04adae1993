"""Exercise mode: a training journal replayed with its description hidden; the trainee
names the step that went wrong and fixes it; the attempt is scored.

The step to find comes from the diagnosis of the journal as written
(`imsim.training.diagnosis.diagnose`), the fix is judged by the trainee's own report
(`Report.works`): the app restates neither rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imsim.model import scenario
from imsim.training.diagnosis import NOTE, diagnose
from imsim.training.trainer import Report, TrainingSession

FOUND, FIXED = 50, 50


def mistake_steps(path: Path) -> set[int]:
    """The handbook steps the diagnosis blames in the journal as written."""
    return {f.step for f in diagnose(scenario.load(path))
            if f.severity != NOTE and f.step is not None}


def exercises(root: Path) -> list[tuple[str, str]]:
    """(label, path) of every training journal with a mistake; labels hide the mistake."""
    paths = sorted((root / "scenarios" / "training").glob("*.yaml"))
    with_mistake = [p for p in paths if mistake_steps(p)]
    return [(f"Exercise {n}", str(p)) for n, p in enumerate(with_mistake, start=1)]


@dataclass
class Score:
    points: int
    line: str


@dataclass
class Exercise:
    path: Path
    steps: set[int]
    tries: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Exercise:
        return cls(path, mistake_steps(path))

    def session(self, document: dict[str, Any]) -> TrainingSession:
        """A session that has done the journal's actions at their times, then waited
        until the journal's first test message."""
        journal = list(document.get("setup") or [])
        script = list((document.get("traffic") or {}).get("script") or [])
        session = TrainingSession(document, str(self.path))
        for entry in journal:
            fields = dict(entry)
            session.clock = float(fields.pop("at", session.clock))
            session.do(fields.pop("action"), **fields)
        tests = [float(m["at"]) for m in script if "at" in m]
        session.clock = max([session.clock, *tests[:1]])
        return session

    def name(self, step: int) -> bool:
        """The trainee names a step; right when the diagnosis blames it."""
        self.tries.append(step)
        return step in self.steps

    def score(self, report: Report) -> Score:
        found = any(step in self.steps for step in self.tries)
        fixed = report.works
        points = FOUND * found + FIXED * fixed
        return Score(points, f"score {points} of 100: the step that went wrong "
                             f"{'named' if found else 'not named yet'} "
                             f"({len(self.tries)} tries); the service "
                             f"{'works' if fixed else 'does not work yet'}")
