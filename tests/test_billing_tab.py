"""`BillingEngine.tab` (the simulator's fast path) against the plain path: over random
environments and message sequences, `Tab.settle` gives the decision `settle` gives,
`Tab.account` leaves the balances `account` leaves, and `lines` + `xdrs` write the
xDRs `account` writes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from imsim.model.config import Product
from imsim.rules.decide import BillingEngine
from imsim.rules.ledger import Ledger
from imsim.rules.message import Message
from tests.test_properties import HANDBOOK_ENV, MODERATE, T0, environments, messages


def balances(ledger: Ledger) -> tuple[dict, dict, dict]:
    return ledger.debit, ledger.owed, ledger.reserved


@settings(MODERATE, max_examples=120)
@given(environments(), st.lists(st.lists(messages, min_size=1, max_size=4), max_size=8))
def test_tab_settles_and_accounts_as_the_plain_path(env, chunks):
    engine, plain, fast = BillingEngine(env), Ledger.of(env), Ledger.of(env)
    sent = 0
    for chunk in chunks:
        pending = []
        for sender, to, length, outcome, call_id in chunk:
            sent += 1
            msg = Message(f"m{sent}", sender, to, env.domain, T0, length, call_id)
            answer = engine.decide(msg)
            decision = engine.settle(msg, answer, plain)
            tab = engine.tab(sender, answer)
            assert tab is not None
            assert tab.settle(fast) == decision
            assert balances(fast) == balances(plain)
            if decision.ok:
                pending.append((msg, decision, tab, outcome))
        for msg, decision, tab, outcome in reversed(pending):
            rows = engine.account(msg, decision, outcome, "answer", plain, first_xdr=sent)
            delivered = tab.account(fast, outcome)
            assert balances(fast) == balances(plain)
            assert delivered == bool(rows)
            if delivered:
                lines = engine.lines(msg.sender, tab.decision)
                assert engine.xdrs(msg, decision.recipient, lines, outcome, "answer",
                                   sent) == rows
    assert all(v == 0 for v in fast.reserved.values())


def test_no_tab_for_a_sender_with_a_bundle():
    """A bundle makes the answer depend on the month and the messages used: plain path."""
    product = HANDBOOK_ENV.products[0]
    bundled = HANDBOOK_ENV.model_copy(update={"products": (
        product.model_copy(update={"included_messages": 10}), *HANDBOOK_ENV.products[1:])})
    assert isinstance(product, Product)
    engine = BillingEngine(bundled)
    sender = HANDBOOK_ENV.customers[0].accounts[0].id
    to = HANDBOOK_ENV.customers[0].accounts[1].id
    answer = engine.decide(Message("m", sender, to, bundled.domain, T0, 5, "c"))
    assert answer.ok and engine.tab(sender, answer) is None
    assert BillingEngine(HANDBOOK_ENV).tab(sender, answer) is not None


def test_a_balance_of_exactly_one_charge_pays_once_on_both_paths():
    sender = HANDBOOK_ENV.customers[0].accounts[0]
    to = HANDBOOK_ENV.customers[0].accounts[1].id
    engine = BillingEngine(HANDBOOK_ENV)
    answer = engine.decide(Message("m", sender.id, to, HANDBOOK_ENV.domain, T0, 5, "c"))
    customer = HANDBOOK_ENV.customers[0].model_copy(update={"accounts": (
        sender.model_copy(update={"balance": answer.customer.amount}),
        *HANDBOOK_ENV.customers[0].accounts[1:])})
    env = HANDBOOK_ENV.model_copy(update={"customers": (customer,
                                                        *HANDBOOK_ENV.customers[1:])})
    engine, plain, fast = BillingEngine(env), Ledger.of(env), Ledger.of(env)
    tab = engine.tab(sender.id, answer)
    for k in (1, 2):
        msg = Message(f"m{k}", sender.id, to, env.domain, T0, 5, "c")
        decision = engine.settle(msg, answer, plain)
        assert tab.settle(fast) == decision and decision.ok == (k == 1)
        assert balances(fast) == balances(plain)


def exactly(ledger: Ledger) -> dict[str, tuple[str, str]]:
    """Every purse's money and hold as written (digits and exponent: Decimal('0') and
    Decimal('0.00') are equal, not the same)."""
    return {key: (str(p.money), str(p.held)) for key, p in ledger.purses.items()}


@settings(MODERATE, max_examples=150)
@given(environments(), st.lists(st.tuples(messages, st.booleans()), min_size=1, max_size=30))
def test_settle_delivered_is_settle_then_account_of_a_delivery(env, sends):
    """The fast lane's `settle_delivered` against `settle` + `account(200)`, to the
    exponent, with other messages' holds coming and going in between (``later``: settled
    now, accounted when the next message comes), which changes what a hold leaves."""
    engine, plain, fast = BillingEngine(env), Ledger.of(env), Ledger.of(env)
    tabs: dict = {}
    waiting: list = []
    for k, ((sender, to, length, outcome, _), later) in enumerate(sends):
        answer = engine.decide(Message(f"m{k}", sender, to, env.domain, T0, length, "c"))
        slow, quick = tabs.setdefault((sender, to, length), (engine.tab(sender, answer),
                                                             engine.tab(sender, answer)))
        for a, b in waiting:   # the message held since the last one is accounted now
            assert a.account(plain, outcome) == b.account(fast, outcome)
        waiting.clear()
        decision = slow.settle(plain)
        if later:
            assert quick.settle(fast) == decision
            if decision is slow.decision:
                waiting.append((slow, quick))
        else:
            if decision is slow.decision:
                slow.account(plain, 200)
            assert quick.settle_delivered(fast) == decision
        assert exactly(fast) == exactly(plain)
    for a, b in waiting:
        a.account(plain, 200)
        b.account(fast, 200)
    assert exactly(fast) == exactly(plain)
