"""The setup-order trainer: every training scenario's test messages get what the scenario
expects in the simulator, the diagnosis explains each refusal, the checklist tells."""

import subprocess
import sys

import pytest

from imsim.model import scenario
from imsim.training.render import render
from imsim.training.trainer import TrainingSession, check
from tests.helpers import HANDBOOK, ROOT

TRAINING = sorted((ROOT / "scenarios" / "training").glob("*.yaml"))
WORKING = {"00_correct_order", "23_customer_side_first", "24_messaging_enabled_last"}


def test_there_is_a_training_scenario_per_failure_mode():
    assert len(TRAINING) >= 15
    assert all(scenario.load(p).expected for p in TRAINING)


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_training_scenario_outcomes_and_diagnosis(path):
    report = check(scenario.load(path), seed=1)
    assert report.outcomes, "the scenario sends test messages"
    assert [o.msg_id for o in report.outcomes if not o.as_expected] == []
    assert report.unexplained == []
    assert report.works is (path.stem in WORKING)


def test_refusal_and_finding_share_step_and_check():
    report = check(scenario.load(ROOT / "scenarios/training/08_no_wildcard_rate.yaml"))
    (outcome,) = report.outcomes
    assert (outcome.code, outcome.step, outcome.check) == (403, 4, "vendor_rate")
    assert [(f.step, f.check) for f in report.findings] == [(4, "vendor_rate")]
    assert report.steps["main"][4].mark == "[ ]"
    assert report.steps["main"][9].mark == "[ ]"


def test_unbilled_delivery_is_not_a_working_service():
    report = check(scenario.load(ROOT / "scenarios/training/04_outgoing_aaa_off.yaml"))
    (outcome,) = report.outcomes
    assert (outcome.code, outcome.billed) == (200, False)
    assert report.steps["main"][2].mark == "[!]"
    assert not report.works


def test_out_of_order_steps_are_marked_in_every_format():
    report = check(scenario.load(ROOT / "scenarios/training/24_messaging_enabled_last.yaml"))
    text = render(report, "text")
    assert "[x] 2. Create a domain service policy (service policy A)  (out of order: done " \
           "before step 1)" in text
    assert "out of order" in render(report, "markdown")
    html = render(report, "html")
    assert html.startswith("<!doctype html>") and "out of order" in html


def test_second_environment_is_checked_on_its_own():
    report = check(scenario.load(
        ROOT / "scenarios/training/25_second_environment_not_configured.yaml"))
    assert all(s.done for s in report.steps["main"].values())
    assert not report.steps["second"][1].done
    assert {o.msg_id: o.code for o in report.outcomes} == {"t1": 200, "t2": 403, "t3": 404}


def test_training_session_step_by_step():
    session = TrainingSession.start(ROOT / "scenarios/training/00_correct_order.yaml")
    assert session.do("add_rate", tariff="tariff A", rate_codes=["|"], price=0).refused
    assert session.do("enable_messaging").ok
    session.wait("1m")
    session.send("15551230001", "15551230002")
    report = session.report()
    assert (report.outcomes[0].code, report.outcomes[0].step) == (403, 1)
    assert [s for s, st in report.steps["main"].items() if st.done] == [1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "imsim", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)


def test_check_cli_exit_codes():
    assert run_cli("check", str(HANDBOOK)).returncode == 0
    broken = run_cli("check", "scenarios/training/17_no_usage_charge.yaml", "--format",
                     "markdown")
    assert broken.returncode == 1 and "**the service does NOT work**" in broken.stdout
    bad = run_cli("check", "missing.yaml")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_blank_checklist():
    done = run_cli("checklist")
    assert done.returncode == 0
    assert done.stdout.count("[ ]") == 9
    assert "Rating configuration (Internal Vendor)" in done.stdout


def test_an_alias_domain_policy_without_outgoing_aaa_is_caught():
    """A second policy for an alias domain with Outgoing_aaa = No delivers its messages
    unbilled, as the handbook's own policy would: the diagnosis names it."""
    from tests.helpers import handbook_document, load_document

    document = handbook_document()
    env = document["environments"][0]
    env["service_policies"].append({"name": "partner", "match_priority": 5,
                                    "recipient_domain_pattern": "partner.example.com",
                                    "outgoing_aaa": False})
    env["vendors"][0]["connections"].append({"tariff": "tariff A",
                                             "service_policy": "partner"})
    document["traffic"]["script"] = [{"id": "p1", "at": 10, "from": "15551230001",
                                      "to": "15551230002@partner.example.com", "body": "hi"}]
    report = check(load_document(document), seed=1)
    (outcome,) = report.outcomes
    assert (outcome.code, outcome.billed) == (200, False)
    assert [(f.step, f.check) for f in report.findings if "partner" in f.problem] == [
        (2, "unbilled")]
    assert not report.works



def _journal(*changes: tuple[str, str]) -> scenario.Scenario:
    """The correct-order journal with some text replaced, without its expected outcomes."""
    text = (ROOT / "scenarios/training/00_correct_order.yaml").read_text()
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    return scenario.loads(text.split("expected:")[0], "test.yaml")


TARIFF_B_VOICE = ("applied_to: customer, service: messaging",
                  "applied_to: customer, service: voice")


def test_a_customer_tariff_of_another_service_is_named_at_step_6_with_its_fix():
    # handbook step 6: "Service - Choose Messaging Service". tariff B made for voice is
    # step 6's mistake (as step 3's for tariff A); the usage charge does select tariff B,
    # so "select tariff B in the usage charge" would send the trainee in a circle
    report = check(_journal(TARIFF_B_VOICE), seed=1)
    assert [(f.step, f.problem, f.fix) for f in report.findings] == [
        (6, "customer tariff 'tariff B' is for voice, not the Messaging Service",
         "create tariff B with Service: Messaging Service"),
        (8, "product 'Softphone' uses tariff 'tariff B', which is not a customer Messaging "
         "tariff", "create tariff B with Service: Messaging Service (step 6), then select it "
         "here")]
    (outcome,) = report.outcomes
    assert (outcome.code, outcome.step) == (403, 8) and not report.works
    assert report.unexplained == []


def test_a_usage_charge_of_a_voice_tariff_names_the_messaging_one():
    # a customer Messaging tariff exists (tariff C) but the usage charge picked the voice
    # tariff B: step 8's fix names tariff C
    tariff_c = ("  - {at: 300, action: include_service",
                "  - {at: 290, action: create_tariff, name: tariff C, currency: USD, "
                "applied_to: customer, service: messaging}\n"
                "  - {at: 295, action: add_rate, tariff: tariff C, rate_codes: ['|'], "
                "price: 0.1}\n  - {at: 300, action: include_service")
    report = check(_journal(TARIFF_B_VOICE, tariff_c), seed=1)
    assert [(f.step, f.fix) for f in report.findings] == [
        (8, "select 'tariff C' in the usage charge")]
    assert report.unexplained == []


def test_a_priced_wildcard_in_the_vendor_tariff_is_noted_at_step_4():
    # handbook step 4: "set zero as the price ... there are no actual costs for on-net
    # instant messages": a price books a cost that does not exist; the service works
    report = check(_journal(('tariff: tariff A, rate_codes: ["|"], price: 0}',
                             'tariff: tariff A, rate_codes: ["|"], price: 0.001}')), seed=1)
    assert [(f.step, f.severity, f.problem, f.fix) for f in report.findings] == [
        (4, "note", "vendor tariff 'tariff A' charges 0.001 for the wildcard destination |: "
         "on-net instant messages have no actual cost", "set zero as the price")]
    assert report.works and report.steps["main"][4].mark == "[x]"


def test_a_messaging_product_without_voice_is_noted_at_step_8():
    # handbook step 8: "the product for messaging product must include voice calls and
    # messaging services" (softphones reach PortaSIP over SIP for both)
    report = check(_journal(("included_services: [voice]", "included_services: []")), seed=1)
    assert [(f.step, f.severity, f.problem, f.fix) for f in report.findings] == [
        (8, "note", "product 'Softphone' includes Messaging but not Voice calls",
         "tick Voice calls too in its Included Services tab")]
