"""Target files: the shipped ones load; bad ones are one line naming the key."""

from __future__ import annotations

import pytest

from imsim.errors import UsageError
from lab import targets


def test_the_shipped_targets_load():
    local = targets.load()
    assert local.local and local.spec.sip_port == 5060
    remote = targets.load(targets.TARGETS_DIR / "remote.example.yaml")
    assert not remote.local and remote.spec.proxy.address() == (
        "sip.staging.example.net", 5060, "udp")
    assert remote.spec.xdrs.api.login == "qa-robot"


@pytest.mark.parametrize("text, message", [
    ("kind: local\nsip_prot: 5060\n", "sip_prot: unknown key"),
    ("kind: local\nsip_port: 70000\n", "sip_port: Input should be less than 65536"),
    ("kind: moon\n", "kind: Input tag 'moon'"),
    ("sip_port: 5060\n", "kind: Unable to extract tag"),
    ("kind: remote\nproxy: {host: h}\nxdrs: {csv: a.csv, api: {url: 'http://x', login: a, "
     "password_env: P}}\n", "xdrs: give exactly one xDR source"),
    ("kind: remote\nproxy: {host: h}\nxdrs: {api: {url: 'ftp://x', login: a, "
     "password_env: P}}\n", "xdrs.api.url: String should match"),
    ("kind: remote\nproxy: {host: h, transport: sctp}\nxdrs: {csv: a.csv}\n",
     "proxy.transport: Input should be 'udp' or 'tcp'"),
    ("- just a list\n", "must be a mapping"),
    ("kind: remote\nproxy: {host: h}\nxdrs: {api: {url: 'http://x', login: a, "
     "password_env: P, token_env: T}}\n",
     "xdrs.api: give exactly one of password_env, password_file, token_env"),
    ("kind: remote\nproxy: {host: h}\nxdrs: {csv: a.csv, numbers: [{pattern: '('}]}\n",
     "xdrs.numbers.0: not a regular expression (missing ), unterminated subpattern"),
    ("kind: remote\nproxy: {host: h}\nxdrs: {csv: a.csv, time_zone: Mars/Olympus}\n",
     "xdrs.time_zone: unknown time zone 'Mars/Olympus'"),
    ("kind: remote\nproxy: {host: h}\nxdrs: {csv: a.csv, tolerance: 0}\n",
     "xdrs.tolerance: Input should be greater than 0"),
    ("kind: remote\nproxy: {host: h}\nxdrs: {csv: a.csv, columns: {a: [1]}}\n",
     "xdrs.columns.a: Input should be a valid string"),
])
def test_bad_files_are_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "target.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        targets.load(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"--target {path}: ")


def test_passwords_and_relative_paths(tmp_path, monkeypatch):
    (tmp_path / "accounts.csv").write_text("# id,password\n15551230001,s3cret\n")
    (tmp_path / "secret.json").write_text('{"login": "a", "password": "pw"}')
    path = tmp_path / "t.yaml"
    path.write_text("kind: remote\nproxy: {host: h}\ncredentials: {file: accounts.csv}\n"
                    "xdrs: {api: {url: 'http://x', login: a, password_file: secret.json}}\n")
    target = targets.load(path)
    assert target.passwords() == {"15551230001": "s3cret"}
    assert target.spec.xdrs.api.password(target.base) == "pw"
    monkeypatch.delenv("NOPE", raising=False)
    env = targets.Api(url="http://x", login="a", password_env="NOPE")
    with pytest.raises(UsageError, match=r"\$NOPE is not set"):
        env.password(tmp_path)


def test_credentials_saved_by_a_spreadsheet_are_the_accounts(tmp_path):
    # a spreadsheet saves CSV with a byte-order mark and writes numbers as people do:
    # each line must still give its account's password (else the run REGISTERs with
    # the scenario's password and the deployment answers 401)
    (tmp_path / "accounts.csv").write_bytes(
        "15551230001,s3cret\r\n+1 555 123-0002,other\r\n".encode("utf-8-sig"))
    path = tmp_path / "t.yaml"
    path.write_text("kind: remote\nproxy: {host: h}\ncredentials: {file: accounts.csv}\n"
                    "xdrs: {csv: x.csv}\n")
    assert targets.load(path).passwords() == {"15551230001": "s3cret",
                                              "15551230002": "other"}


@pytest.mark.parametrize("saved", [b"\xef\xbb\xbfpw\r\n", b'\xef\xbb\xbf{"password": "pw"}'])
def test_a_password_file_saved_with_a_byte_order_mark_is_its_password(tmp_path, saved):
    (tmp_path / "secret.txt").write_bytes(saved)   # Notepad's UTF-8 starts with a BOM
    api = targets.Api(url="http://x", login="a", password_file="secret.txt")
    assert api.password(tmp_path) == "pw"
    (tmp_path / "secret.txt").write_bytes(b"\xff\xfep\x00w\x00")   # UTF-16
    with pytest.raises(UsageError, match="password_file: .*secret.txt: not UTF-8 text"):
        api.password(tmp_path)


def test_tokens_tls_and_column_mappings(tmp_path, monkeypatch):
    path = tmp_path / "t.yaml"
    path.write_text("kind: remote\nproxy: {host: h}\nxdrs:\n  api: {url: 'https://x', "
                    "login: a, token_env: PB_TOKEN, ca_bundle: ca.pem}\n"
                    "  time_zone: Europe/Prague\n  columns: {Charged: charged_amount}\n")
    target = targets.load(path)
    api = target.spec.xdrs.api
    monkeypatch.setenv("PB_TOKEN", "t0k3n")
    assert (api.password(target.base), api.token(), api.tls(target.base)) == (
        None, "t0k3n", tmp_path / "ca.pem")
    assert target.spec.xdrs.columns == {"Charged": "charged_amount"}
    assert targets.Api(url="http://x", login="a", password_env="P", verify=False).tls(
        tmp_path) is False
    monkeypatch.delenv("PB_TOKEN")
    with pytest.raises(UsageError, match=r"\$PB_TOKEN is not set"):
        api.token()
