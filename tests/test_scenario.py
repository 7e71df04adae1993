"""The scenario door: every problem is one ScenarioError with path, line, step and fix."""

import pytest

from imsim.model import scenario
from imsim.model.scenario import ScenarioError
from tests.helpers import HANDBOOK, handbook_document, load_document


def test_handbook_scenario_loads():
    loaded = scenario.load(HANDBOOK)
    assert loaded.counts() == {
        "environments": 1, "service_policies": 1, "tariffs": 2, "rates": 5,
        "vendor_connections": 1, "products": 2, "customers": 1, "accounts": 3,
        "scripted_messages": 5}
    assert loaded.propagation_delay == 300.0
    tariff_b = loaded.environments[0].tariff("tariff B")
    assert tariff_b.currency == "USD" and tariff_b.applied_to == "customer"


def error_for(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        scenario.loads(text, source="x.yaml")
    return caught.value


def replace(old: str, new: str) -> str:
    text = HANDBOOK.read_text()
    assert old in text
    return text.replace(old, new, 1)


def line_number(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_negative_price_names_path_line_step_and_fix():
    text = replace("price: 0.05", "price: -0.05")
    err = error_for(text)
    assert err.yaml_path == "environments[0].tariffs[1].rates[2].price"
    assert err.line == line_number(text, "price: -0.05")
    assert err.step == 7
    assert "0 or more" in err.fix
    assert str(err).startswith(f"x.yaml:{err.line}: environments[0].tariffs[1].rates[2].price")


def test_vendor_rate_error_is_step_4():
    err = error_for(replace("price: 0\n", "price: -1\n"))
    assert (err.yaml_path, err.step) == ("environments[0].tariffs[0].rates[0].price", 4)


def test_unknown_key_is_refused():
    text = replace("outgoing_aaa: true", "outgoing_aaa: true\n        outgoing_aa: true")
    err = error_for(text)
    assert err.yaml_path == "environments[0].service_policies[0].outgoing_aa"
    assert "unknown key" in err.problem and err.step == 2
    assert err.line == line_number(text, "outgoing_aa: true")


def test_wrong_type():
    err = error_for(replace("match_priority: 1", "match_priority: high"))
    assert err.yaml_path == "environments[0].service_policies[0].match_priority"
    assert "integer" in err.fix


def test_wrong_choice_lists_allowed_values():
    err = error_for(replace("transport_protocol: SIP", "transport_protocol: SMTP"))
    assert err.step == 2 and "SIP" in err.fix


def test_missing_required_key():
    document = handbook_document()
    del document["environments"][0]["customers"][0]["accounts"][0]["product"]
    with pytest.raises(ScenarioError) as caught:
        load_document(document)
    assert caught.value.yaml_path == "environments[0].customers[0].accounts[0].product"
    assert "add 'product:'" in caught.value.fix


def test_duplicate_names():
    err = error_for(replace("name: tariff B", "name: tariff A"))
    assert err.yaml_path == "environments[0].tariffs[1].name"
    assert "duplicate" in err.problem


def test_dangling_tariff_reference_in_connection():
    text = replace("tariff: tariff A", "tariff: tariff Z")
    err = error_for(text)
    assert err.yaml_path == "environments[0].vendors[0].connections[0].tariff"
    assert err.step == 5 and "create it first (step 3)" in err.fix
    assert err.line == line_number(text, "tariff: tariff Z")


def test_customer_tariff_used_as_vendor_tariff():
    err = error_for(replace("tariff: tariff A", "tariff: tariff B"))
    assert err.step == 5 and "customer tariff" in err.problem


def test_vendor_tariff_used_in_usage_charge():
    err = error_for(replace("node: PortaSIP, tariff: tariff B", "node: PortaSIP, tariff: tariff A"))
    assert err.yaml_path == "environments[0].products[0].usage_charges[0].tariff"
    assert err.step == 8


def test_dangling_product_and_buddy():
    assert error_for(replace("product: Voice only", "product: Nope")).step == 9
    err = error_for(replace('buddies: ["15551230001"]\n          - id: "15551230003"',
                            'buddies: ["15550000000"]\n          - id: "15551230003"'))
    assert err.yaml_path == "environments[0].customers[0].accounts[1].buddies[0]"


def test_currency_mismatch_between_customer_and_tariff():
    err = error_for(replace("  - name: ACME Corp\n        currency: USD",
                            "  - name: ACME Corp\n        currency: EUR"))
    assert err.step == 8 and "currency" in err.problem


def test_bad_account_number():
    err = error_for(replace('id: "15551230001"', 'id: "alice"'))
    assert err.yaml_path == "environments[0].customers[0].accounts[0].id"


def test_bad_time_zone_and_bad_rate_code():
    assert "time zone" in error_for(replace("America/New_York", "Mars/Olympus")).problem
    err = error_for(replace('rate_codes: ["44"]', 'rate_codes: ["44x"]'))
    assert err.step == 7 and "digits" in err.problem


def test_script_sender_must_exist_and_ids_be_unique():
    assert "sender" in error_for(replace('from: "15551230002"', 'from: "19998887777"')).problem
    assert "duplicate message id" in error_for(replace("id: m2,", "id: m1,")).problem


def test_bad_duration():
    err = error_for(replace("propagation_delay: 5m", "propagation_delay: soon"))
    assert err.yaml_path == "propagation_delay" and "duration" in err.problem


def test_yaml_syntax_error_has_a_line():
    err = error_for("name: x\nenvironments: [\n  - {a: b\n")
    assert err.line is not None and "not valid YAML" in err.problem


def test_not_a_mapping():
    assert "mapping" in error_for("- just\n- a list\n").problem


def test_duplicate_yaml_keys():
    assert "not valid YAML" in error_for("name: a\nname: b\nenvironments: []\n").problem


def test_alias_bomb_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1},"
              f" *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 9)]
    err = error_for("\n".join(lines) + "\nname: bomb\n")
    assert "expands" in err.problem


def test_missing_file():
    with pytest.raises(ScenarioError, match="no such file"):
        scenario.load("does/not/exist.yaml")


def test_configuration_objects_are_immutable():
    tariff = scenario.load(HANDBOOK).environments[0].tariff("tariff B")
    with pytest.raises(Exception, match="frozen"):
        tariff.currency = "EUR"


def test_account_numbers_in_written_forms_are_the_accounts():
    """'+1 555 123-0001', '+1 (555) 123 0002': an account's E.164 number as people
    write it, in its id, a buddy list and a test message's sender."""
    text = replace('id: "15551230001"', 'id: "+1 555 123-0001"')
    text = text.replace('buddies: ["15551230001"]\n          - id: "15551230003"',
                        'buddies: ["+1 (555) 123-0001"]\n          - id: "15551230003"', 1)
    text = text.replace('from: "15551230002"', 'from: "+1 555 123 0002"', 1)
    loaded = scenario.loads(text, source="x.yaml")
    accounts = loaded.environments[0].customers[0].accounts
    assert [a.id for a in accounts] == ["15551230001", "15551230002", "15551230003"]
    assert accounts[1].buddies == ("15551230001",)
    assert loaded.traffic.script[1].sender == "15551230002"


def test_a_buddy_written_as_a_sip_address_of_this_environment_is_the_account():
    """A softphone's buddy list holds addresses: 'sip:15551230001@sip.example.com' or
    '15551230001@SIP.example.com' at the environment's own domain is that account."""
    for written in ("sip:15551230001@sip.example.com", "15551230001@SIP.Example.com",
                    "sip:+1 555 123 0001@sip.example.com", "SIP:15551230001@sip.example.com",
                    "sips:15551230001"):
        text = replace('buddies: ["15551230001"]\n          - id: "15551230003"',
                       f'buddies: ["{written}"]\n          - id: "15551230003"')
        accounts = scenario.loads(text, source="x.yaml").environments[0].customers[0].accounts
        assert accounts[1].buddies == ("15551230001",), written


def test_a_buddy_at_another_domain_is_not_an_account_of_this_environment():
    err = error_for(replace('buddies: ["15551230001"]\n          - id: "15551230003"',
                            'buddies: ["15551230001@other.example.net"]\n'
                            '          - id: "15551230003"'))
    assert err.yaml_path == "environments[0].customers[0].accounts[1].buddies[0]"
    assert "buddy 15551230001@other.example.net is not an account of this environment" \
        in str(err)


@pytest.mark.parametrize("old, new, near", [
    ("    service_policies:", "    servce_policies:", "service_policies"),
    ('recipient_domain_pattern: "%"', 'recipient_domain_patern: "%"',
     "recipient_domain_pattern"),
    ("        balance_model: debit", "        balance_modle: debit", "balance_model"),
])
def test_a_misspelt_key_names_the_key_it_is_near(old, new, near):
    err = error_for(replace(old, new))
    assert "unknown key" in err.problem and err.fix.startswith(f"did you mean '{near}'?")


def test_a_bad_account_number_says_how_to_write_one():
    err = error_for(replace('id: "15551230001"', 'id: "555-CALL-NOW"'))
    assert "E.164" in err.fix and "15551230001" in err.fix


@pytest.mark.parametrize(("old", "new", "fix"), [
    ("currency: USD", "currency: usd", "three capital letters"),
    ("country: US", "country: us", "two capital letters"),
])
def test_a_bad_value_says_what_to_write(old, new, fix):
    assert fix in error_for(replace(old, new)).fix


def test_no_environment_says_to_write_one():
    assert "at least one" in error_for("name: x\nenvironments: []\n").fix


@pytest.mark.parametrize(("price", "fix"), [("0.0000001", "at most 6 decimal places"),
                                            ("1e20", "at most 18 digits")])
def test_a_price_too_precise_or_too_large_says_the_limit(price, fix):
    assert fix in error_for(replace("price: 0.02", f"price: {price}")).fix


def test_a_value_error_that_says_what_to_write_gives_it_as_the_fix():
    err = error_for(replace("propagation_delay: 5m", "propagation_delay: soon"))
    assert err.problem == "'soon' is not a duration"
    assert err.fix == "write seconds (300) or '90s', '5m', '2h', '1d'"


def test_a_sender_domain_is_matched_whatever_its_case():
    """SIP host names compare case-insensitively (RFC 3261, 19.1.4)."""
    loaded = scenario.loads(replace('from: "15551230002"', 'from: "15551230002@SIP.Example.COM"'))
    line = loaded.traffic.script[1]
    assert loaded.home_of(line.sender, line.sender_domain) is loaded.environments[0]


def test_a_file_in_another_encoding_or_a_folder_says_what_to_give(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: Müller\n".encode("latin-1"))
    with pytest.raises(ScenarioError) as caught:
        scenario.load(latin1)
    assert "UTF-8" in caught.value.fix
    with pytest.raises(ScenarioError) as caught:
        scenario.load(tmp_path)
    assert "is a folder" in caught.value.problem and "YAML file" in caught.value.fix
