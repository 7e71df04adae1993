"""End to end in a real browser: Debian's chromium driven by Playwright, the apps
served by Voila on 127.0.0.1 (`imsim.training.apps.serve`, started once per app and module).

A trainee does the nine steps by clicking and typing until the checklist shows 9 of 9
and the test message 200 and billed; an exercise shows the diagnosis step; the
planner's slider moves the margin; a mismatching lab report shows its differing
messages first. The screenshots go to a temporary folder, or, with
IMSIM_SCREENSHOTS=1, to docs/screenshots/ for the README (so a test run leaves the
checkout as it was)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imsim.training.apps import serve
from imsim.training.apps.exercise import exercises
from tests.helpers import ROOT

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (docs/screenshots/ with IMSIM_SCREENSHOTS=1)."""
    if os.environ.get("IMSIM_SCREENSHOTS") == "1":
        return ROOT / "docs" / "screenshots"
    return tmp_path_factory.mktemp("screenshots")

WAIT = 60_000  # ms: the kernel starts, imports imsim and builds the app

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)",
                allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def served(app: str) -> Iterator[str]:
    server = serve.start(app, ROOT)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def trainer_url() -> Iterator[str]:
    yield from served("trainer")


@pytest.fixture(scope="module")
def planner_url() -> Iterator[str]:
    yield from served("planner")


def open_page(browser: Any, url: str, ready: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(url, timeout=WAIT)
    page.get_by_role("button", name=ready).first.wait_for(timeout=WAIT)
    return page


def field(scope: Any, label: str, kind: str = "text", element: str = "input") -> Any:
    """The input of the visible ``kind`` widget labelled ``label`` inside ``scope``."""
    exact = re.compile(f"^{re.escape(label)}$")
    page = getattr(scope, "page", scope)  # a Locator knows its page; a Page is one
    return scope.locator(f".widget-{kind}:visible", has=page.locator(
        ".widget-label", has_text=exact)).locator(element)


def save(page: Any, tab: str, action: str, values: dict[str, str]) -> None:
    page.get_by_role("tab", name=tab).click()
    form = page.locator(f".form-{action}")
    for label, value in values.items():
        field(form, label).fill(value)
    form.get_by_role("button").click()
    expect(page.locator(".answer")).to_contain_text(f"saved: {action}", timeout=WAIT)


NINE_STEPS = [
    ("1 Messaging", "enable_messaging", {}),
    ("2 Policy", "create_service_policy", {"Policy Name": "policy A",
                                                   "Policy ID": "im-sip"}),
    ("3 Tariff A", "create_tariff", {"Name": "tariff A"}),
    ("4 Rates A", "add_rate", {"Tariff": "tariff A", "Rate Codes": "|", "Unit Price": "0"}),
    ("5 Connection", "add_connection", {"Tariff": "tariff A", "Service Policy": "policy A"}),
    ("6 Tariff B", "create_tariff", {"Name": "tariff B"}),
    ("7 Rates B", "add_rate", {"Tariff": "tariff B", "Rate Codes": "1", "Unit Price": "0.02"}),
    ("8 Product", "include_service", {"Product": "Softphone"}),
    ("8 Product", "add_usage_charge", {"Product": "Softphone", "Tariff": "tariff B"}),
]


def test_a_trainee_does_the_nine_steps_in_the_browser(browser: Any, trainer_url: str,
                                                      shots: Path) -> None:
    page = open_page(browser, trainer_url, "Send a test message")
    expect(page.locator(".checklist-count")).to_have_text("Checklist: 0 of 9 steps done")
    for tab, action, values in NINE_STEPS:
        save(page, tab, action, values)
    field(page, "Wait").fill("10m")
    page.get_by_role("button", name="Wait", exact=True).click()
    expect(page.locator(".clock")).to_contain_text("Clock: 10 min 0 s", timeout=WAIT)
    page.get_by_role("button", name="Send a test message").click()
    expect(page.locator(".sip-answer")).to_have_text("SIP answer: 200 OK · billed",
                                                     timeout=WAIT)
    expect(page.locator(".checklist-count")).to_have_text("Checklist: 9 of 9 steps done")
    page.screenshot(path=str(shots / "trainer.png"), full_page=True)
    page.close()


def test_an_exercise_shows_the_step_of_its_hidden_mistake(browser: Any, trainer_url: str,
                                                          shots: Path) -> None:
    labels = {Path(path).stem: label for label, path in exercises(ROOT)}
    page = open_page(browser, trainer_url, "Load the exercise")
    field(page, "Exercise", "dropdown", "select").select_option(
        label=labels["08_no_wildcard_rate"])
    page.get_by_role("button", name="Load the exercise").click()
    expect(page.locator(".checklist-count")).to_contain_text("steps done", timeout=WAIT)
    page.get_by_role("button", name="Send a test message").click()
    expect(page.locator(".sip-answer")).to_contain_text("SIP answer: 403", timeout=WAIT)
    expect(page.locator(".diagnosis")).to_contain_text("breaks: step 4 [vendor_rate]")
    page.screenshot(path=str(shots / "trainer-exercise.png"), full_page=True)
    page.close()


def test_the_planner_slider_moves_the_margin(browser: Any, planner_url: str,
                                             shots: Path) -> None:
    page = open_page(browser, planner_url, "Rate a month")
    page.get_by_role("button", name="Rate a month").click()
    margin = page.locator(".margin")
    expect(margin).to_contain_text("margin:", timeout=WAIT)
    before = margin.inner_text()
    slider = page.locator(".widget-hslider", has_text="Price factor")
    slider.locator(".noUi-handle").focus()
    for _ in range(10):
        slider.locator(".noUi-handle").press("ArrowRight")
    expect(slider.locator(".widget-readout")).to_have_text("1.50")
    page.get_by_role("button", name="Rate a month").click()
    expect(margin).not_to_have_text(before, timeout=WAIT)
    assert _amount(margin.inner_text()) > _amount(before)
    page.screenshot(path=str(shots / "planner.png"), full_page=True)
    page.close()


def _amount(text: str) -> float:
    return float(re.search(r"(-?[\d,]+\.\d+)", text).group(1).replace(",", ""))  # type: ignore[union-attr]


def test_a_mismatching_lab_report_shows_its_differences_first(browser: Any, tmp_path: Path,
                                                              shots: Path) -> None:
    from imsim import sim
    from imsim.model import scenario
    from imsim.training.lab_report import html_report
    from tests.helpers import HANDBOOK
    from tests.test_lab_report import mismatching

    report = tmp_path / "report.html"
    report.write_text(html_report(mismatching(sim.run(scenario.load(HANDBOOK), seed=0))))
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(report.as_uri())
    headings = page.locator("h2").all_inner_texts()
    assert headings[0] == "Messages that differ (2)"
    verdict = page.locator("#verdict").bounding_box()
    first = page.locator(".differs").first.bounding_box()
    assert verdict["y"] < first["y"] < 900, "the verdict, then a differing message, on screen"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1200
    page.screenshot(path=str(shots / "lab-report.png"), full_page=True)
    page.close()
