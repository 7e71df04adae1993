"""Matching xDRs that carry no imsim id with the test messages (`lab.matching`).

Generated runs: messages between a few numbers (some within the same second), billed or
not, their xDRs with or without a Call-ID, stamped on a remote clock that runs ahead or
behind and truncated to the second, shuffled, among xDRs of unrelated traffic.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from email.utils import formatdate

from hypothesis import given, settings
from hypothesis import strategies as st

from imsim.rules.message import Xdr
from lab.matching import TOLERANCE, Sent, match, measured_skew, rewriter

NUMBERS = ("15551230001", "15551230002", "15551230003")
STRANGER = "447700900123"  # a number no test message uses
T0 = 1_796_000_000.0


def xdr(i_xdr: int, cli: str, cld: str, at: float, call_id: str = "",
        msg_id: str = "") -> Xdr:
    """An xDR as a deployment writes it: its time truncated to the second."""
    moment = dt.datetime.fromtimestamp(math.floor(at), dt.UTC)
    return Xdr(i_xdr, "", cli, cli, cld, moment, call_id, msg_id, "messaging", "outgoing",
               "", "", 1, Decimal("0.01"), Decimal("0.01"), "USD", 200, "OK")


@st.composite
def runs(draw):
    """(messages, xDRs, skew, {i_xdr: msg_id} of the true xDRs, i_xdrs of the others)."""
    count = draw(st.integers(1, 12))
    gaps = draw(st.lists(st.floats(0.0, 8.0), min_size=count, max_size=count))
    skew = draw(st.floats(-300.0, 300.0))
    sent, rows, truth, others = [], [], {}, set()
    at = T0
    for n, gap in enumerate(gaps):
        at += gap  # gaps below 1 s: two messages in the same second
        cli, cld = draw(st.sampled_from([(a, b) for a in NUMBERS for b in NUMBERS if a != b]))
        call_id = f"call-{n}@10.0.0.1" if draw(st.booleans()) else ""
        billed = draw(st.booleans())  # a 2xx; an unbilled one may be a 2xx too
        sent.append(Sent(f"m{n}", call_id, cli, f"+{cld[0]} {cld[1:]}", at,
                         billed or draw(st.booleans())))
        if billed:  # its xDR, with or without the Call-ID
            delay = draw(st.floats(0.0, 1.0))
            shown = call_id if call_id and draw(st.booleans()) else ""
            rows.append(xdr(len(rows) + 1, cli, cld, at + skew + delay, shown))
            truth[rows[-1].i_xdr] = f"m{n}"
    for kind in draw(st.lists(st.sampled_from(["stranger", "call_id", "hour"]), max_size=4)):
        base = draw(st.sampled_from(sent))
        rows.append(unrelated(kind, len(rows) + 1, base, skew))
        others.add(rows[-1].i_xdr)
    order = draw(st.permutations(range(len(rows))))
    return sent, [rows[i] for i in order], skew, truth, others


def unrelated(kind: str, i_xdr: int, near: Sent, skew: float) -> Xdr:
    """Traffic of no test message: to another number, of another call, or an hour off."""
    at = near.sent_at + skew
    if kind == "stranger":
        return xdr(i_xdr, near.cli, STRANGER, at)
    if kind == "call_id":
        return xdr(i_xdr, near.cli, near.cld.replace(" ", "")[1:], at, "not-ours@elsewhere")
    return xdr(i_xdr, near.cli, near.cld.replace(" ", "")[1:], at + 3600)


@settings(max_examples=300, deadline=None)
@given(runs())
def test_every_billed_message_gets_its_own_xdr_and_strangers_are_orphans(run):
    sent, rows, skew, truth, others = run
    found = match(sent, rows, skew)
    paired = {rows[i].i_xdr: m for i, m in found.pairs.items()}
    assert set(paired) == set(truth)  # every true xDR paired, no unrelated one
    assert {rows[i].i_xdr for i in found.orphans} == others
    assert len(set(paired.values())) == len(paired)  # one xDR per message at most
    by_id = {s.msg_id: s for s in sent}
    for index, msg_id in found.pairs.items():
        row, message = rows[index], by_id[msg_id]
        assert (row.CLI, row.CLD) == (message.cli, message.cld.replace(" ", "")[1:])
        assert abs(row.connect_time.timestamp() - skew - message.sent_at) <= TOLERANCE
        if row.call_id:
            assert truth[row.i_xdr] == msg_id  # a Call-ID names exactly its message


@settings(max_examples=200, deadline=None)
@given(runs(), st.randoms(use_true_random=False))
def test_the_order_of_the_xdrs_does_not_matter(run, shuffle):
    sent, rows, skew, _, _ = run
    again = list(rows)
    shuffle.shuffle(again)
    first, second = match(sent, rows, skew), match(sent, again, skew)
    assert {rows[i].i_xdr: m for i, m in first.pairs.items()} == \
        {again[i].i_xdr: m for i, m in second.pairs.items()}


def test_two_messages_in_one_second_between_the_same_pair_get_one_xdr_each():
    sent = [Sent("a", "", NUMBERS[0], NUMBERS[1], T0 + 0.1),
            Sent("b", "", NUMBERS[0], NUMBERS[1], T0 + 0.6)]
    rows = [xdr(2, NUMBERS[0], NUMBERS[1], T0 + 0.7), xdr(1, NUMBERS[0], NUMBERS[1], T0 + 0.2)]
    found = match(sent, rows)
    assert found.pairs == {1: "a", 0: "b"} and found.orphans == []  # billing order kept


def test_a_second_xdr_with_the_same_call_id_is_an_orphan():
    sent = [Sent("a", "c1@h", NUMBERS[0], NUMBERS[1], T0)]
    rows = [xdr(1, NUMBERS[0], NUMBERS[1], T0, "c1@h"), xdr(2, NUMBERS[0], NUMBERS[1], T0,
                                                          "c1@h")]
    found = match(sent, rows)
    assert (found.pairs, found.orphans, found.how) == ({0: "a"}, [1], {0: "call_id"})


def test_an_xdr_outside_the_tolerance_is_an_orphan():
    sent = [Sent("a", "", NUMBERS[0], NUMBERS[1], T0)]
    found = match(sent, [xdr(1, NUMBERS[0], NUMBERS[1], T0 + 30)], skew=20.0, tolerance=3.0)
    assert found.orphans == [0]
    assert match(sent, [xdr(1, NUMBERS[0], NUMBERS[1], T0 + 21)], skew=20.0).pairs == {0: "a"}


def test_imsims_own_xdrs_pair_by_msg_id_customer_and_vendor():
    sent = [Sent("a", "", NUMBERS[0], NUMBERS[1], T0)]
    rows = [xdr(1, NUMBERS[0], NUMBERS[1], T0, msg_id="a"),
            xdr(2, NUMBERS[0], NUMBERS[1], T0, msg_id="a"),
            xdr(3, NUMBERS[0], NUMBERS[1], T0, msg_id="other-run")]
    found = match(sent, rows)
    assert (found.pairs, found.orphans) == ({0: "a", 1: "a"}, [2])


@settings(max_examples=100, deadline=None)
@given(st.floats(-3600.0, 3600.0), st.lists(st.floats(0.0, 0.999), min_size=1, max_size=8))
def test_the_skew_is_measured_from_the_proxys_date_headers(skew, fractions):
    records = [{"kind": "message", "answered_at": T0 + n + f,
                "date": formatdate(T0 + n + f + skew, usegmt=True)}
               for n, f in enumerate(fractions)]
    records.append({"kind": "message", "answered_at": T0, "date": None})
    assert abs(measured_skew(records) - skew) <= 0.5 + 1e-6


def test_no_date_header_means_no_skew():
    assert measured_skew([{"kind": "message", "answered_at": T0, "date": None}]) == 0.0


def test_a_targets_rewrites_apply_in_order_to_the_digits():
    translate = rewriter([("^00", ""), ("^0", "44")])
    assert [translate(n) for n in ("+1 (555) 123-0001", "0044 7700 900123", "07700900123")] \
        == ["15551230001", "447700900123", "447700900123"]
