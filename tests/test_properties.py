"""Invariants of the foundation, checked with hypothesis on random tables and traffic.

- the longest matching prefix wins over every shorter one; ``|`` only when nothing
  else matches (nothing else in effect);
- charged amount = units x unit price;
- nothing is charged on a refusal, and balances never pass their limit, over random
  message sequences through `BillingEngine.authorize` + `account`;
- `rate_many` agrees with the one-message path on random tables and numbers.
"""

import datetime as dt
from decimal import Decimal

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imsim.model.config import WEEKDAYS, BalanceModel, OffPeakPeriod, Rate, Tariff, UsageCharge
from imsim.model.scenario import load
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Message
from imsim.rules.rating import RateTable
from tests.helpers import HANDBOOK
from tests.test_batch import assert_agrees

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
MODERATE = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
HANDBOOK_ENV = load(HANDBOOK).environments[0]
ALICE, BOB, CAROL = "15551230001", "15551230002", "15551230003"

digits = st.text("0123456789", min_size=1, max_size=5)
codes = st.lists(digits, min_size=1, max_size=12, unique=True)
prices = st.decimals(0, 100, places=6, allow_nan=False, allow_infinity=False)
moments = st.datetimes(dt.datetime(2025, 6, 1), dt.datetime(2027, 6, 1),
                       timezones=st.just(dt.UTC))
offsets = st.integers(-72, 72).map(lambda h: T0 + dt.timedelta(hours=h))
zones = st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"])


@st.composite
def numbers_near(draw, table_codes):
    """A number that often starts with one of the codes."""
    head = draw(st.sampled_from(table_codes) | st.just(""))
    return head + draw(st.text("0123456789", min_size=1 if not head else 0, max_size=10))


def plain_table(table_codes, wildcard):
    rates = [Rate(rate_codes=(c,), price=Decimal(i)) for i, c in enumerate(table_codes)]
    if wildcard:
        rates.append(Rate(rate_codes=("|",), price=Decimal(99)))
    return RateTable(Tariff(name="T", applied_to="customer", rates=tuple(rates)))


# -- rating -------------------------------------------------------------------------------

@MODERATE
@given(st.data(), codes, st.booleans())
def test_longest_prefix_wins_over_every_shorter_one(data, table_codes, wildcard):
    number = data.draw(numbers_near(table_codes))
    rating = plain_table(table_codes, wildcard).rate(number, T0)
    matching = [c for c in table_codes if number.startswith(c)]
    if matching:
        assert rating is not None and rating.rate_code in matching
        assert all(len(c) < len(rating.rate_code) for c in matching if c != rating.rate_code)
    else:
        assert rating is None if not wildcard else rating.rate_code == "|"


@MODERATE
@given(st.data(), st.lists(st.tuples(digits, offsets), min_size=1, max_size=12), offsets)
def test_wildcard_only_when_nothing_else_matches(data, versions, at):
    table_codes = sorted({code for code, _ in versions})
    number = data.draw(numbers_near(table_codes))
    rates = [Rate(rate_codes=(code,), price=Decimal(1), effective_from=since)
             for code, since in versions]
    plan = Tariff(name="T", applied_to="customer",
                  rates=(*rates, Rate(rate_codes=("|",), price=Decimal(9))))
    in_effect = {code for code, since in versions if since <= at and number.startswith(code)}
    rating = RateTable(plan).rate(number, at)
    assert rating is not None
    assert (rating.rate_code == "|") == (not in_effect)
    if in_effect:
        assert rating.rate_code == max(in_effect, key=len)


@MODERATE
@given(prices, st.none() | prices, st.integers(0, 10_000), st.none() | st.integers(1, 500),
       moments, zones)
def test_amount_is_units_times_unit_price(price, off_peak_price, length, unit_size, at, tz):
    plan = Tariff(name="T", applied_to="customer", off_peak=(OffPeakPeriod(days=("sat",)),),
                  rates=(Rate(rate_codes=("|",), price=price, off_peak_price=off_peak_price),))
    rating = RateTable(plan).rate("15551230002", at, length, unit_size, tz)
    assert rating.amount == rating.units * rating.unit_price
    assert rating.units == (max(1, -(-length // unit_size)) if unit_size else 1)
    assert rating.unit_price == (off_peak_price if rating.off_peak else price)


# -- billing ------------------------------------------------------------------------------

money = st.decimals(0, "0.2", places=3)
outcomes = st.sampled_from([200, 202, 404, 408, 480, 486, 603])
messages = st.tuples(st.sampled_from([ALICE, BOB, ALICE, BOB, CAROL, "15550000000"]),
                     st.sampled_from([ALICE, BOB, ALICE, BOB, CAROL, "15559999999"]),
                     st.integers(0, 300), outcomes,
                     st.sampled_from(["", "call-a", "call-b"]))  # Call-IDs may repeat


@st.composite
def environments(draw):
    """The handbook environment with random prices, balances, limits and switches."""
    env = HANDBOOK_ENV
    tariff_b = env.tariff("tariff B")
    rates = tuple(r.model_copy(update={"price": draw(money)}) for r in tariff_b.rates)
    model = draw(st.sampled_from(BalanceModel))
    accounts = tuple(a.model_copy(update={
        "balance": draw(money) if model is BalanceModel.debit else Decimal(0),
        "blocked": draw(st.integers(0, 9)) == 0})
        for a in env.customers[0].accounts)
    customer = env.customers[0].model_copy(update={
        "balance_model": model, "accounts": accounts,
        "credit_limit": draw(st.none() | money)})
    product = env.products[0]
    if draw(st.booleans()):
        product = product.model_copy(update={"usage_charges": (
            *product.usage_charges, UsageCharge(tariff="tariff B", direction="incoming"))})
    policy = env.service_policies[0].model_copy(update={
        "billing_unit_size": draw(st.none() | st.integers(1, 50)),
        "outgoing_aaa": draw(st.integers(0, 9)) > 0})
    return env.model_copy(update={
        "customers": (customer,), "products": (product, *env.products[1:]),
        "service_policies": (policy,),
        "tariffs": (env.tariffs[0], tariff_b.model_copy(update={"rates": rates}))})


def spent(ledger):
    """Money taken so far: debit balances spent plus credit owed (per ledger key)."""
    out = {f"account:{k}": -v for k, v in ledger.debit.items()}
    out.update({f"customer:{k}": v for k, v in ledger.owed.items()})
    return out


def assert_within_limits(env, ledger):
    customer = env.customers[0]
    if customer.balance_model is BalanceModel.debit:
        for account in customer.accounts:
            held = ledger.reserved.get(f"account:{account.id}", Decimal(0))
            assert ledger.debit[account.id] >= 0 and ledger.debit[account.id] - held >= 0
    elif customer.credit_limit is not None:
        held = ledger.reserved.get(f"customer:{customer.name}", Decimal(0))
        assert ledger.owed[customer.name] + held <= customer.credit_limit


def assert_accounted(engine, ledger, msg, decision, code):
    before = spent(ledger)
    rows = engine.account(msg, decision, code, "answer", ledger)
    after = spent(ledger)
    if not (decision.ok and decision.billed and 200 <= code < 300):
        assert rows == [] and after == before
        return
    charged = sum((r.charged_amount for r in rows if r.direction != "vendor"), Decimal(0))
    assert sum(after.values()) - sum(before.values()) == charged
    assert all(r.charged_amount == r.charged_quantity * r.unit_price for r in rows)


@settings(MODERATE, max_examples=60)
@given(environments(), st.lists(st.lists(messages, min_size=1, max_size=4), max_size=8))
def test_nothing_charged_on_refusal_and_no_balance_past_its_limit(env, chunks):
    engine, ledger = BillingEngine(env), Ledger.of(env)
    sent = 0
    for chunk in chunks:
        pending = []
        for sender, to, length, outcome, call_id in chunk:
            sent += 1
            msg = Message(f"m{sent}", sender, to, env.domain, T0, length, call_id)
            decision = engine.authorize(msg, ledger)
            assert_within_limits(env, ledger)
            if decision.ok:
                pending.append((msg, decision, outcome))
            else:
                assert_accounted(engine, ledger, msg, decision, decision.code)
        for msg, decision, outcome in reversed(pending):
            assert_accounted(engine, ledger, msg, decision, outcome)
            assert_within_limits(env, ledger)
    assert all(v == 0 for v in ledger.reserved.values()) and not ledger.holds


# -- rate_many ----------------------------------------------------------------------------

periods = st.builds(OffPeakPeriod, days=st.lists(st.sampled_from(WEEKDAYS), min_size=1,
                                                 max_size=7, unique=True).map(tuple),
                    start=st.times(), end=st.times())


@st.composite
def tariffs(draw):
    """Random codes with random versions, off-peak prices, forbidden rates, wildcard."""
    rates = []
    for code in draw(st.lists(digits, min_size=1, max_size=15, unique=True)):
        for _ in range(draw(st.integers(1, 3))):
            rates.append(Rate(rate_codes=(code,), price=draw(prices),
                              off_peak_price=draw(st.none() | prices),
                              effective_from=draw(st.none() | offsets),
                              status=draw(st.sampled_from(["normal", "normal", "forbidden"]))))
    if draw(st.booleans()):
        rates.append(Rate(rate_codes=("|",), price=draw(prices),
                          effective_from=draw(st.none() | offsets)))
    return Tariff(name="T", applied_to="customer", rates=tuple(rates),
                  off_peak=tuple(draw(st.lists(periods, max_size=2))))


@MODERATE
@given(st.data(), tariffs(), zones, st.none() | st.integers(1, 200), st.booleans())
def test_rate_many_agrees_with_the_one_message_path(data, plan, tz, unit_size, as_int):
    table_codes = sorted({c for r in plan.rates for c in r.rate_codes if c != "|"})
    size = data.draw(st.integers(1, 25))
    numbers = data.draw(st.lists(numbers_near(table_codes), min_size=size, max_size=size))
    if as_int:
        numbers = [int(n) for n in numbers]
    frame = pd.DataFrame({
        "CLD": numbers,
        "length": data.draw(st.lists(st.integers(0, 1000), min_size=size, max_size=size)),
        "connect_time": pd.to_datetime(data.draw(st.lists(offsets | moments, min_size=size,
                                                          max_size=size)), utc=True)})
    if data.draw(st.booleans()):
        assert_agrees(frame, plan, unit_size=unit_size, time_zone=tz)
    else:
        assert_agrees(frame, plan, unit_size=unit_size, time_zone=tz, at=data.draw(offsets))


def test_messages_sharing_a_call_id_keep_separate_holds():
    """Regression: holds were keyed by Call-ID alone, so accounting one message settled
    every message in flight under the same Call-ID (a refused one was charged)."""
    engine, ledger = BillingEngine(HANDBOOK_ENV), Ledger.of(HANDBOOK_ENV)
    first, second = (Message(m, ALICE, BOB, HANDBOOK_ENV.domain, T0, 5) for m in ("m1", "m2"))
    decisions = [engine.authorize(first, ledger), engine.authorize(second, ledger)]
    assert len(engine.account(first, decisions[0], 200, "OK", ledger)) == 2
    assert engine.account(second, decisions[1], 486, "Busy Here", ledger) == []
    assert ledger.debit[ALICE] == Decimal("9.99")
    assert not ledger.holds and ledger.reserved[f"account:{ALICE}"] == 0
