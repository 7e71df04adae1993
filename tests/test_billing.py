"""The message-path checks of DESIGN.md, one rule per test, on the handbook scenario."""

import datetime as dt
from decimal import Decimal

import pytest

from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from tests.helpers import START, handbook_document, load_document, message

ALICE, BOB, CAROL = "15551230001", "15551230002", "15551230003"


def engine(change=None):
    document = handbook_document()
    env = document["environments"][0]
    if change:
        change(env)
    loaded = load_document(document).environments[0]
    return BillingEngine(loaded), Ledger.of(loaded)


def decide(change=None, to=BOB, sender=ALICE, **kw):
    eng, ledger = engine(change)
    return eng.authorize(message(to, sender=sender, **kw), ledger)


def test_handbook_message_is_authorized_and_rated():
    d = decide()
    assert (d.code, d.check, d.billed, d.recipient) == (200, "authorized", True, BOB)
    assert (d.customer.tariff, d.customer.rate_code, d.customer.amount) == (
        "tariff B", "1555", Decimal("0.01"))
    assert (d.vendor.tariff, d.vendor.rate_code, d.vendor.amount) == ("tariff A", "|", 0)


def test_authentication():
    eng, _ = engine()
    assert eng.authenticate(ALICE, "alice-secret") is None
    assert eng.authenticate(ALICE, "wrong").code == 403
    assert eng.authenticate("19999999999", "x").code == 403


def test_step1_messaging_not_enabled():
    d = decide(lambda env: env["config_server"].update(service_types=["voice"]))
    assert (d.code, d.step, d.check) == (403, 1, "messaging_enabled")
    assert "configuration server" in d.reason


def test_step2_no_policy_matches_domain():
    d = decide(lambda env: env["service_policies"][0].update(
        recipient_domain_pattern="%.example.org"))
    assert (d.code, d.step, d.check) == (403, 2, "service_policy")


def test_outgoing_aaa_off_delivers_unbilled():
    d = decide(lambda env: env["service_policies"][0].update(outgoing_aaa=False))
    assert (d.code, d.billed, d.customer) == (200, False, None)


def test_outgoing_aaa_off_skips_billing_checks():
    def broken(env):
        env["service_policies"][0]["outgoing_aaa"] = False
        env["products"][0]["usage_charges"] = []
    assert decide(broken).code == 200


def test_local_lookup_off():
    d = decide(lambda env: env["service_policies"][0].update(local_lookup=False))
    assert (d.code, d.step, d.check) == (404, 2, "local_lookup")


def test_blocked_account():
    d = decide(lambda env: env["customers"][0]["accounts"][0].update(blocked=True))
    assert (d.code, d.check) == (403, "account")


def test_step8_product_without_messaging():
    d = decide(sender=CAROL, to=ALICE)
    assert (d.code, d.step, d.check) == (403, 8, "product")


def test_step8_product_without_usage_charge():
    d = decide(lambda env: env["products"][0].update(usage_charges=[]))
    assert (d.code, d.step, d.check) == (403, 8, "usage_charge")


def test_step8_usage_charge_on_wrong_node():
    d = decide(lambda env: env["products"][0]["usage_charges"][0].update(node="PortaUM"))
    assert (d.code, d.step) == (403, 8)


def test_step8_usage_charge_with_a_non_messaging_tariff():
    def voice_tariff(env):
        env["tariffs"][1]["service"] = "voice"
    d = decide(voice_tariff)
    assert (d.code, d.step, d.check) == (403, 8, "usage_charge")


def test_step7_no_customer_rate():
    def only_uk(env):
        env["tariffs"][1]["rates"] = [{"rate_codes": ["44"], "price": 0.05}]
    d = decide(only_uk)
    assert (d.code, d.step, d.check) == (403, 7, "customer_rate")


def test_step7_forbidden_destination():
    def forbid(env):
        env["tariffs"][1]["rates"].append(
            {"rate_codes": ["15551230002"], "price": 0, "status": "forbidden"})
    d = decide(forbid)
    assert (d.code, d.step, d.check) == (403, 7, "customer_rate")
    assert decide(forbid, to=CAROL).code == 200


def test_step5_no_vendor_connection():
    d = decide(lambda env: env.update(vendors=[{"name": "internal"}]))
    assert (d.code, d.step, d.check) == (404, 5, "vendor_connection")


def test_step5_connection_of_wrong_type_or_not_sip_ua():
    wrong_type = decide(lambda env: env["vendors"][0]["connections"][0].update(
        type="voip_via_sip"))
    not_sip_ua = decide(lambda env: env["vendors"][0]["connections"][0].update(internal=None))
    assert (wrong_type.step, not_sip_ua.step) == (5, 5)


def test_step5_connection_without_tariff_or_policy():
    no_tariff = decide(lambda env: env["vendors"][0]["connections"][0].pop("tariff"))
    no_policy = decide(lambda env: env["vendors"][0]["connections"][0].pop("service_policy"))
    assert (no_tariff.code, no_tariff.step) == (404, 5)
    assert (no_policy.code, no_policy.step) == (404, 5)


def test_step3_vendor_tariff_with_routing_on():
    d = decide(lambda env: env["tariffs"][0].update(routing=True))
    assert (d.code, d.step, d.check) == (404, 3, "vendor_tariff")


def test_step4_vendor_tariff_without_wildcard():
    d = decide(lambda env: env["tariffs"][0].update(rates=[]))
    assert (d.code, d.step, d.check) == (403, 4, "vendor_rate")


def test_unknown_recipient_is_404_without_step():
    d = decide(to="15559999999")
    assert (d.code, d.step, d.check) == (404, None, "recipient")


def test_checks_are_applied_in_design_order():
    def everything_wrong(env):
        env["tariffs"][0]["rates"] = []           # step 4
        env["products"][0]["usage_charges"] = []  # step 8
    assert decide(everything_wrong).step == 8     # check 4 (customer) before 5 (vendor)

    def also_disabled(env):
        everything_wrong(env)
        env["config_server"]["service_types"] = ["voice"]
    assert decide(also_disabled).step == 1


def test_debit_balance_is_reserved_then_committed():
    eng, ledger = engine(lambda env: env["customers"][0]["accounts"][0].update(balance=0.015))
    first = eng.authorize(message(BOB, call_id="a"), ledger)
    second = eng.authorize(message(BOB, call_id="b"), ledger)
    assert (first.code, second.code, second.check) == (200, 403, "balance")
    rows = eng.account(message(BOB, call_id="a"), first, 200, "OK", ledger)
    assert [r.direction for r in rows] == ["outgoing", "vendor"]
    assert ledger.debit[ALICE] == Decimal("0.005")


def test_failed_delivery_releases_the_hold_and_writes_nothing():
    eng, ledger = engine()
    msg = message(BOB)
    decision = eng.authorize(msg, ledger)
    assert eng.account(msg, decision, 480, "Temporarily Unavailable", ledger) == []
    assert ledger.debit[ALICE] == Decimal("10.00")
    assert ledger.available(*eng.accounts[ALICE]) == Decimal("10.00")


def test_credit_customer_owes_up_to_the_limit():
    def credit(env):
        env["customers"][0].update(balance_model="credit", credit_limit=0.02)
        for account in env["customers"][0]["accounts"]:
            account["balance"] = 0
    eng, ledger = engine(credit)
    for call_id in ("a", "b"):
        msg = message(BOB, call_id=call_id)
        eng.account(msg, eng.authorize(msg, ledger), 200, "OK", ledger)
    assert ledger.owed["ACME Corp"] == Decimal("0.02")
    refused = eng.authorize(message(BOB, call_id="c"), ledger)
    assert (refused.code, refused.check) == (403, "balance")


def test_incoming_messages_are_free_by_default_but_may_be_charged():
    eng, ledger = engine()
    msg = message(BOB)
    rows = eng.account(msg, eng.authorize(msg, ledger), 200, "OK", ledger)
    assert "incoming" not in {r.direction for r in rows}

    def incoming(env):
        env["products"][0]["usage_charges"].append(
            {"service": "messaging", "node": "PortaSIP", "tariff": "tariff B",
             "direction": "incoming"})
    eng, ledger = engine(incoming)
    rows = eng.account(msg, eng.authorize(msg, ledger), 200, "OK", ledger)
    charged = {r.direction: (r.account_id, r.charged_amount) for r in rows}
    assert charged["incoming"] == (BOB, Decimal("0.01"))
    assert ledger.debit[BOB] == Decimal("9.99")


def test_xdr_columns_follow_design():
    eng, ledger = engine()
    msg = message(BOB, at=START + dt.timedelta(seconds=10), call_id="call-1")
    row = eng.account(msg, eng.authorize(msg, ledger), 200, "OK", ledger)[0]
    assert row._asdict() == {
        "i_xdr": 1, "env": "main", "account_id": ALICE, "CLI": ALICE, "CLD": BOB,
        "connect_time": START + dt.timedelta(seconds=10), "call_id": "call-1", "msg_id": "m",
        "service": "messaging", "direction": "outgoing", "tariff": "tariff B",
        "rate_code": "1555", "charged_quantity": 1, "unit_price": Decimal("0.01"),
        "charged_amount": Decimal("0.01"), "currency": "USD", "sip_code": 200, "reason": "OK"}


@pytest.mark.parametrize(("to", "rate_code"), [
    ("+1 (555) 123-0002", "1555"), ("5551230002", "1555"), ("1-555-123-0002", "1555")])
def test_recipient_is_translated_to_e164(to, rate_code):
    d = decide(to=to)
    assert (d.code, d.recipient, d.customer.rate_code) == (200, BOB, rate_code)


def test_an_account_of_another_country_is_reached_by_its_id():
    """A German account in the handbook's US environment, messaged by its ID (E.164
    without '+', as the handbook's softphone user name): delivered and rated at 49."""
    german = "491711234567"

    def change(env):
        env["customers"][0]["accounts"].append(
            {"id": german, "password": "x", "product": "Softphone", "balance": 1})
        env["tariffs"][1]["rates"].append({"rate_codes": ["49"], "price": 0.07})
    d = decide(change, to=german)
    assert (d.code, d.recipient, d.customer.rate_code) == (200, german, "49")


def test_no_translation_when_policy_says_no():
    d = decide(lambda env: env["service_policies"][0].update(userpart_e164_translation=False),
               to="+15551230002")
    assert d.code == 404
