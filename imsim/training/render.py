"""The trainer's report as text, Markdown or HTML: the handbook checklist with boxes,
the journal's refused entries, the diagnosis and the test-message outcomes."""

from __future__ import annotations

import html

from imsim.model.config import STEP_TITLES
from imsim.model.setup import Applied
from imsim.training.checklist import SECTIONS, StepState
from imsim.training.diagnosis import NOTE, UNBILLED, Finding
from imsim.training.trainer import Outcome, Report

FORMATS = ("text", "markdown", "html")


def verdict(report: Report) -> str:
    return "the service works" if report.works else "the service does NOT work"


def step_line(state: StepState) -> str:
    line = f"{state.mark} {state.step}. {STEP_TITLES[state.step]}"
    if state.before:
        line += f"  (out of order: done before step {', '.join(map(str, state.before))})"
    return line


def outcome_line(o: Outcome) -> str:
    line = f"{o.msg_id} at {o.at:g} s {o.sender} -> {o.to}: {o.code} {o.reason}"
    if o.step:
        line += f" [step {o.step}]"
    if o.delivered:
        line += " billed" if o.billed else " NOT billed"
    if o.expected:
        line += f"  (expected {o.expected}: {'ok' if o.as_expected else 'MISMATCH'})"
    return line


def finding_line(f: Finding) -> str:
    sign = {NOTE: "note", UNBILLED: "unbilled"}.get(f.severity, "breaks")
    step = f"step {f.step}" if f.step else "no step"
    return f"{sign}: {step} [{f.check}] {f.problem}. Fix: {f.fix}"


def refused_line(e: Applied) -> str:
    return f"#{e.index} at {e.at:g} s {e.action} (step {e.step}): refused: {e.refused}"


def sections(report: Report) -> list[tuple[str, list[str]]]:
    """The report as (heading, lines) pairs, shared by every format."""
    out: list[tuple[str, list[str]]] = []
    for env, states in report.steps.items():
        lines: list[str] = []
        for title, numbers in SECTIONS:
            lines.append(f"## {title}")
            lines += [step_line(states[n]) for n in numbers]
        out.append((f"Checklist: environment {env} ({report.domains[env]})", lines))
    if report.refused:
        out.append(("Journal entries the admin interface refused",
                    [refused_line(e) for e in report.refused]))
    findings = [finding_line(f) for f in report.findings] or ["nothing wrong found"]
    out.append(("Diagnosis", findings))
    outcomes = [outcome_line(o) for o in report.outcomes] or ["no test messages in the script"]
    if report.unexplained:
        outcomes.append("WARNING: refusals the diagnosis does not explain: "
                        + ", ".join(o.msg_id for o in report.unexplained))
    out.append(("Test messages, sent through the simulator", outcomes))
    return out


def render(report: Report, fmt: str = "text") -> str:
    if fmt == "markdown":
        return _markdown(report)
    if fmt == "html":
        return _html(report)
    return _text(report)


def _text(report: Report) -> str:
    lines = [f"imsim check: {report.scenario}: {verdict(report)}", ""]
    for heading, body in sections(report):
        lines.append(heading)
        lines += [f"  {line[3:]}" if line.startswith("## ") else f"    {line}" for line in body]
        lines.append("")
    return "\n".join(lines)


def _markdown(report: Report) -> str:
    lines = [f"# imsim check: {report.scenario}", "", f"**{verdict(report)}**", ""]
    for heading, body in sections(report):
        lines += [f"## {heading}", ""]
        for line in body:
            lines.append(f"**{line[3:]}**" if line.startswith("## ") else f"- {line}")
        lines.append("")
    return "\n".join(lines)


def _html(report: Report) -> str:
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>imsim check: {esc(report.scenario)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             "li{font-family:monospace;list-style:none}.bad{color:#b00}.ok{color:#070}</style>",
             "</head><body>", f"<h1>imsim check: {esc(report.scenario)}</h1>",
             f"<p class='{'ok' if report.works else 'bad'}'><b>{esc(verdict(report))}</b></p>"]
    for heading, body in sections(report):
        parts.append(f"<h2>{esc(heading)}</h2><ul>")
        for line in body:
            if line.startswith("## "):
                parts.append(f"</ul><h3>{esc(line[3:])}</h3><ul>")
            else:
                parts.append(f"<li>{esc(line)}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
