"""Where a scenario went wrong: `ScenarioError` with the file, the YAML path and
its line, the handbook step and the fix; and the helpers that find a path's line.

Below `imsim.model.scenario` and `imsim.model.references` (which both raise it), so neither
imports the other to report a problem.
"""

from __future__ import annotations

import re
from typing import Any

from imsim.model.config import STEP_TITLES

Path_ = tuple[str | int, ...]


class ScenarioError(Exception):
    """A scenario that cannot be used: where, which handbook step, and the fix."""

    def __init__(self, problem: str, *, source: str = "<scenario>", path: Path_ = (),
                 line: int | None = None, step: int | None = None, fix: str = "") -> None:
        self.problem, self.source, self.path = problem, source, path
        self.line, self.step, self.fix = line, step, fix
        super().__init__(self.render())

    @property
    def yaml_path(self) -> str:
        return format_path(self.path)

    def render(self) -> str:
        where = self.source + (f":{self.line}" if self.line else "")
        text = f"{where}: {self.yaml_path or '(top)'}: {self.problem}"
        if self.step:
            text += f" [handbook step {self.step}: {STEP_TITLES[self.step]}]"
        if self.fix:
            text += f". Fix: {self.fix}"
        return one_line(text)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(path: Path_) -> str:
    """``environments[0].tariffs[1].rates`` (odd keys quoted: ``["a b"]``)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _NAME.match(str(part)):
            out += f"[{str(part)!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def one_line(text: str) -> str:
    """Control characters (a newline in a key, say) shown escaped: errors stay one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def line_of(document: Any, path: Path_) -> int | None:
    """1-based line of the deepest part of ``path`` found in the document."""
    node, line = document, None
    for part in path:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and part in node:
                line = lc.key(part)[0] + 1 if lc else line
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                line = lc.item(part)[0] + 1 if lc else line
                node = node[part]
            else:
                break
        except (KeyError, TypeError, AttributeError):
            break
    if line is None and lc_line(node) is not None:
        line = lc_line(node)
    return line


def lc_line(node: Any) -> int | None:
    lc = getattr(node, "lc", None)
    return lc.line + 1 if lc is not None and lc.line is not None else None
