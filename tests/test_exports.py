"""`imsim.planning.exports`: xDR exports of either dialect read into one schema."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsim.planning import exports

PORTABILLING = """\
i_xdr,account_id,CLI,CLD,connect_time,charged_amount,charged_quantity,h323_conf_id,\
i_service,description,failed,bit_flags,disconnect_cause
17,15551230001,15551230001,+447700900000,2026-01-05 09:00:10,0.10,2,abc@host,5,Msg,0,0,16
18,15551230001,15551230001,15551230002,2026-07-05 09:00:00,0.000015,1,def@host,5,Msg,1,0,16
19,15551230002,15551230002,not-a-number,2026-01-05 09:00:00,1e-05,1,ghi@host,3,Msg,0,0,16
"""
IMSIM = """\
i_xdr,env,account_id,CLI,CLD,connect_time,call_id,msg_id,service,direction,tariff,\
rate_code,charged_quantity,unit_price,charged_amount,currency,sip_code,reason
1,main,15551230001,15551230001,15551230002,2026-01-05 17:00:01.567634+00:00,c1,m1,\
messaging,outgoing,retail,1,1,0.02,0.02,USD,200,OK
2,main,internal,15551230001,15551230002,2026-01-05 17:00:01.567634+00:00,c1,m1,\
messaging,vendor,interconnect,|,1,0.001,0.001,USD,200,OK
"""


def read(path, **options) -> pd.DataFrame:
    return exports.read([path], **options).compute().reset_index(drop=True)


def test_portabilling_names_and_local_times(tmp_path):
    (tmp_path / "pb.csv").write_text(PORTABILLING)
    frame = read(tmp_path / "pb.csv", time_zone="America/New_York")
    assert frame["i_xdr"].tolist() == [17, 18, 19]
    assert frame["call_id"].tolist() == ["abc@host", "def@host", "ghi@host"]
    assert frame["CLD"].tolist() == [447700900000, 15551230002, -1]
    assert frame["charged_amount_micro"].tolist() == [100_000, 15, 10]
    assert frame["charged_quantity"].tolist() == [2, 1, 1]
    assert frame["connect_time"].tolist() == [
        pd.Timestamp("2026-01-05 14:00:10", tz="UTC"),    # EST, UTC-5
        pd.Timestamp("2026-07-05 13:00:00", tz="UTC"),    # EDT, UTC-4
        pd.Timestamp("2026-01-05 14:00:00", tz="UTC")]
    assert frame["length"].tolist() == [-1, -1, -1] and set(frame["env"]) == {""}


def test_only_the_accounts_own_messaging_xdrs_are_outgoing(tmp_path):
    (tmp_path / "pb.csv").write_text(PORTABILLING)
    (tmp_path / "imsim.csv").write_text(IMSIM)
    assert exports.charged(read(tmp_path / "pb.csv"))["i_xdr"].tolist() == [17, 19]
    assert exports.charged(read(tmp_path / "pb.csv"), "5")["i_xdr"].tolist() == [17]
    assert exports.charged(read(tmp_path / "imsim.csv"))["i_xdr"].tolist() == [1]
    assert not exports.charged(read(tmp_path / "pb.csv"))["incoming"].any()


def test_charged_incoming_xdrs_are_kept_and_flagged(tmp_path):
    incoming = ("3,main,15551230002,15551230001,15551230002,2026-01-05 17:00:01+00:00,c1,m1,"
                "messaging,incoming,retail,1,1,0.01,0.01,USD,200,OK\n"
                "4,main,15551230002,15551230001,15551230002,2026-01-05 17:00:02+00:00,c2,m2,"
                "messaging,incoming,retail,1,1,0,0,USD,200,OK\n")
    (tmp_path / "imsim.csv").write_text(IMSIM + incoming)
    got = exports.charged(read(tmp_path / "imsim.csv"))
    assert got["i_xdr"].tolist() == [1, 3]   # not the vendor's, not a free incoming one
    assert got["incoming"].tolist() == [False, True]


def test_csv_gzip_parquet_and_globs_read_alike(tmp_path):
    (tmp_path / "a.csv").write_text(IMSIM)
    with gzip.open(tmp_path / "b.csv.gz", "wt") as handle:
        handle.write(IMSIM)
    pd.read_csv(tmp_path / "a.csv").assign(
        connect_time=lambda f: pd.to_datetime(f["connect_time"], utc=True)).to_parquet(
        tmp_path / "c.parquet", index=False)
    plain = read(tmp_path / "a.csv")
    for other in ("b.csv.gz", "c.parquet"):
        pd.testing.assert_frame_equal(read(tmp_path / other), plain)
    both = exports.read([tmp_path / "*.csv*"]).compute()
    assert len(both) == 2 * len(plain)
    assert plain["charged_amount_micro"].tolist() == [20_000, 1_000]
    assert plain["env"].tolist() == ["main", "main"]
    assert plain["connect_time"][0] == pd.Timestamp("2026-01-05 17:00:01.567634", tz="UTC")


def test_unix_connect_time_and_a_column_mapping(tmp_path):
    (tmp_path / "x.csv").write_text("src,dst,unix_connect_time,account_id,charged_amount\n"
                                    "15551230001,15551230002,1767603600,a,0.5\n")
    frame = read(tmp_path / "x.csv", mapping={"src": "CLI", "dst": "CLD"})
    assert frame["CLI"].tolist() == [15551230001] and frame["CLD"].tolist() == [15551230002]
    assert frame["connect_time"].tolist() == [pd.Timestamp("2026-01-05 09:00", tz="UTC")]
    assert frame["charged_amount_micro"].tolist() == [500_000]


def test_float_amounts_are_exact_micro_units():
    amounts = pd.Series([0.07, 0.1 + 0.2, 1e-06, 123456.654321])
    assert exports.micro(amounts).tolist() == [70_000, 300_000, 1, 123_456_654_321]


@pytest.mark.parametrize("text, sources, message", [
    ("account_id,CLI\n1,2\n", ["x.csv"], "x.csv: no column CLD, connect_time, charged_amount"),
    (IMSIM, ["nothing-*.csv"], "nothing-*.csv: no such export"),
    (IMSIM, ["x.json"], "x.json: not an export"),
])
def test_bad_exports_name_the_file_and_the_fix(tmp_path, text, sources, message):
    (tmp_path / "x.csv").write_text(text)
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(exports.ExportError, match=message.replace("*", r"\*")):
        exports.read([tmp_path / s for s in sources])


def test_a_bad_amount_is_an_error_naming_the_value(tmp_path):
    (tmp_path / "x.csv").write_text(IMSIM.replace(",0.02,USD", ",abc,USD"))
    with pytest.raises(exports.ExportError, match="charged_amount 'abc' is not a number"):
        read(tmp_path / "x.csv")


def _by_the_rule(value: str | None) -> int:
    """The documented rule, value by value: strip, drop leading ``+``; 1-18 digits."""
    text = (value or "").strip().lstrip("+")
    return int(text) if text.isdigit() and text.isascii() and len(text) <= 18 else -1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="+ -0123456789a٣", max_size=21),
                          st.integers(0, 10 ** 19).map(str)), max_size=30))
def test_numbers_follow_the_rule_on_the_fast_path_and_off_it(values):
    column = pd.Series(values, dtype="str")
    assert exports.numbers(column).tolist() == [_by_the_rule(v) for v in values]


HEADER = "i_xdr,account_id,CLI,CLD,connect_time,charged_amount\n"


def test_local_times_in_the_autumn_and_spring_hours_of_a_zone_change(tmp_path):
    """In America/New_York 01:30 on 2026-11-01 happens twice (EDT, then EST) and 02:30
    on 2026-03-08 not at all: each is still a time (the earlier reading; the gap's
    wall clock shifted forward to 03:00 EDT), never a missing one."""
    (tmp_path / "x.csv").write_text(HEADER + "1,a,1,2,2026-11-01 01:30:00,0.01\n"
                                    "2,a,1,2,2026-03-08 02:30:00,0.01\n")
    frame = read(tmp_path / "x.csv", time_zone="America/New_York")
    assert frame["connect_time"].tolist() == [
        pd.Timestamp("2026-11-01 05:30:00", tz="UTC"),    # 01:30 EDT, UTC-4
        pd.Timestamp("2026-03-08 07:00:00", tz="UTC")]    # 03:00 EDT


@pytest.mark.parametrize("written", ["2026-01-05 09:00:10+01", "2026-01-05T09:00:10+0100",
                                     "2026-01-05 09:00:10+01:00"])
def test_offsets_in_any_iso_form(tmp_path, written):
    (tmp_path / "x.csv").write_text(HEADER + f"1,a,1,2,{written},0.01\n")
    assert read(tmp_path / "x.csv")["connect_time"].tolist() == [
        pd.Timestamp("2026-01-05 08:00:10", tz="UTC")]


def test_empty_rows_are_left_out(tmp_path):
    (tmp_path / "x.csv").write_text(HEADER + ",,,,,\n1,a,1,2,2026-01-05 09:00:10,0.01\n"
                                    " , ,,,,\n")
    assert read(tmp_path / "x.csv")["i_xdr"].tolist() == [1]


@pytest.mark.parametrize("written", ["05/01/2026 09:00:10", "yesterday", ""])
def test_a_connect_time_that_is_not_a_time_is_an_error_naming_it(tmp_path, written):
    (tmp_path / "x.csv").write_text(HEADER + f"1,a,1,2,{written},0.01\n")
    with pytest.raises(exports.ExportError, match=f"x.csv: connect_time '{written}' is not a time.*"
                                                  "YYYY-MM-DD HH:MM:SS"):
        read(tmp_path / "x.csv")


def test_a_semicolon_separated_export_is_read(tmp_path):
    (tmp_path / "x.csv").write_text((HEADER + "1;a;1;2;2026-01-05 09:00:10;0.01\n")
                                    .replace(",", ";"))
    frame = read(tmp_path / "x.csv")
    assert (frame["i_xdr"].tolist(), frame["charged_amount_micro"].tolist()) == ([1], [10_000])


def test_an_unknown_time_zone_is_an_error_naming_it(tmp_path):
    (tmp_path / "x.csv").write_text(HEADER + "1,a,1,2,2026-01-05 09:00:10,0.01\n")
    with pytest.raises(exports.ExportError, match="unknown time zone 'Mars/Base'.*Europe/"):
        exports.read([tmp_path / "x.csv"], time_zone="Mars/Base")


def test_a_folder_of_csv_exports_reads_its_files(tmp_path):
    """README: exports are "files, folders, globs"; a folder of monthly CSV files is
    one of them, not a Parquet dataset."""
    (tmp_path / "month").mkdir()
    (tmp_path / "month" / "a.csv").write_text(HEADER + "1,a,1,2,2026-01-05 09:00:10,0.01\n")
    with gzip.open(tmp_path / "month" / "b.csv.gz", "wt") as handle:
        handle.write(HEADER + "2,a,1,2,2026-01-06 09:00:10,0.02\n")
    (tmp_path / "month" / "notes.txt.bak").write_text("not an export")
    assert sorted(read(tmp_path / "month")["i_xdr"]) == [1, 2]
