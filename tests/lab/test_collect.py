"""A remote run's xDRs from a deployment's CSV export: the run's accounts and window
only, matched without imsim's ids, orphans named (`lab.collect`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from lab.collect import Source, remote_xdrs, sent_messages, window
from lab.matching import Sent
from lab.xdr_client import XdrSourceError

ALICE, BOB, CAROL = "15551230001", "15551230002", "15551230003"
T0 = dt.datetime(2026, 12, 3, 9, 0, 0, tzinfo=dt.UTC).timestamp()

# a deployment's own export: its column names, times in Europe/Prague (UTC+1 in December)
EXPORT = """\
Id,Account,From,To,Start,Call ID,Units,Charged
1,15551230001,15551230001,15551230002,2026-12-03 10:00:10,c1@10.0.0.1,1,0.01
2,15551230002,15551230002,15551230001,2026-12-03 10:00:21,,1,0.01
3,15551230001,15551230001,15551230003,2026-12-03 10:00:30,,1,0.02
4,15551230001,15551230001,447700900123,2026-12-03 10:00:31,,1,0.05
5,15551230001,15551230001,15551230002,2026-12-02 10:00:10,,1,0.01
6,15550000009,15550000009,15551230001,2026-12-03 10:00:15,,1,0.01
"""
COLUMNS = {"Id": "i_xdr", "Account": "account_id", "From": "CLI", "To": "CLD",
           "Start": "connect_time", "Call ID": "call_id", "Units": "charged_quantity",
           "Charged": "charged_amount"}
SENT = [Sent("m1", "c1@10.0.0.1", ALICE, BOB, T0 + 10.2),
        Sent("m2", "", BOB, ALICE, T0 + 20.4),
        Sent("m3", "c3@10.0.0.1", ALICE, CAROL, T0 + 30.1),
        Sent("m4", "", CAROL, ALICE, T0 + 40.0, answered=False)]


def source(tmp_path, text: str = EXPORT, **options) -> Source:
    path = tmp_path / "export.csv"
    path.write_text(text)
    return Source(csv=path, time_zone="Europe/Prague", columns=COLUMNS, **options)


def test_an_export_is_matched_by_call_id_and_by_time(tmp_path):
    found = remote_xdrs(source(tmp_path), SENT, [ALICE, BOB, CAROL], awaited=3)
    assert [(x.i_xdr, x.msg_id, x.call_id, x.charged_amount) for x in found.xdrs] == [
        (1, "m1", "c1@10.0.0.1", Decimal("0.01")),
        (2, "m2", "", Decimal("0.01")),
        (3, "m3", "c3@10.0.0.1", Decimal("0.02"))]  # the message's Call-ID filled in
    assert found.by == {"msg_id": 0, "call_id": 1, "time": 2}
    # the stranger's xDR is the run's account in its window: an orphan; yesterday's and
    # another account's are not the run's at all
    assert found.orphans == ["i_xdr 4 15551230001 -> 447700900123 at 2026-12-03 "
                             "10:00:31+0100 call_id -"]
    assert found.uncompared == ("xdrs", "tariff", "rate_code")


def test_the_skew_moves_the_window_and_the_times(tmp_path):
    late = [Sent(s.msg_id, s.call_id, s.cli, s.cld, s.sent_at - 120.0, s.answered)
            for s in SENT]
    found = remote_xdrs(source(tmp_path), late, [ALICE, BOB, CAROL], 3, skew=120.0)
    assert [x.msg_id for x in found.xdrs] == ["m1", "m2", "m3"]
    assert remote_xdrs(source(tmp_path), late, [ALICE, BOB, CAROL], 3).xdrs == []


def test_an_export_without_a_needed_column_is_one_line(tmp_path):
    text = EXPORT.replace("Charged", "Amount")
    with pytest.raises(XdrSourceError, match="no column charged_amount in the header "
                                             r"\(map yours with xdrs.columns"):
        remote_xdrs(source(tmp_path, text), SENT, [ALICE], 1)


def test_the_window_spans_the_sends_on_the_remote_clock():
    since, until = window(SENT, skew=-5.0, tolerance=3.0)
    assert (since.timestamp(), until.timestamp()) == (T0 + 10.2 - 5 - 4, T0 + 40 - 5 + 4)


def test_driver_rows_become_sent_messages_with_the_models_numbers():
    rows = [{"msg_id": "m2", "call_id": "x@h", "from": BOB, "to": "+1 (555) 123-0001",
             "sent_at": T0, "code": 200},
            {"msg_id": "m4", "call_id": None, "from": CAROL, "to": ALICE, "sent_at": T0,
             "code": 403},
            {"msg_id": "m9", "from": CAROL, "to": ALICE, "sent_at": None}]
    assert sent_messages(rows, {"m2": (BOB, ALICE)}) == [
        Sent("m2", "x@h", BOB, ALICE, T0, True), Sent("m4", "", CAROL, ALICE, T0, False)]


NATIONAL = """\
Id,Account,From,To,Start,Call ID,Units,Charged,result
1,15551230001,5551230001,5551230002,2026-12-03 10:00:10,,1,0.01,200
2,15551230002,5551230002,5551230001,2026-12-03 10:00:20,,1,0.00,403
3,15551230002,5551230002,5551230001,2026-12-03 10:00:21,,1,0.01,
4,15551230003,5551230003,5551230001,2026-12-03 10:00:40,,1,0.02,403
"""


def test_the_targets_number_translation_and_failed_attempts(tmp_path):
    """National numbers rewritten to E.164; a failed attempt that charges nothing left
    out, one that charges kept (here: billed for a refused message)."""
    found = remote_xdrs(source(tmp_path, NATIONAL, numbers=[("^555", "1555")]), SENT,
                        [ALICE, BOB, CAROL], awaited=3)
    assert [(x.i_xdr, x.msg_id) for x in found.xdrs] == [(1, "m1"), (3, "m2"), (4, "m4")]
    assert found.orphans == []
    untranslated = remote_xdrs(source(tmp_path, NATIONAL), SENT, [ALICE, BOB, CAROL], 3)
    assert untranslated.xdrs == [] and len(untranslated.orphans) == 3
