"""A product's bundle of included messages (`Product.included_messages`): the first N
delivered messages of an account per calendar month (customer's time zone) are free."""

import datetime as dt
from decimal import Decimal

import pytest

from imsim.model.scenario import ScenarioError
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.settle import bundle_period
from tests.helpers import START, handbook_document, load_document, message

ALICE, BOB = "15551230001", "15551230002"


def engine(included=2, balance=10.0):
    document = handbook_document()
    env = document["environments"][0]
    env["products"][0]["included_messages"] = included
    for account in env["customers"][0]["accounts"]:
        account["balance"] = balance
    loaded = load_document(document).environments[0]
    return BillingEngine(loaded), Ledger.of(loaded)


def send(eng, ledger, call_id, at=START, code=200):
    msg = message(BOB, call_id=call_id, at=at)
    decision = eng.authorize(msg, ledger)
    rows = eng.account(msg, decision, code, "OK", ledger) if decision.ok else []
    return decision, rows


def outgoing_amounts(eng, ledger, count, **kw):
    return [send(eng, ledger, f"c{k}", **kw)[1][0].charged_amount for k in range(count)]


def test_first_included_messages_are_free_then_the_tariff_applies():
    eng, ledger = engine(included=2)
    assert outgoing_amounts(eng, ledger, 4) == [0, 0, Decimal("0.01"), Decimal("0.01")]
    assert ledger.debit[ALICE] == Decimal("9.98")


def test_free_xdr_keeps_units_and_rate_code():
    eng, ledger = engine(included=1)
    _, rows = send(eng, ledger, "c1")
    out = rows[0]
    assert (out.direction, out.rate_code, out.charged_quantity, out.unit_price,
            out.charged_amount) == ("outgoing", "1555", 1, 0, 0)


def test_no_bundle_by_default():
    eng, ledger = engine(included=0)
    assert outgoing_amounts(eng, ledger, 2) == [Decimal("0.01")] * 2


def test_failed_message_gives_its_included_message_back():
    eng, ledger = engine(included=1)
    decision, rows = send(eng, ledger, "c1", code=480)
    assert decision.customer.amount == 0 and rows == []
    assert outgoing_amounts(eng, ledger, 2) == [0, Decimal("0.01")]


def test_bundle_renews_each_month_in_the_customer_time_zone():
    eng, ledger = engine(included=1)
    # 2026-02-01 03:00 UTC is still January in New York (the customer's zone)
    late_january = dt.datetime(2026, 2, 1, 3, 0, tzinfo=dt.UTC)
    assert bundle_period(late_january, "America/New_York") == "2026-01"
    assert outgoing_amounts(eng, ledger, 1) == [0]
    assert outgoing_amounts(eng, ledger, 1, at=late_january) == [Decimal("0.01")]
    assert outgoing_amounts(eng, ledger, 2, at=late_january + dt.timedelta(hours=6)) == [
        0, Decimal("0.01")]


def test_bundle_lets_an_empty_balance_send_its_included_messages():
    eng, ledger = engine(included=1, balance=0)
    first, _ = send(eng, ledger, "c1")
    second, _ = send(eng, ledger, "c2")
    assert (first.code, second.code, second.check) == (200, 403, "balance")


def test_without_a_ledger_there_is_no_bundle_state():
    eng, _ = engine(included=5)
    assert eng.authorize(message(BOB), None).customer.amount == Decimal("0.01")


def test_included_messages_must_not_be_negative():
    document = handbook_document()
    document["environments"][0]["products"][0]["included_messages"] = -1
    with pytest.raises(ScenarioError, match=r"products\[0\]\.included_messages"):
        load_document(document)
