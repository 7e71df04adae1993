"""`imsim lab fuzz`: generated scenarios played through the model and the live stack.

    found = Fuzz(targets.load(None), Path("runs/fuzz"), speed=50).run(examples=15, seed=0)
    found.ok      # every message of every scenario agreed

Each scenario comes from `imsim.model.generate` (hypothesis, seeded), is written as YAML and
played with `lab.run.run` (the model, the live stack, `imsim.compare`): 100 % of its
messages must agree (code, delivered, xDRs, units, amount, tariff, rate code) and the
accounting must reconcile. On the first disagreement hypothesis shrinks the scenario,
playing each smaller candidate live, for at most ``shrink_seconds``; the smallest
scenario that still disagrees is written to ``out`` as a ready regression case:
``disagreement-<seed>.yaml`` (its ``expected:`` block holds the model's answers, the
differing messages are listed on top) with the live run's ``report.md`` and
``compare.csv`` beside it. Every played scenario's folder is under ``out/played/``.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seeded
from hypothesis.errors import HypothesisException
from tqdm import tqdm

from imsim import compare
from imsim.errors import UsageError
from imsim.model import generate
from lab import run as runs
from lab.targets import Target

Document = dict[str, Any]
Echo = Callable[[str], None]


class Disagreement(AssertionError):
    """The model and the live stack differ on a generated scenario (hypothesis shrinks)."""


@dataclass
class Found:
    """A scenario that disagreed: its document, comparison and run folder."""

    document: Document
    comparison: compare.Comparison
    folder: Path

    @property
    def size(self) -> tuple[int, int, int, int]:
        """Smaller is simpler: messages, environments, accounts, YAML length."""
        envs = self.document["environments"]
        accounts = sum(len(c["accounts"]) for e in envs for c in e["customers"])
        return (len(self.document["traffic"]["script"]), len(envs), accounts,
                len(generate.dump(self.document)))


@dataclass
class Tally:
    """What the generated (not shrunk) scenarios gave."""

    scenarios: int = 0
    messages: int = 0
    agreed: int = 0
    seconds: float = 0.0
    found: list[Found] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.found

    @property
    def agreement(self) -> float:
        return 100.0 * self.agreed / self.messages if self.messages else 100.0

    def line(self) -> str:
        rate = self.scenarios / self.seconds * 60 if self.seconds else 0.0
        return (f"{self.scenarios} scenarios, {self.messages} messages, "
                f"{self.agreed} agree ({self.agreement:.1f} %), {rate:.1f} scenarios/min")


class Fuzz:
    """Plays generated scenarios against ``target`` at ``speed``; results under ``out``."""

    def __init__(self, target: Target, out: Path, speed: float = 50.0,
                 shrink_seconds: float = 600.0, echo: Echo = print) -> None:
        if not 0 < speed <= 1e6:
            raise UsageError(f"--speed {speed}: must be > 0")
        self.target, self.out, self.speed = target, Path(out), speed
        self.shrink_seconds, self.echo = shrink_seconds, echo
        self.tally = Tally()
        self.failing: dict[str, Found] = {}
        self.shrinking_since: float | None = None
        self.bar: tqdm | None = None
        self.broken: UsageError | None = None

    def run(self, examples: int, seed: int) -> Tally:
        """Play ``examples`` scenarios drawn from ``seed``; shrink the first disagreement."""
        if not 1 <= examples <= 100_000:
            raise UsageError(f"--examples {examples}: from 1 to 100000")
        (self.out / "played").mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with tqdm(total=examples, desc="lab fuzz", unit="scenario") as self.bar:
            self._search(examples, seed)
        if self.broken is not None:
            raise self.broken
        self.tally.seconds = time.monotonic() - started
        if self.failing:
            smallest = min(self.failing.values(), key=lambda f: f.size)
            self.tally.found.append(smallest)
            self.echo(f"disagreement: {write_case(smallest, self.out, seed)}")
        self.echo(self.tally.line())
        return self.tally

    def _search(self, examples: int, seed: int) -> None:
        @seeded(seed)
        @settings(max_examples=examples, database=None, deadline=None,
                  phases=[Phase.generate, Phase.shrink],
                  suppress_health_check=list(HealthCheck))
        @given(generate.documents())
        def play(document: Document) -> None:
            self.check(document)

        try:
            play()
        except (Disagreement, UsageError, HypothesisException):   # kept in self
            pass

    def check(self, document: Document) -> None:
        """The property: the live stack agrees with the model on ``document``. A
        scenario seen disagreeing fails again without playing (hypothesis replays its
        smallest one); past ``shrink_seconds`` of shrinking, new ones are not played."""
        if self.broken is not None:   # the stack cannot play: fail fast, no shrinking
            raise self.broken
        key = hashlib.sha256(generate.dump(document).encode()).hexdigest()[:16]
        since = self.shrinking_since
        if key not in self.failing and (since is None or
                                        time.monotonic() - since <= self.shrink_seconds):
            self._try(document, key, shrinking=since is not None)
        if key in self.failing:   # one raise: hypothesis wants one origin per failure
            raise Disagreement(key)

    def _try(self, document: Document, key: str, shrinking: bool) -> None:
        try:
            comparison = self.play(document, key)
        except UsageError as exc:
            self.broken = exc
            raise
        if not shrinking:
            self._count(comparison)
        if not comparison.ok:
            self.failing[key] = Found(document, comparison, self.out / "played" / key)
            if self.shrinking_since is None:
                self.shrinking_since = time.monotonic()

    def play(self, document: Document, key: str) -> compare.Comparison:
        folder = self.out / "played" / key
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "scenario.yaml"
        path.write_text(generate.dump(document), encoding="utf-8")
        outcome = runs.run(path, self.target, self.speed, folder, echo=lambda _: None)
        return outcome.comparison

    def _count(self, comparison: compare.Comparison) -> None:
        summary = comparison.summary
        self.tally.scenarios += 1
        self.tally.messages += int(summary["messages"])
        self.tally.agreed += int(summary["messages"]) - int(summary["mismatched"])
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.tally.agreement:.1f} % agree"
                                     + (", shrinking" if self.failing else ""))


def write_case(found: Found, out: Path, seed: int) -> Path:
    """The regression case: the scenario with the model's answers as ``expected:``, the
    differing messages on top, the live run's report beside it."""
    table = found.comparison.table
    document = dict(found.document, name=f"disagreement-{seed}",
                    description="found by imsim lab fuzz: model and live stack differ")
    document["expected"] = {str(row.msg_id): _expected(row)
                            for row in table.itertuples(index=False)}
    lines = ["# Found by `imsim lab fuzz`: the model and the live stack disagree on:"]
    lines += [f"#   {row.msg_id}: {row.diff}" for row in table.itertuples(index=False)
              if not row.match]
    lines += _other_differences(found.comparison)
    lines += ["# expected: holds the MODEL's answers; decide from the handbook and",
              "# lab/CONTRACT.md which side is right before keeping it under",
              "# scenarios/regressions/.", ""]
    path = out / f"disagreement-{seed}.yaml"
    path.write_text("\n".join(lines) + generate.dump(document), encoding="utf-8")
    for name in ("report.md", "compare.csv"):
        if (found.folder / name).exists():
            shutil.copy(found.folder / name, out / f"disagreement-{seed}.{name}")
    return path


def _other_differences(comparison: compare.Comparison) -> list[str]:
    """Presence pairs that differ, and accounting that does not reconcile."""
    lines = []
    if comparison.presence is not None:
        lines += [f"#   presence, {r.watcher} watching {r.presentity}: model {r.model}, "
                  f"lab {r.lab}" for r in comparison.presence.itertuples(index=False)
                  if not r.match]
    recon = comparison.reconciliation
    if recon is not None and not recon["clean"]:
        lines += [f"#   accounting: {key} {', '.join(recon[key][:10])}"
                  for key in ("lost", "duplicated", "orphans") if recon[key]]
    return lines


def _expected(row: Any) -> dict[str, Any]:
    code = int(row.model_code) if row.model_code is not None else 0
    if 200 <= code < 300:
        return {"code": code, "billed": bool(row.model_xdrs)}
    return {"code": code}
