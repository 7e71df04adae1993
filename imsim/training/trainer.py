"""The setup-order trainer: checklist, diagnosis and the proof by test messages.

`check` replays the scenario's setup journal, fills in the handbook's checklist,
diagnoses every misconfiguration with its step and fix, then sends the scenario's
test messages through the simulator and reports what each one got. The diagnosis
must agree with what the messages did: every refused message is explained by a
finding on the same message-path check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from imsim.model.replay import replay
from imsim.model.setup import Applied
from imsim.training.checklist import StepState, fill
from imsim.training.diagnosis import BREAKS, NOTE, UNBILLED, Finding, diagnose, explains

if TYPE_CHECKING:
    from imsim.model.scenario import Scenario


@dataclass(frozen=True)
class Outcome:
    """What one test message got in the simulator."""

    msg_id: str
    env: str
    sender: str
    to: str
    at: float
    code: int
    reason: str
    step: int | None
    check: str
    billed: bool
    expected: str = ""
    as_expected: bool | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300


@dataclass
class Report:
    scenario: str
    domains: dict[str, str]
    steps: dict[str, dict[int, StepState]]
    findings: list[Finding]
    refused: list[Applied]
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Outcome]:
        """Refused test messages that no finding explains (should be none)."""
        return [o for o in self.outcomes if not o.delivered
                and not explains(self.findings, o.env, o.check, o.step)]

    @property
    def works(self) -> bool:
        """Every environment has the nine steps done and nothing that breaks the service."""
        if any(f.severity in (BREAKS, UNBILLED) for f in self.findings):
            return False
        if any(not s.done for env in self.steps.values() for s in env.values()):
            return False
        return all(o.as_expected is not False for o in self.outcomes)


def check(scenario: Scenario, seed: int | None = None) -> Report:
    """Checklist + diagnosis + proof through the simulator."""
    initial = scenario.initial or scenario.environments
    refused = [e for e in replay(initial, scenario.setup).entries if not e.ok]
    findings = diagnose(scenario)
    report = Report(scenario.name, {e.name: e.domain for e in scenario.environments},
                    fill(scenario), findings, refused)
    report.outcomes = prove(scenario, seed)
    _mark(report)
    return report


def _mark(report: Report) -> None:
    for finding in report.findings:
        if finding.step is not None and finding.severity != NOTE:
            report.steps[finding.env][finding.step].problems.append(finding.problem)
    for env, states in report.steps.items():
        sent = [o for o in report.outcomes if o.env == env]
        tested = states[9]
        tested.done = tested.done and any(o.delivered and o.billed for o in sent)
        if sent and not tested.done:
            tested.problems.append("no test message was delivered and billed")


def prove(scenario: Scenario, seed: int | None = None) -> list[Outcome]:
    """Send the scripted test messages through the simulator."""
    from imsim.sim import run

    result = run(scenario, seed=seed, quiet=True)
    billed = set(result.xdrs.loc[result.xdrs["direction"] == "outgoing", "msg_id"])
    outcomes = []
    for row in result.messages.to_dict("records"):
        outcomes.append(_outcome(scenario, row, row["msg_id"] in billed))
    return outcomes


def _outcome(scenario: Scenario, row: dict[str, Any], billed: bool) -> Outcome:
    step = None if pd.isna(row.get("step")) else int(row["step"])
    outcome = Outcome(str(row["msg_id"]), str(row["env"]), str(row["from"]), str(row["to"]),
                      float(row["sent_at"]), int(row["code"]), str(row["reason"]), step,
                      str(row.get("check", "")), billed)
    expected = scenario.expected.get(outcome.msg_id)
    if expected is None:
        return outcome
    ok = (expected.code == outcome.code and expected.step in (None, outcome.step)
          and expected.billed in (None, outcome.billed))
    text = f"{expected.code}" + (f" step {expected.step}" if expected.step else "")
    text += {True: " billed", False: " unbilled", None: ""}[expected.billed]
    return Outcome(**{**outcome.__dict__, "expected": text, "as_expected": ok})


class TrainingSession:
    """A trainee at the admin interface: perform actions one by one, watch the checklist.

    >>> session = TrainingSession.start("scenarios/training/00_correct_order.yaml")
    >>> session.do("enable_messaging")            # step 1, at the session clock
    >>> session.wait("5m"); session.send("15551230001", "15551230002")
    >>> print(session.report())                   # checklist, diagnosis, test messages
    """

    def __init__(self, document: dict[str, Any], source: str = "<training>") -> None:
        self.document, self.source = document, source
        self.clock = 0.0
        self.document["setup"] = []
        self.document.setdefault("traffic", {})["script"] = []
        self.document.pop("expected", None)

    @classmethod
    def start(cls, base: str | Path) -> TrainingSession:
        """Begin from a scenario's state before its journal (its ``environments``)."""
        from ruamel.yaml import YAML

        document = YAML(typ="safe").load(Path(base).read_text(encoding="utf-8"))
        return cls(document, str(base))

    def wait(self, duration: str | float) -> None:
        from imsim.model.units import parse_duration

        self.clock += parse_duration(duration)

    def do(self, action: str, **fields: Any) -> Applied:
        """Perform an admin action now; returns how the interface took it."""
        entry = {"action": action, "at": self.clock, **fields}
        self.document["setup"].append(entry)
        try:
            built = self.scenario()
        except Exception:
            self.document["setup"].pop()
            raise
        return replay(built.initial or built.environments, built.setup).entries[-1]

    def send(self, sender: str, to: str, body: str = "test message") -> str:
        """Schedule a test message now; returns its id."""
        script = self.document["traffic"]["script"]
        msg_id = f"test{len(script) + 1}"
        script.append({"id": msg_id, "at": self.clock, "from": sender, "to": to, "body": body})
        return msg_id

    def scenario(self) -> Scenario:
        from imsim.model.scenario import from_document

        return from_document(self.document, self.source)

    def report(self, seed: int | None = None) -> Report:
        return check(self.scenario(), seed=seed)
