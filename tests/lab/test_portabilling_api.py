"""The xDR client against the conformance fake of PortaBilling's API (both login
generations, refresh, i_account, windows, paging, faults, TLS)."""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
import threading
from decimal import Decimal

import pytest

from lab.xdr_client import XdrClient, XdrSourceError
from tests.lab.portabilling_fake import AUTH_FAILED, PortaBillingFake

ALICE, BOB, CAROL = "15551230001", "15551230002", "15551230003"
T0 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC).timestamp()
DAY = (dt.datetime.fromtimestamp(T0 - 3600, dt.UTC),
       dt.datetime.fromtimestamp(T0 + 3600, dt.UTC))


@pytest.fixture(params=["access_token", "session_id"])
def fake(request):
    fake = PortaBillingFake(request.param, time_zone="America/New_York").start()
    fake.account(ALICE, 7001)
    fake.account(BOB, 7002)
    yield fake
    fake.close()


def client(fake: PortaBillingFake, **options) -> XdrClient:
    return XdrClient(fake.url, fake.login, fake.password, time_zone="America/New_York",
                     **options)


def test_both_login_generations_read_an_accounts_xdrs(fake):
    fake.xdr(ALICE, ALICE, BOB, T0 + 10, 0.01, call_id="c1@host")
    fake.xdr(BOB, BOB, ALICE, T0 + 11, 0.02)
    found = client(fake).xdrs(ALICE, *DAY)
    assert [(x.account_id, x.CLI, x.CLD, x.call_id, x.charged_amount, x.unit_price,
             x.charged_quantity, x.sip_code, x.msg_id, x.tariff) for x in found] == [
        (ALICE, ALICE, BOB, "c1@host", Decimal("0.01"), Decimal("0.01"), 1, 200, "", "")]
    # 'YYYY-MM-DD HH:MM:SS' in the API user's zone, read back as the same instant
    assert found[0].connect_time == dt.datetime.fromtimestamp(T0 + 10, dt.UTC)
    assert fake.count("Session/login") == 1


def test_modern_login_sends_a_bearer_token_legacy_sends_auth_info(fake):
    api = client(fake)
    api.xdrs(ALICE, *DAY)
    assert api.session.generation == fake.generation
    if fake.generation == "access_token":
        assert api.session.access_token in fake.tokens and api.session.refresh_token
    else:
        assert api.session.session_id in fake.tokens and api.session.access_token is None


def test_an_account_is_looked_up_once_and_addressed_by_i_account(fake):
    api = client(fake)
    api.xdrs(ALICE, *DAY)
    api.xdrs(ALICE, *DAY)
    assert fake.count("Account/get_account_info") == 1
    lists = [p for m, p in fake.calls if m == "Account/get_xdr_list"]
    assert {p["i_account"] for p in lists} == {7001} and "account_id" not in lists[0]


def test_only_the_window_is_asked_for_in_the_users_zone(fake):
    fake.xdr(ALICE, ALICE, BOB, T0 - 7200, 0.01)  # before the window
    fake.xdr(ALICE, ALICE, BOB, T0, 0.02)
    fake.xdr(ALICE, ALICE, BOB, T0 + 7200, 0.03)  # after it
    found = client(fake).xdrs(ALICE, *DAY)
    assert [x.charged_amount for x in found] == [Decimal("0.02")]
    asked = next(p for m, p in fake.calls if m == "Account/get_xdr_list")
    assert (asked["from_date"], asked["to_date"]) == ("2026-12-03 03:00:00",
                                                      "2026-12-03 05:00:00")  # EST


def test_pages_follow_the_total(fake):
    for n in range(7):
        fake.xdr(ALICE, ALICE, BOB, T0 + n, 0.01 * (n + 1))
    found = client(fake).xdrs(ALICE, *DAY, page=3)
    assert sorted(x.charged_amount for x in found) == [Decimal(f"0.0{n}") for n in range(1, 8)]
    pages = [(p["offset"], p["limit"], p["get_total"]) for m, p in fake.calls
             if m == "Account/get_xdr_list"]
    assert pages == [(0, 3, 1), (3, 3, 1), (6, 3, 1)]


def test_an_expired_session_is_renewed_once_and_the_call_repeated(fake):
    api = client(fake)
    api.xdrs(ALICE, *DAY)
    fake.expire_sessions()
    fake.xdr(ALICE, ALICE, BOB, T0, 0.05)
    assert len(api.xdrs(ALICE, *DAY)) == 1
    renewals = fake.count("Session/refresh_access_token"), fake.count("Session/login")
    assert renewals == ((1, 1) if fake.generation == "access_token" else (0, 2))


def test_a_used_refresh_token_falls_back_to_a_new_login():
    fake = PortaBillingFake("access_token").start()
    fake.account(ALICE, 7001)
    api = client(fake)
    api.xdrs(ALICE, *DAY)
    fake.refresh_tokens.clear()
    fake.expire_sessions()
    api.xdrs(ALICE, *DAY)
    assert (fake.count("Session/refresh_access_token"), fake.count("Session/login")) == (1, 2)
    fake.close()


def test_a_token_about_to_expire_is_refreshed_before_the_call():
    fake = PortaBillingFake("access_token", token_seconds=10).start()  # < 30 s early
    fake.account(ALICE, 7001)
    api = client(fake)
    api.xdrs(ALICE, *DAY)
    assert fake.count("Session/refresh_access_token") == 1  # before the xDR list
    assert [m for m, _ in fake.calls][:3] == ["Session/login", "Account/get_account_info",
                                              "Session/refresh_access_token"]
    fake.close()


def test_a_token_login_works_like_a_password(fake):
    api = XdrClient(fake.url, fake.login, token=fake.token)
    api.xdrs(ALICE, *DAY)
    assert next(p for m, p in fake.calls if m == "Session/login") == {
        "login": fake.login, "token": fake.token}


@pytest.mark.parametrize("setup, message", [
    (lambda f: f.fail_next("Account/get_xdr_list", "Server.Account.db_busy", "try\nlater"),
     "/rest/Account/get_xdr_list: HTTP 500: Server.Account.db_busy: try later"),
    (lambda f: f.garbage.add("Account/get_xdr_list"),
     "/rest/Account/get_xdr_list: the answer is not JSON (it starts '<html>maintenance"),
    (lambda f: f.fail_next("Session/login", AUTH_FAILED, "x"),
     "/rest/Session/login: HTTP 500: Server.Session.check_auth.auth_failed: x"),
])
def test_faults_are_one_line_naming_the_method(fake, setup, message):
    setup(fake)
    with pytest.raises(XdrSourceError) as caught:
        client(fake).xdrs(ALICE, *DAY)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_wrong_credentials_and_unknown_accounts_are_one_line(fake):
    with pytest.raises(XdrSourceError, match=r"Session/login: HTTP 500: .*Login failed"):
        XdrClient(fake.url, fake.login, "nope").xdrs(ALICE, *DAY)
    with pytest.raises(XdrSourceError, match=f"no account '{CAROL}' for this API user"):
        client(fake).xdrs(CAROL, *DAY)


def test_a_session_fault_is_retried_once_after_one_renewal(fake):
    api = client(fake)
    api.xdrs(ALICE, *DAY)
    fake.fail_next("Account/get_xdr_list", AUTH_FAILED, "expired")
    assert api.xdrs(ALICE, *DAY) == []  # renewed, asked again, answered
    fake.fail_next("Account/get_xdr_list", AUTH_FAILED, "still refused", times=2)
    before = fake.count("Session/refresh_access_token") + fake.count("Session/login")
    with pytest.raises(XdrSourceError, match="still refused"):
        api.xdrs(ALICE, *DAY)
    after = fake.count("Session/refresh_access_token") + fake.count("Session/login")
    assert after - before == 1


def test_failed_xdrs_keep_their_flag_as_a_code():
    fake = PortaBillingFake(time_zone="America/New_York").start()
    fake.account(ALICE, 7001)
    fake.xdr(ALICE, ALICE, BOB, T0, 0.0, failed=True)
    assert [x.sip_code for x in client(fake).xdrs(ALICE, *DAY)] == [0]
    fake.close()


def test_unsuccessful_attempts_are_asked_for(fake):
    # PortaBilling lists an unsuccessful attempt only when asked (its xDR history's
    # "Show Unsuccessful Attempts"; WebTrit's adapter sends show_unsuccessful: 1): a
    # refused message that was charged all the same must reach the comparison
    fake.xdr(ALICE, ALICE, BOB, T0, 0.05, failed=True)
    found = client(fake).xdrs(ALICE, *DAY)
    assert [(x.sip_code, x.charged_amount) for x in found] == [(0, Decimal("0.05"))]
    asked = next(p for m, p in fake.calls if m == "Account/get_xdr_list")
    assert asked["show_unsuccessful"] == 1


def test_the_fake_hides_unsuccessful_attempts_unless_asked(fake):
    fake.xdr(ALICE, ALICE, BOB, T0, 0.01)
    fake.xdr(ALICE, ALICE, BOB, T0 + 1, 0.05, failed=True)
    api = client(fake)
    api.xdrs(ALICE, *DAY)  # logs in, finds i_account
    plain = api.call("Account/get_xdr_list", {
        "i_account": 7001, "from_date": "2026-12-03 03:00:00",
        "to_date": "2026-12-03 05:00:00", "get_total": 1})
    assert [x["failed"] for x in plain["xdr_list"]] == [0] and plain["total"] == 1


def test_unreachable_api_is_one_line():
    with pytest.raises(XdrSourceError, match=r"127.0.0.1:9/rest/Session/login: unreachable"):
        XdrClient("http://127.0.0.1:9", "a", "b", timeout=1).xdrs(ALICE, *DAY)


# -- TLS ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_fake(tmp_path_factory):
    """The fake behind HTTPS with a self-signed certificate for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    done = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                           "-keyout", str(key), "-out", str(cert), "-days", "2",
                           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        pytest.skip("openssl cannot make a test certificate")
    fake = PortaBillingFake()
    fake.account(ALICE, 7001)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    fake.httpd.socket = context.wrap_socket(fake.httpd.socket, server_side=True)
    fake.url = fake.url.replace("http://", "https://")
    threading.Thread(target=fake.httpd.serve_forever, daemon=True).start()
    yield fake, cert
    fake.close()


def test_tls_is_verified_by_default(tls_fake):
    fake, cert = tls_fake
    with pytest.raises(XdrSourceError, match=r"TLS: .*certificate \(give xdrs.api.ca_bundle"):
        XdrClient(fake.url, fake.login, fake.password, timeout=5).xdrs(ALICE, *DAY)
    assert XdrClient(fake.url, fake.login, fake.password, verify=cert).xdrs(ALICE, *DAY) == []
    assert XdrClient(fake.url, fake.login, fake.password, verify=False).xdrs(ALICE, *DAY) \
        == []


def test_only_the_messaging_service_is_asked_for_when_told(fake):
    fake.xdr(ALICE, ALICE, BOB, T0, 0.01)  # Messaging (i_service_type 21 in the fake)
    fake.xdr(ALICE, ALICE, BOB, T0 + 1, 0.30, i_service_type=3)  # a voice call
    assert len(client(fake).xdrs(ALICE, *DAY)) == 2
    found = client(fake, service_type=21).xdrs(ALICE, *DAY)
    assert [x.charged_amount for x in found] == [Decimal("0.01")]
    assert [p.get("i_service_type") for m, p in fake.calls
            if m == "Account/get_xdr_list"] == [None, 21]
