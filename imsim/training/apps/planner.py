"""The planner as a point-and-click app: pick a scenario, move prices, elasticity and
bundle sizes, rate a month, read revenue, cost and margin and the plots.

```python
from imsim.training.apps.planner import PlannerApp
PlannerApp().widget
```

The changes are written into the scenario document at their YAML paths
(`imsim.planning.sweep.assign`, the path an ``imsim sweep --vary`` takes), validated by
`imsim.model.scenario.from_document`, and rated by `imsim.planning.month`: the app
computes no money itself.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w

from imsim import planning
from imsim.model.scenario import ScenarioError, from_document, parse_yaml
from imsim.planning import plots, sweep
from imsim.training.apps.widgets import STYLE, figure_png, project_root

SCENARIOS = {"per message": "scenarios/planning/per_message.yaml",
             "bundle": "scenarios/planning/bundle.yaml"}
MESSAGES = 200_000
ELASTICITY = ("traffic", "elasticity", "coefficient")


@dataclass
class Knob:
    """One value the planner may move: its YAML path, label and widget."""

    path: tuple[str | int, ...]
    widget: w.ValueWidget


def price_knobs(document: dict[str, Any]) -> list[Knob]:
    """A Unit Price field per rate of every customer tariff."""
    knobs = []
    for e, env in enumerate(document["environments"]):
        for t, tariff in enumerate(env.get("tariffs") or []):
            if tariff.get("applied_to") != "customer":
                continue
            for r, rate in enumerate(tariff.get("rates") or []):
                label = f"{tariff['name']}: {', '.join(map(str, rate['rate_codes']))}"
                box = w.BoundedFloatText(value=float(rate.get("price", 0)), min=0, max=100,
                                         step=0.001, description=label, style=STYLE)
                knobs.append(Knob(("environments", e, "tariffs", t, "rates", r, "price"), box))
    return knobs


def bundle_knobs(document: dict[str, Any]) -> list[Knob]:
    """A bundle size (messages included per account and month) per product."""
    knobs = []
    for e, env in enumerate(document["environments"]):
        for p, product in enumerate(env.get("products") or []):
            box = w.BoundedIntText(value=int(product.get("included_messages", 0)), min=0,
                                   max=10_000_000, description=f"{product['name']}: bundle",
                                   style=STYLE)
            knobs.append(Knob(("environments", e, "products", p, "included_messages"), box))
    return knobs


class PlannerApp:
    """The planner's screen. ``widget`` is what a notebook or Voila shows."""

    def __init__(self, root: Path | str | None = None, messages: int = MESSAGES,
                 seed: int = 0) -> None:
        self.root = Path(root) if root else project_root()
        self.messages, self.seed = messages, seed
        self.summary: dict[str, Any] | None = None
        self.pick = w.Dropdown(options=list(SCENARIOS), description="Scenario")
        self.pick.observe(lambda _: self.load(), names="value")
        self.factor = w.FloatSlider(value=1.0, min=0.25, max=3.0, step=0.05,
                                    description="Price factor", style=STYLE,
                                    readout_format=".2f", layout=w.Layout(width="44em"))
        self.elasticity = w.FloatSlider(value=0.0, min=-2.0, max=0.0, step=0.1,
                                        description="Elasticity coefficient", style=STYLE,
                                        layout=w.Layout(width="44em"))
        self.rate_button = w.Button(description="Rate a month", button_style="primary")
        self.rate_button.on_click(lambda _: self.rate())
        self.money = w.HTML()
        self.figures = w.HBox()
        self.knobs_box = w.VBox()
        self.widget = w.VBox([
            w.HTML("<h2>Tariff planning: what does a month earn and cost?</h2>"),
            self.pick, self.factor, self.elasticity, self.knobs_box, self.rate_button,
            self.money, self.figures])
        self.load()

    def load(self) -> None:
        """Read the chosen scenario; its prices, elasticity and bundles fill the fields."""
        self.source = self.root / SCENARIOS[self.pick.value]
        self.text = self.source.read_text(encoding="utf-8")
        self.document = parse_yaml(self.text, str(self.source))
        self.prices, self.bundles = price_knobs(self.document), bundle_knobs(self.document)
        elasticity = (self.document.get("traffic") or {}).get("elasticity")
        self.elasticity.disabled = elasticity is None
        self.elasticity.value = float(elasticity["coefficient"]) if elasticity else 0.0
        self.knobs_box.children = [
            w.HTML("<b>Unit prices of the customer tariffs (before the price factor)</b>"),
            *(k.widget for k in self.prices),
            w.HTML("<b>Bundles: messages included per account and month</b>"),
            *(k.widget for k in self.bundles)]
        self.money.value, self.figures.children, self.summary = "", (), None

    def changed(self) -> dict[str, Any]:
        """The scenario document with the fields' values written in."""
        document = parse_yaml(self.text, str(self.source))  # fresh: line numbers kept
        for knob in self.prices:
            sweep.assign(document, knob.path, round(knob.widget.value * self.factor.value, 6),
                         ".".join(map(str, knob.path)))
        for knob in self.bundles:
            sweep.assign(document, knob.path, int(knob.widget.value), "included_messages")
        if not self.elasticity.disabled:
            sweep.assign(document, ELASTICITY, float(self.elasticity.value), "elasticity")
        return document

    def rate(self) -> dict[str, Any] | None:
        """Rate a synthetic month of the changed scenario; show the money and the plots."""
        try:
            scenario = from_document(self.changed(), str(self.source))
        except ScenarioError as exc:
            self.money.value = f"<p style='color:#b00'>{html.escape(str(exc))}</p>"
            return None
        month = planning.month(scenario, messages=self.messages, seed=self.seed)
        self.summary = month.summary
        self.money.value = money_html(month.summary)
        assert month.messages is not None
        self.figures.children = [
            w.Image(value=figure_png(plots.revenue_by_destination(month.messages)),
                    format="png", layout=w.Layout(width="48%")),
            w.Image(value=figure_png(plots.outcomes(month.summary)), format="png",
                    layout=w.Layout(width="48%"))]
        return month.summary


def money_html(summary: dict[str, Any]) -> str:
    """Revenue, cost and margin of a month, in their currency (a row per currency when
    there are several: they are never added), and how many messages were billed."""
    several = summary["currency"].split("+") if "+" in summary["currency"] else []
    rows = [(f"_{c}", c) for c in several] or [("", summary["currency"])]
    table = "".join(
        "<tr>" + "".join(f"<td class='{key}' style='padding:0 1.5em;font-size:1.4em'>{key}: "
                         f"<b>{summary[key + suffix]:,.2f} {html.escape(currency)}</b></td>"
                         for key in ("revenue", "cost", "margin")) + "</tr>"
        for suffix, currency in rows)
    return (f"<table>{table}</table><p>{summary['messages']:,} messages in the "
            f"month, {summary['billed']:,} billed, {summary['included']:,} in bundles</p>")
