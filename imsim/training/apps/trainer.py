"""The trainer as a point-and-click app: the handbook's forms, the clock, the checklist
ticking, a test message with its SIP answer, billing and the diagnosis.

```python
from imsim.training.apps.trainer import TrainerApp
TrainerApp().widget          # the last expression of a notebook cell displays it
```

Every action goes through `imsim.training.trainer.TrainingSession` (the same validation,
refusals and words as ``imsim check``); the app only reads forms and shows reports.
An exercise (`Exercise`) replays a journal from ``scenarios/training/`` with its
description hidden; the trainee names the step that went wrong, fixes it and is scored.
"""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as w
from ruamel.yaml import YAML

from imsim.model.replay import Replay, replay
from imsim.model.scenario import ScenarioError
from imsim.model.setup import Applied
from imsim.training.apps import forms
from imsim.training.apps.exercise import Exercise, exercises
from imsim.training.apps.widgets import Form, lines_html, project_root
from imsim.training.render import finding_line, outcome_line, refused_line, sections
from imsim.training.trainer import Outcome, Report, TrainingSession

BASE = "scenarios/training/00_correct_order.yaml"
SEED = 1


def steps_done(report: Report, env: str) -> int:
    """How many of the nine steps are ticked ([x]: done, nothing wrong) in ``env``."""
    return sum(1 for state in report.steps[env].values() if state.mark == "[x]")


class TrainerApp:
    """The trainee's screen. ``widget`` is what a notebook or Voila shows."""

    def __init__(self, root: Path | str | None = None, base: str = BASE) -> None:
        self.root = Path(root) if root else project_root()
        self.session = TrainingSession.start(self.root / base)
        self.report = self.session.report(seed=SEED)
        self.exercise: Exercise | None = None
        self.forms = forms.by_step()
        self._build()
        self.refresh()

    # -- the screen -------------------------------------------------------------------

    def _build(self) -> None:
        self.env = w.Dropdown(options=self._env_names(), description="Environment",
                              style={"description_width": "7em"})
        self.clock = w.HTML()
        self.wait_for = w.Text(value="5m", description="Wait", layout=w.Layout(width="14em"))
        self.wait_button = w.Button(description="Wait")
        self.wait_button.on_click(lambda _: self.wait())
        self.answer, self.checklist, self.journal = w.HTML(), w.HTML(), w.HTML()
        self._test_panel()
        self.tabs = self._tabs()
        self.exercise_box = self._exercise_box()
        self.widget = w.VBox([
            w.HTML("<h2>Instant Messaging setup: the nine steps</h2>"),
            w.HBox([self.env, self.wait_for, self.wait_button]), self.clock,
            w.HBox([self.tabs, w.VBox([self.checklist], layout=w.Layout(width="34em"))]),
            self.answer,
            w.HTML("<h3>Step 9: send an instant test message</h3>"),
            w.HBox([self.sender, self.to, self.send_button]),
            self.test,
            self.exercise_box,
            w.HTML("<h3>Journal: what was done</h3>"), self.journal])

    def _test_panel(self) -> None:
        self.sender = w.Text(value="15551230001", description="From")
        self.to = w.Text(value="15551230002", description="To")
        self.send_button = w.Button(description="Send a test message", button_style="success")
        self.send_button.on_click(lambda _: self.send())
        self.test = w.HTML()

    def _tabs(self) -> w.Tab:
        pages = []
        for step, entries in self.forms.items():
            for _, form in entries:
                form.button.on_click(lambda _, f=form: self.submit(f))
            pages.append(w.VBox([w.HTML(f"<h3>{html.escape(forms.title(step))}</h3>"),
                                 *(form.box(heading) for heading, form in entries)]))
        tabs = w.Tab(children=pages, layout=w.Layout(width="54em"))
        for index, step in enumerate(self.forms):
            tabs.set_title(index, forms.SHORT_TITLES[step])
        return tabs

    def _exercise_box(self) -> w.VBox:
        self.pick = w.Dropdown(options=exercises(self.root), description="Exercise")
        self.load_button = w.Button(description="Load the exercise")
        self.load_button.on_click(lambda _: self.load_exercise(self.pick.value))
        self.guess = w.Dropdown(options=[(f"step {n}", n) for n in range(1, 10)],
                                description="Wrong step")
        self.guess_button = w.Button(description="This step went wrong")
        self.guess_button.on_click(lambda _: self.name_step(self.guess.value))
        self.score_button = w.Button(description="Score my attempt")
        self.score_button.on_click(lambda _: self.score_attempt())
        self.exercise_text = w.HTML()
        return w.VBox([w.HTML("<h3>Exercise: find and fix the mistake</h3>"),
                       w.HBox([self.pick, self.load_button]),
                       w.HBox([self.guess, self.guess_button, self.score_button]),
                       self.exercise_text])

    def _env_names(self) -> list[str]:
        return [env["name"] for env in self.session.document["environments"]]

    # -- actions ---------------------------------------------------------------------

    def form(self, step: int, action: str) -> Form:
        """The form of ``action`` under handbook step ``step``."""
        return next(f for _, f in self.forms[step] if f.action == action)

    def submit(self, form: Form) -> Applied | None:
        """Save a form: the action at the session clock, as the admin interface takes it."""
        fields = form.values()
        if self.env.value != self._env_names()[0]:
            fields["env"] = self.env.value
        try:
            applied = self.session.do(form.action, **fields)
        except ScenarioError as exc:
            self._say(f"not saved: {exc}", bad=True)
            return None
        if applied.ok:
            self._say(f"saved: {form.action} at {applied.at:g} s (step {applied.step})")
        else:
            self._say(refused_line(applied), bad=True)
        self.refresh()
        return applied

    def wait(self, duration: str | None = None) -> None:
        try:
            self.session.wait(duration or self.wait_for.value)
        except (ValueError, ScenarioError) as exc:
            self._say(f"cannot wait {duration or self.wait_for.value!r}: {exc}", bad=True)
            return
        self.refresh()

    def send(self) -> Outcome | None:
        """Send a test message now; show its SIP answer, billing and the diagnosis."""
        msg_id = self.session.send(self.sender.value.strip(), self.to.value.strip())
        try:
            self.report = self.session.report(seed=SEED)
        except ScenarioError as exc:
            self.session.document["traffic"]["script"].pop()
            self._say(f"not sent: {exc}", bad=True)
            return None
        outcome = next(o for o in self.report.outcomes if o.msg_id == msg_id)
        self.test.value = self._test_html(outcome)
        self.refresh(report=self.report)
        return outcome

    def _test_html(self, outcome: Outcome) -> str:
        good = outcome.delivered and outcome.billed
        billed = "billed" if outcome.billed else "NOT billed"
        head = (f"<p class='sip-answer' style='font-size:1.3em;color:"
                f"{'#070' if good else '#b00'}'><b>SIP answer: {outcome.code} "
                f"{html.escape(outcome.reason)} · {billed}</b></p>")
        findings = [finding_line(f) for f in self.report.findings
                    if f.env == outcome.env] or ["nothing wrong found"]
        return (head + lines_html([outcome_line(outcome)]) + "<h4>Diagnosis</h4>"
                + lines_html(findings, "diagnosis"))

    # -- what the trainee sees ---------------------------------------------------------

    def refresh(self, report: Report | None = None) -> None:
        """Re-read the session: clock, checklist, journal."""
        self.report = report or self.session.report(seed=SEED)
        built = self.session.scenario()
        done = replay(built.initial or built.environments, built.setup)
        self.clock.value = self._clock_html(built.propagation_delay, done)
        self.checklist.value = self._checklist_html()
        self.journal.value = self._journal_html(done)

    def _clock_html(self, delay: float, done: Replay) -> str:
        now = self.session.clock
        text = (f"Clock: <b>{_duration(now)}</b> after the start. Steps 1 and 2 reach "
                f"PortaSIP and RADIUS {_duration(delay)} after they are saved (the "
                "propagation delay); billing objects at once.")
        pending = [at + delay for at in done.propagated_at.get(self.env.value, [])
                   if at + delay > now]
        if pending:
            text += (f" <b class='pending'>Not in effect yet: the last change to steps 1-2 "
                     f"reaches PortaSIP at {_duration(max(pending))} "
                     f"({_duration(max(pending) - now)} from now).</b>")
        return f"<p class='clock'>{text}</p>"

    def _checklist_html(self) -> str:
        env = self.env.value
        (lines,) = [body for heading, body in sections(self.report)
                    if heading.startswith(f"Checklist: environment {env} ")]
        shown = [line[3:] if line.startswith("## ") else f"  {line}" for line in lines]
        done = steps_done(self.report, env)
        return (f"<h3 class='checklist-count'>Checklist: {done} of 9 steps done</h3>"
                + lines_html(shown, "checklist"))

    def _journal_html(self, done: Replay) -> str:
        lines = [refused_line(e) if not e.ok else
                 f"#{e.index} at {e.at:g} s {e.action} (step {e.step})" for e in done.entries]
        return lines_html(lines or ["nothing yet"])

    def _say(self, text: str, bad: bool = False) -> None:
        color = "#b00" if bad else "#070"
        self.answer.value = (f"<p class='answer' style='color:{color}'>"
                             f"{html.escape(text)}</p>")

    # -- exercise mode -----------------------------------------------------------------

    def load_exercise(self, path: str | Path) -> None:
        """Replay a training journal (its description hidden) as the starting point."""
        document = YAML(typ="safe").load(Path(path).read_text(encoding="utf-8"))
        self.exercise = Exercise.load(Path(path))
        self.session = self.exercise.session(document)
        self.env.options = self._env_names()
        self.test.value = ""
        self.exercise_text.value = (
            "<p>The admin did the steps as the journal below shows, and the service does "
            "not work as it should. Send a test message, read the diagnosis, name the step "
            "that went wrong, fix it and send a test message again.</p>")
        self.refresh()

    def name_step(self, step: int) -> bool:
        if self.exercise is None:
            self._say("load an exercise first", bad=True)
            return False
        right = self.exercise.name(step)
        self.exercise_text.value = (f"<p>step {step}: "
                                    f"{'right' if right else 'not this one, look again'}</p>")
        return right

    def score_attempt(self) -> int | None:
        if self.exercise is None:
            self._say("load an exercise first", bad=True)
            return None
        self.report = self.session.report(seed=SEED)
        score = self.exercise.score(self.report)
        self.exercise_text.value = f"<p class='score'><b>{html.escape(score.line)}</b></p>"
        return score.points


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
