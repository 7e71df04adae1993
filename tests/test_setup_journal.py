"""The setup journal: replay, refusals the admin interface would give, the timeline."""

import pytest

from imsim import sim
from imsim.model import scenario
from imsim.model.replay import BEFORE, environment_at, replay, timeline
from imsim.model.scenario import ScenarioError
from imsim.training.checklist import fill
from tests.helpers import ROOT

TRAINING = ROOT / "scenarios" / "training"


def load(name: str):
    return scenario.load(TRAINING / f"{name}.yaml")


def test_replay_builds_the_handbook_configuration():
    s = load("00_correct_order")
    env = s.environments[0]
    assert env.config_server.messaging_enabled
    assert [p.name for p in env.service_policies] == ["policy A"]
    assert [t.name for t in env.tariffs] == ["tariff A", "tariff B"]
    assert env.vendors[0].connections[0].tariff == "tariff A"
    assert env.product("Softphone").usage_charges[0].tariff == "tariff B"
    assert s.initial[0].tariffs == ()


def test_refused_action_names_the_step_to_do_first():
    s = load("19_connection_before_vendor_tariff")
    entries = replay(s.initial, s.setup).entries
    refused = [e for e in entries if not e.ok]
    assert [(e.action, e.step, e.first) for e in refused] == [("add_connection", 5, 3)]
    assert "tariff 'tariff A' does not exist yet: create it first (step 3)" in refused[0].refused


def test_usage_charge_refused_for_a_vendor_tariff_and_before_include():
    s14 = load("14_customer_tariff_applied_to_vendor")
    refused = [e for e in replay(s14.initial, s14.setup).entries if not e.ok]
    assert [(e.action, e.first) for e in refused] == [("add_usage_charge", 6)]
    s16 = load("16_product_without_messaging")
    refused = [e for e in replay(s16.initial, s16.setup).entries if not e.ok]
    assert [(e.action, e.first) for e in refused] == [("add_usage_charge", 8)]


def with_setup(extra: str) -> scenario.Scenario:
    text = (TRAINING / "00_correct_order.yaml").read_text()
    text = text.replace("\ntraffic:", extra + "\ntraffic:", 1)
    return scenario.loads(text, "x.yaml")


def test_currency_of_a_tariff_cannot_change():
    s = with_setup('  - {at: 320, action: update_tariff, name: tariff B, changes: {currency: EUR}}')
    refused = [e for e in replay(s.initial, s.setup).entries if not e.ok]
    assert "cannot change once set" in refused[0].refused
    assert s.environments[0].tariff("tariff B").currency == "USD"


def test_a_renamed_tariff_keeps_its_connections_and_rating_entries():
    """PortaBilling refers to a tariff by id: after a rename the vendor connection and
    the product's usage charge still use it, under its new name."""
    s = with_setup('  - {at: 320, action: update_tariff, name: tariff B, '
                   'changes: {name: Retail 2027}}')
    assert all(e.ok for e in replay(s.initial, s.setup).entries)
    env = s.environments[0]
    assert [t.name for t in env.tariffs] == ["tariff A", "Retail 2027"]
    assert env.product("Softphone").usage_charges[0].tariff == "Retail 2027"
    assert env.vendors[0].connections[0].tariff == "tariff A"
    renamed = with_setup('  - {at: 320, action: update_tariff, name: tariff A, '
                         'changes: {name: Vendor 2027}}').environments[0]
    assert renamed.vendors[0].connections[0].tariff == "Vendor 2027"
    billed = sim.run(s).summary["totals"]
    assert billed == sim.run(load("00_correct_order")).summary["totals"]
    assert billed["revenue"]["USD"] != "0"


def test_a_tariff_cannot_take_the_name_of_another():
    s = with_setup('  - {at: 320, action: update_tariff, name: tariff B, '
                   'changes: {name: tariff A}}')
    refused = [e for e in replay(s.initial, s.setup).entries if not e.ok]
    assert "tariff 'tariff A' exists already" in refused[0].refused
    assert [t.name for t in s.environments[0].tariffs] == ["tariff A", "tariff B"]


def test_journal_out_of_time_order_is_a_scenario_error():
    with pytest.raises(ScenarioError) as caught:
        with_setup("  - {at: 10, action: disable_messaging}")
    assert caught.value.yaml_path == "setup[10].at"


def test_unknown_action_is_a_scenario_error_with_path():
    with pytest.raises(ScenarioError) as caught:
        with_setup("  - {at: 400, action: reboot_everything}")
    assert caught.value.yaml_path.startswith("setup[10]")


def test_timeline_propagates_steps_1_and_2_only():
    s = load("00_correct_order")  # enable at 0, policy at 60, tariff A at 120, delay 300
    versions = timeline(s)["main"]
    assert versions[0][0] == BEFORE
    at = lambda t: environment_at(versions, t)  # noqa: E731
    assert not at(299).config_server.messaging_enabled
    assert at(300).config_server.messaging_enabled
    assert at(200).tariff("tariff A") is not None        # billing objects: at once
    assert at(300).service_policies == ()                # policy saved at 60: not yet
    assert [p.name for p in at(360).service_policies] == ["policy A"]


def test_checklist_marks_out_of_order_steps():
    states = fill(load("23_customer_side_first"))["main"]
    assert states[6].before == [3, 4, 5]
    assert states[3].before == []
    missing = fill(load("09_no_vendor_connection"))["main"]
    assert (missing[5].done, missing[6].before) == (False, [])


@pytest.mark.parametrize("entry", [
    "  - {at: 400, action: create_customer, name: Zed, time_zone: Mars/Base}",
    "  - {at: 400, action: create_account, customer: ACME Corp, id: '15551230077',"
    " password: x, product: Softphone, buddies: ['15550000000']}",
])
def test_a_bad_object_the_journal_made_points_at_the_journal(entry):
    """The environments in the file do not hold it: the error says the setup journal
    made it and gives the line of the journal, not a line of `environments`."""
    with pytest.raises(ScenarioError) as caught:
        with_setup(entry)
    text = (TRAINING / "00_correct_order.yaml").read_text()
    setup_line = text.splitlines().index("setup:") + 1
    assert "setup journal" in caught.value.problem
    assert caught.value.line == setup_line


@pytest.mark.parametrize(("entry", "path"), [
    ("  - {at: soon, action: enable_messaging}", "setup[10].at"),
    ("  - {at: 400, action: add_rate, tariff: tariff B, rate_codes: ['44'], price: -1}",
     "setup[10].price"),
    ("  - {at: 400, action: create_tariff, name: T, applied_to: vendr}", "setup[10].applied_to"),
])
def test_a_bad_field_of_a_journal_entry_is_named_by_its_key(entry, path):
    with pytest.raises(ScenarioError) as caught:
        with_setup(entry)
    assert caught.value.yaml_path == path


@pytest.mark.parametrize("entry", [
    "  - {at: 400, action: update_service_policy, name: policy A, changes: {outgoing_aa: false}}",
    "  - {at: 400, action: update_tariff, name: tariff B, changes: {curency: EUR}}",
])
def test_a_misspelt_change_is_a_scenario_error_not_a_refusal(entry):
    """A typo in `changes` is the file's mistake, not the admin interface refusing an
    action: the trainee would be told a step was refused that the file never asked."""
    with pytest.raises(ScenarioError) as caught:
        with_setup(entry)
    assert caught.value.yaml_path == "setup[10].changes"
    assert "unknown" in caught.value.problem
