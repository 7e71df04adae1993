"""The widget apps, headless: set the fields, click the buttons, read what the screen
shows. The browser test (tests/browser) drives the same apps through Voila."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from imsim.training.apps.exercise import exercises  # noqa: E402
from imsim.training.apps.planner import PlannerApp, money_html  # noqa: E402
from imsim.training.apps.trainer import TrainerApp  # noqa: E402
from tests.helpers import ROOT  # noqa: E402

# The nine steps as a trainee types them: (step, action, {field: value}).
NINE_STEPS: list[tuple[int, str, dict[str, Any]]] = [
    (1, "enable_messaging", {}),
    (2, "create_service_policy", {"name": "policy A", "id": "im-sip"}),
    (3, "create_tariff", {"name": "tariff A"}),
    (4, "add_rate", {"tariff": "tariff A", "rate_codes": "|", "price": "0"}),
    (5, "add_connection", {"tariff": "tariff A", "service_policy": "policy A"}),
    (6, "create_tariff", {"name": "tariff B"}),
    (7, "add_rate", {"tariff": "tariff B", "rate_codes": "1, 44", "price": "0.02"}),
    (8, "include_service", {"product": "Softphone"}),
    (8, "add_usage_charge", {"product": "Softphone", "tariff": "tariff B"}),
]


def fill_and_save(app: TrainerApp, step: int, action: str, values: dict[str, Any]) -> None:
    form = app.form(step, action)
    for key, value in values.items():
        form.widget_for(key).value = value
    form.button.click()


@pytest.fixture(scope="module")
def done() -> TrainerApp:
    app = TrainerApp(ROOT)
    for step, action, values in NINE_STEPS:
        fill_and_save(app, step, action, values)
    app.wait_for.value = "10m"
    app.wait_button.click()
    app.send_button.click()
    return app


def test_the_nine_steps_by_form_tick_the_checklist(done: TrainerApp) -> None:
    assert "Checklist: 9 of 9 steps done" in done.checklist.value
    assert "[ ]" not in done.checklist.value and "[!]" not in done.checklist.value
    assert done.report.works


def test_the_test_message_shows_its_answer_billing_and_diagnosis(done: TrainerApp) -> None:
    (outcome,) = done.report.outcomes
    assert (outcome.code, outcome.billed, outcome.at) == (200, True, 600)
    assert "SIP answer: 200 OK" in done.test.value and "· billed" in done.test.value
    assert "nothing wrong found" in done.test.value


def test_the_clock_shows_the_time_and_the_propagation_delay(done: TrainerApp) -> None:
    assert "Clock: <b>10 min 0 s</b>" in done.clock.value
    assert "5 min 0 s after they are saved (the propagation delay)" in done.clock.value
    assert "Not in effect yet" not in done.clock.value


def test_the_journal_lists_every_saved_form(done: TrainerApp) -> None:
    assert done.journal.value.count(" at 0 s ") == 9
    assert "#8 at 0 s add_usage_charge (step 8)" in done.journal.value


def test_a_refused_action_shows_the_interface_words() -> None:
    app = TrainerApp(ROOT)
    fill_and_save(app, 4, "add_rate", {"tariff": "tariff A", "rate_codes": "|"})
    assert ("add_rate (step 7): refused: tariff &#x27;tariff A&#x27; does not exist yet: "
            "create it first") in app.answer.value
    assert "Checklist: 0 of 9 steps done" in app.checklist.value


def test_a_form_left_empty_is_not_saved_and_says_which_field() -> None:
    app = TrainerApp(ROOT)
    app.form(2, "create_service_policy").button.click()
    assert "not saved:" in app.answer.value and "setup[0]" in app.answer.value
    assert app.session.document["setup"] == []


def test_a_test_message_too_soon_is_refused_with_step_one() -> None:
    app = TrainerApp(ROOT)
    app.form(1, "enable_messaging").button.click()
    app.wait("1m")
    assert ("Not in effect yet: the last change to steps 1-2 reaches PortaSIP at 5 min 0 s "
            "(4 min 0 s from now)") in app.clock.value
    app.send_button.click()
    assert "SIP answer: 403" in app.test.value and "NOT billed" in app.test.value
    assert "breaks: step 1 [messaging_enabled]" in app.test.value


def test_exercise_labels_hide_the_mistake() -> None:
    labels = [label for label, _ in exercises(ROOT)]
    assert labels[0] == "Exercise 1" and all(label.startswith("Exercise ") for label in labels)
    paths = [path for _, path in exercises(ROOT)]
    assert not any(p.endswith(("00_correct_order.yaml", "23_customer_side_first.yaml"))
                   for p in paths)


def test_exercise_find_fix_and_score() -> None:
    app = TrainerApp(ROOT)
    app.load_exercise(ROOT / "scenarios/training/08_no_wildcard_rate.yaml")
    app.send_button.click()
    assert "SIP answer: 403" in app.test.value
    assert "breaks: step 4 [vendor_rate]" in app.test.value
    assert not app.name_step(7)
    app.guess.value = 4
    app.guess_button.click()
    assert "step 4: right" in app.exercise_text.value
    fill_and_save(app, 4, "add_rate", {"tariff": "tariff A", "rate_codes": "|", "price": "0"})
    app.send_button.click()
    assert "SIP answer: 200 OK" in app.test.value and "· billed" in app.test.value
    app.score_button.click()
    assert "score 100 of 100" in app.exercise_text.value
    assert "(2 tries)" in app.exercise_text.value


def test_exercise_not_fixed_scores_half() -> None:
    app = TrainerApp(ROOT)
    app.load_exercise(ROOT / "scenarios/training/01_messaging_not_enabled.yaml")
    assert app.name_step(1)
    assert app.score_attempt() == 50


@pytest.fixture(scope="module")
def planner() -> PlannerApp:
    return PlannerApp(ROOT, messages=20_000)


def test_planner_shows_revenue_cost_margin_and_plots(planner: PlannerApp) -> None:
    planner.rate_button.click()
    summary = planner.summary
    assert summary is not None
    assert summary["margin"] == pytest.approx(summary["revenue"] - summary["cost"])
    assert f"margin: <b>{summary['margin']:,.2f} USD</b>" in planner.money.value
    assert len(planner.figures.children) == 2
    assert all(bytes(image.value).startswith(b"\x89PNG") for image in planner.figures.children)


def test_planner_shows_each_currency_on_its_own_row() -> None:
    """A vendor paid in EUR and customers paying USD: no 'nan' total, a row each."""
    summary = {"currency": "EUR+USD", "revenue": float("nan"), "cost": float("nan"),
               "margin": float("nan"), "revenue_EUR": 0.0, "cost_EUR": 8.98,
               "margin_EUR": -8.98, "revenue_USD": 44.9, "cost_USD": 0.0,
               "margin_USD": 44.9, "messages": 2245, "billed": 2245, "included": 0}
    shown = money_html(summary)
    assert "nan" not in shown and shown.count("<tr>") == 2
    assert "cost: <b>8.98 EUR</b>" in shown and "revenue: <b>44.90 USD</b>" in shown


def test_planner_price_factor_moves_the_margin(planner: PlannerApp) -> None:
    planner.elasticity.value = 0.0
    planner.factor.value = 1.0
    base = planner.rate()
    planner.factor.value = 2.0
    dearer = planner.rate()
    assert base and dearer
    # no elasticity: the same messages are sent; dearer ones earn more (less than twice:
    # some prepaid balances run out sooner)
    assert dearer["messages"] == base["messages"]
    assert base["revenue"] < dearer["revenue"] <= 2 * base["revenue"]
    assert dearer["margin"] > base["margin"]
    planner.factor.value = 1.0


def test_planner_elasticity_lowers_demand_at_a_higher_price(planner: PlannerApp) -> None:
    planner.factor.value = 2.0
    planner.elasticity.value = 0.0
    flat = planner.rate()
    planner.elasticity.value = -1.0
    elastic = planner.rate()
    assert flat and elastic and elastic["messages"] < flat["messages"]
    planner.factor.value = 1.0


def test_planner_bundle_size_changes_what_is_included() -> None:
    app = PlannerApp(ROOT, messages=20_000)
    app.pick.value = "bundle"
    assert [k.widget.description for k in app.bundles] == [
        "Basic: bundle", "Plus: bundle", "Business: bundle"]
    with_bundles = app.rate()
    for knob in app.bundles:
        knob.widget.value = 0
    without = app.rate()
    assert with_bundles and without
    assert with_bundles["included"] > 0 and without["included"] == 0


def test_planner_bad_value_is_one_line_naming_it() -> None:
    app = PlannerApp(ROOT, messages=1_000)
    app.elasticity.value = -2.0
    app.document["traffic"]["elasticity"]["cap"] = 0  # as if the file said so
    app.text = app.text.replace("cap: 2", "cap: 0")
    assert app.rate() is None
    assert "elasticity" in app.money.value and "cap" in app.money.value
