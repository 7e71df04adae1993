"""Small widget helpers shared by the apps: a form of handbook fields, lines of text,
a figure as an image, the project folder.

A `Form` is the admin interface's form for one action: each `Field` has the
handbook's label, a widget, and how its value becomes the action's field. The apps
read `Form.values()` and hand them to the rules (`TrainingSession.do`); nothing here
decides anything.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as w

LABEL = w.Layout(width="auto")
STYLE = {"description_width": "16em"}


def project_root(start: Path | None = None) -> Path:
    """The folder that holds ``scenarios/`` (the current one or a parent)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "scenarios").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]


def _text_value(value: Any) -> Any:
    text = str(value).strip()
    return text or None


def codes(value: Any) -> list[str] | None:
    """``"1, 44"`` -> ``["1", "44"]`` (the Rate Codes field: comma-separated)."""
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    return parts or None


@dataclass
class Field:
    """One form field: the action's key, the widget, and value -> action field."""

    key: str
    widget: w.ValueWidget
    convert: Callable[[Any], Any] = _text_value

    def value(self) -> Any:
        return self.convert(self.widget.value)


def text(key: str, label: str, value: str = "", placeholder: str = "",
         convert: Callable[[Any], Any] = _text_value) -> Field:
    box = w.Text(value=value, placeholder=placeholder, description=label, style=STYLE,
                 layout=w.Layout(width="34em"))
    return Field(key, box, convert)


def choice(key: str, label: str, options: Sequence[tuple[str, Any]], value: Any) -> Field:
    box = w.Dropdown(options=list(options), value=value, description=label, style=STYLE,
                     layout=w.Layout(width="34em"))
    return Field(key, box, lambda v: v)


def yes_no(key: str, label: str, value: bool) -> Field:
    return choice(key, label, [("Yes", True), ("No", False)], value)


def checkbox(key: str, label: str, value: bool) -> Field:
    box = w.Checkbox(value=value, description=label, style=STYLE, indent=True)
    return Field(key, box, bool)


def number(key: str, label: str, value: int) -> Field:
    box = w.IntText(value=value, description=label, style=STYLE, layout=w.Layout(width="24em"))
    return Field(key, box, int)


@dataclass
class Form:
    """The fields of one admin action and the button that saves it."""

    action: str
    button_label: str
    fields: list[Field] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.button = w.Button(description=self.button_label, button_style="primary",
                               layout=w.Layout(width="auto"))

    def values(self) -> dict[str, Any]:
        """The action's fields; an empty one is left out (the interface's default)."""
        chosen = {f.key: f.value() for f in self.fields}
        return {**self.fixed, **{k: v for k, v in chosen.items() if v is not None}}

    def widget_for(self, key: str) -> w.ValueWidget:
        return next(f.widget for f in self.fields if f.key == key)

    def box(self, heading: str = "") -> w.VBox:
        head = [w.HTML(f"<b>{html.escape(heading)}</b>")] if heading else []
        box = w.VBox([*head, *(f.widget for f in self.fields), self.button])
        box.add_class(f"form-{self.action}")  # a handle for browser tests and styles
        return box


def lines_html(lines: Sequence[str], css: str = "") -> str:
    """Lines of text as escaped HTML, one per row, monospace."""
    body = "<br>".join(html.escape(line) for line in lines)
    style = "font-family:monospace;white-space:pre-wrap;line-height:1.35"
    return f"<div class='{css}' style='{style}'>{body}</div>"


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (for a `widgets.Image`), then closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
