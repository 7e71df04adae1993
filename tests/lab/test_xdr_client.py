"""The xDR client against the real billing service, the CSV export reader, provisioning."""

from __future__ import annotations

import datetime as dt
import gzip
import signal
import sys
from decimal import Decimal

import pandas as pd
import pytest

from imsim.model import scenario
from imsim.planning.exports import charged
from imsim.rules.message import XDR_COLUMNS
from lab import provision
from lab.xdr_client import (
    API_COLUMNS,
    XdrClient,
    XdrSourceError,
    frame,
    from_record,
    read_csv_export,
)
from tests.lab.billing_fixtures import ALICE, BOB, HANDBOOK, Service, contract


@pytest.fixture(scope="module")
def billed(tmp_path_factory: pytest.TempPathFactory):
    """A service holding 5 billed messages from Alice and 2 from Bob."""
    service = Service(tmp_path_factory.mktemp("xdr-client")).start()
    for n, (sender, to) in enumerate([(ALICE, BOB)] * 5 + [(BOB, ALICE)] * 2):
        body = contract(f"c-{n}", sender, to, msg_id=f"m-{n}")
        assert service.post("/authorize", body)[1]["code"] == 200
        service.post("/account", {**body, "code": 200, "reason": "OK"})
    yield service
    service.kill(signal.SIGTERM)


def client(service) -> XdrClient:
    return XdrClient(service.url, *service.credentials())


def test_pages_through_an_accounts_xdrs(billed):
    found = client(billed).xdrs(account_id=ALICE, page=2)
    assert [x.msg_id for x in found] == [f"m-{n}" for n in range(5)]
    first = found[0]
    assert (first.account_id, first.CLD, first.direction, first.tariff, first.rate_code,
            first.charged_quantity, first.unit_price, first.charged_amount, first.currency) \
        == (ALICE, BOB, "outgoing", "tariff B", "1555", 1, Decimal("0.01"), Decimal("0.01"),
            "USD")
    assert first.connect_time.tzinfo is not None


def test_all_xdrs_make_the_shared_frame(billed):
    found = client(billed).xdrs()
    table = frame(found)
    assert tuple(table.columns) == XDR_COLUMNS
    assert len(table) == 14  # customer + vendor per message
    assert set(table["direction"]) == {"outgoing", "vendor"}


def test_wrong_password_is_a_clear_error(billed):
    login, _ = billed.credentials()
    with pytest.raises(XdrSourceError, match="Session/login: HTTP 403: "
                       "Server.Session.auth_failed: wrong login or password"):
        XdrClient(billed.url, login, "nope").xdrs()


def test_unknown_account_is_a_clear_error(billed):
    with pytest.raises(XdrSourceError, match="no account '19999999999' for this API user"):
        client(billed).xdrs(account_id="19999999999")


def test_the_service_speaks_portabillings_dialect(billed):
    """An access token, i_account from get_account_info, paging by the total: the
    client code a remote run uses."""
    api = client(billed)
    assert [x.msg_id for x in api.xdrs(ALICE, page=3)] == [f"m-{n}" for n in range(5)]
    assert api.session.generation == "access_token" and api.session.refresh_token
    assert api.accounts == {ALICE: 1}  # the handbook's accounts in id order
    rows, total = api.xdr_list(ALICE, limit=3, offset=3)
    assert (len(rows), total) == (2, 5)
    api.session.access_token = "expired-or-made-up"
    assert len(api.xdrs(BOB)) == 2  # renewed with the refresh token
    assert api.session.access_token != "expired-or-made-up"


def test_unreachable_api_is_a_clear_error():
    with pytest.raises(XdrSourceError, match="127.0.0.1:9"):
        XdrClient("http://127.0.0.1:9", "a", "b", timeout=1).xdrs()


# -- CSV exports --------------------------------------------------------------------------

PORTABILLING_CSV = """\
i_xdr,account_id,CLI,CLD,connect_time,h323_conf_id,charged_quantity,charged_amount
17,15551230001,15551230001,15551230002,2026-01-05 09:00:10,abc@host,1,0.01
18,15551230001,15551230001,447700900000,2026-01-05 09:01:00,def@host,2,0.10
"""


def test_reads_a_portabilling_csv_export(tmp_path):
    path = tmp_path / "xdrs.csv"
    path.write_text(PORTABILLING_CSV)
    rows = read_csv_export(path, time_zone="America/New_York")
    assert [(x.i_xdr, x.call_id, x.charged_quantity, x.unit_price, x.charged_amount)
            for x in rows] == [(17, "abc@host", 1, Decimal("0.01"), Decimal("0.01")),
                               (18, "def@host", 2, Decimal("0.05"), Decimal("0.10"))]
    assert rows[0].connect_time == dt.datetime(2026, 1, 5, 14, 0, 10, tzinfo=dt.UTC)
    assert tuple(frame(rows).columns) == XDR_COLUMNS


@pytest.mark.parametrize("name, sep, blank", [
    ("semicolon.csv", ";", ";;;;;;;\n"), ("tab.csv", "\t", "\n"),
    ("blank-lines.csv", ",", ",,,,,,,\n\n"), ("packed.csv.gz", ",", ",,,,,,,\n"),
])
def test_an_export_as_spreadsheets_write_it_reads_the_same(tmp_path, name, sep, blank):
    # the same export as `imsim rerate` reads it: ';' or a tab from a spreadsheet in
    # many locales, empty lines between the rows, gzip: the same two xDRs
    lines = PORTABILLING_CSV.splitlines(keepends=True)
    text = (lines[0] + lines[1] + blank + lines[2] + blank).replace(",", sep)
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    rows = read_csv_export(path, time_zone="America/New_York")
    assert [(x.i_xdr, x.CLD, x.charged_amount) for x in rows] == [
        (17, "15551230002", Decimal("0.01")), (18, "447700900000", Decimal("0.10"))]


def test_reads_back_the_services_own_rows_as_csv(billed, tmp_path):
    found = client(billed).xdrs(account_id=BOB)
    path = tmp_path / "export.csv"
    lines = [",".join(XDR_COLUMNS)]
    lines += [",".join(str(getattr(x, c).isoformat() if c == "connect_time" else getattr(x, c))
                       for c in XDR_COLUMNS) for x in found]
    path.write_text("\n".join(lines) + "\n")
    assert read_csv_export(path) == found


@pytest.mark.parametrize("text, message", [
    ("", "empty export"),
    ("account_id,CLI\n1,2\n", "no column CLD, connect_time, charged_amount"),
    ("account_id,CLI,CLD,connect_time,charged_amount\n1,2,3,never,0.1\n", "xDR 1"),
    ("account_id,CLI,CLD,connect_time,charged_amount\n1,2,3,2026-01-05 09:00:00,abc\n",
     "xDR 1"),
])
def test_bad_exports_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(XdrSourceError, match=message):
        read_csv_export(path)


# -- provisioning -------------------------------------------------------------------------

def test_subscribers_are_the_scenario_accounts_on_their_domain():
    assert provision.subscribers(scenario.load(HANDBOOK)) == [
        ("15551230001", "sip.example.com", "alice-secret"),
        ("15551230002", "sip.example.com", "bob-secret"),
        ("15551230003", "sip.example.com", "carol-secret")]


def test_billing_command_ends_with_the_db_path(tmp_path):
    argv = provision.billing_command(HANDBOOK, 8070, tmp_path / "x.sqlite", speed=2,
                                     extra=["--synchronous", "NORMAL"])
    assert argv[:3] == [sys.executable, "-m", "lab.billing_service"]
    assert argv[-2:] == ["--db", str((tmp_path / "x.sqlite").resolve())]
    assert "alice-secret" not in " ".join(argv)


def test_a_call_id_beats_the_conference_id_which_the_api_never_takes_for_one():
    row = {"i_xdr": 5, "account_id": "1", "CLI": "1", "CLD": "2", "charged_amount": 0.01,
           "unix_connect_time": 1796000000, "connect_time": "1999-01-01 00:00:00"}
    both = from_record({**row, "h323_conf_id": "9F2C", "call_id": "a@h"})
    export = from_record({**row, "call_id": "", "h323_conf_id": "9F2C"})
    api = from_record({**row, "h323_conf_id": "9F2C"}, columns=API_COLUMNS)
    assert (both.call_id, export.call_id, api.call_id) == ("a@h", "9F2C", "")
    assert both.connect_time == dt.datetime.fromtimestamp(1796000000, dt.UTC)


@pytest.mark.parametrize("flag, failed", [
    ("0", False), ("", False), ("N", False), ("no", False), ("F", False), ("false", False),
    (0, False), (False, False),
    ("1", True), ("Y", True), ("yes", True), ("T", True), ("true", True), (1, True),
    (True, True)])
def test_the_failed_flag_reads_as_imsim_rerate_reads_it(tmp_path, flag, failed):
    # one export, two readers: the lab's comparison and `imsim rerate` (which re-rates
    # only xDRs not failed) must agree on which xDRs are unsuccessful attempts
    row = {"i_xdr": 5, "account_id": "15551230001", "CLI": "15551230001",
           "CLD": "15551230002", "charged_amount": "0", "connect_time": "2026-01-05 09:00:00",
           "failed": flag, "disconnect_cause": "403"}
    assert (from_record(row).sip_code != 200) is failed
    frame = pd.DataFrame({"failed": [str(flag)], "direction": [""], "i_service": [""],
                          "charged_amount_micro": [0]})
    assert charged(frame).empty is failed
