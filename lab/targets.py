"""Target files: where `imsim lab run` plays a scenario and where billed xDRs come from.

    kind: local                      # the embedded stack (lab/targets/local.yaml)
    sip_port: 5060
    billing_port: 8070

    kind: remote                     # a live deployment (lab/targets/remote.example.yaml)
    proxy: {host: sip.example.net, port: 5060, transport: udp}
    domain: sip.example.net          # optional: every environment's SIP domain becomes this
    credentials: {file: accounts.csv}   # optional: "account_id,password" lines
    xdrs:
      api: {url: https://..., login: qa, password_env: IMSIM_XDR_PASSWORD}
      #    token_env instead of a password; ca_bundle: ca.pem or verify: false for TLS
      # or: csv: exports/xdrs.csv, with columns: {their name: ours} when they differ
      time_zone: Europe/Prague         # the API user's (or the export's) time zone
      tolerance: 3                     # seconds between a send and its xDR's time
    accounting: /var/log/kamailio/acc   # optional: Kamailio flatstore files to reconcile

Files are checked at the door (pydantic): an unknown key or a bad value is one line
naming the key (`imsim.errors.UsageError`). Relative paths are read from the folder of
the target file.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from imsim.errors import UsageError
from imsim.model.config import account_number

TARGETS_DIR = Path(__file__).resolve().parent / "targets"
LOCAL = TARGETS_DIR / "local.yaml"
Port = Annotated[int, Field(gt=0, lt=65536)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Proxy(_Strict):
    host: str = Field(min_length=1)
    port: Port = 5060
    transport: Literal["udp", "tcp"] = "udp"

    def address(self) -> tuple[str, int, str]:
        return (self.host, self.port, self.transport)


class Api(_Strict):
    """PortaBilling's JSON API; the password from an environment variable or a file
    (plain text, or JSON with "password", like the lab's billing_api.secret), or an API
    token (Session/login's ``token``) from an environment variable. TLS certificates are
    verified (the system's CAs, or ``ca_bundle``) unless ``verify: false``."""

    url: str = Field(pattern=r"^https?://")
    login: str = Field(min_length=1)
    password_env: str | None = None
    password_file: Path | None = None
    token_env: str | None = None
    verify: bool = True
    ca_bundle: Path | None = None

    @model_validator(mode="after")
    def _one_password(self) -> Api:
        given = [self.password_env, self.password_file, self.token_env]
        if sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of password_env, password_file, token_env")
        return self

    def token(self) -> str | None:
        if self.token_env is None:
            return None
        value = os.environ.get(self.token_env)
        if not value:
            raise UsageError(f"xdrs.api.token_env: ${self.token_env} is not set")
        return value

    def tls(self, base: Path) -> bool | Path:
        """What `lab.portabilling.tls_context` takes: True, False or a CA bundle."""
        if self.ca_bundle is not None:
            return self.ca_bundle if self.ca_bundle.is_absolute() else base / self.ca_bundle
        return self.verify

    def password(self, base: Path) -> str | None:
        if self.token_env is not None:
            return None
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise UsageError(f"xdrs.api.password_env: ${self.password_env} is not set")
            return value
        path = base / self.password_file  # type: ignore[operator]
        try:
            text = path.read_text(encoding="utf-8-sig").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"xdrs.api.password_file: {path}: "
                             f"{_unreadable(exc)}") from None
        try:
            found = json.loads(text)
        except ValueError:
            return text
        return str(found["password"]) if isinstance(found, dict) and "password" in found \
            else text


def _unreadable(exc: OSError | UnicodeDecodeError) -> str:
    """Why a text file of the target could not be read, in a few words."""
    return exc.strerror or str(exc) if isinstance(exc, OSError) else "not UTF-8 text"


class Rewrite(_Strict):
    """One step of a deployment's number translation, on the digits of an xDR's CLI and
    CLD: ``{pattern: "^0", replace: "44"}`` (Python regex and replacement)."""

    pattern: str = Field(min_length=1)
    replace: str = ""

    @model_validator(mode="after")
    def _compiles(self) -> Rewrite:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        return self


class Xdrs(_Strict):
    api: Api | None = None
    csv: Path | None = None
    time_zone: str = "UTC"  # of the API user's or the export's 'YYYY-MM-DD HH:MM:SS'
    columns: dict[str, str] = {}  # an export's column names -> ours (lab.xdr_client)
    tolerance: float = Field(default=3.0, gt=0, le=600)  # send -> xDR time (lab.matching)
    settle: float = Field(default=10.0, ge=0, le=600)  # seconds to wait for late xDRs
    service_type: int | None = Field(default=None, gt=0)  # i_service_type of Messaging
    numbers: list[Rewrite] = []  # the deployment's number translation, in order

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name like "
                             "Europe/Prague)") from None
        return name

    @model_validator(mode="after")
    def _one_source(self) -> Xdrs:
        if (self.api is None) == (self.csv is None):
            raise ValueError("give exactly one xDR source: api or csv")
        return self


class Credentials(_Strict):
    file: Path | None = None  # CSV lines account_id,password; absent: the scenario's


class Local(_Strict):
    kind: Literal["local"]
    description: str = ""
    sip_port: Port = 5060
    billing_port: Port = 8070
    transport: Literal["udp", "tcp"] = "udp"


class Remote(_Strict):
    kind: Literal["remote"]
    description: str = ""
    proxy: Proxy
    domain: str | None = None
    credentials: Credentials = Credentials()
    xdrs: Xdrs
    accounting: Path | None = None


class Target(_Strict):
    """A loaded target: its settings and the folder relative paths are read from."""

    spec: Annotated[Local | Remote, Field(discriminator="kind")]
    base: Path
    source: str

    @property
    def local(self) -> bool:
        return isinstance(self.spec, Local)

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else self.base / value

    def passwords(self) -> dict[str, str]:
        """account_id -> password from the credentials file ({} means the scenario's)."""
        spec = self.spec
        if not isinstance(spec, Remote) or spec.credentials.file is None:
            return {}
        path = self.path(spec.credentials.file)
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"credentials.file: {path}: "
                             f"{_unreadable(exc)}") from None
        bad = [n for n, row in enumerate(rows, 1) if len(row) != 2]
        if bad:
            raise UsageError(f"credentials.file: {path}: line {bad[0]} is not "
                             "'account_id,password'")
        return {account_number(user): password for user, password in rows}


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: Annotated[Local | Remote, Field(discriminator="kind")]


def load(path: Path | str | None = None) -> Target:
    """A target file, validated; the default is the embedded stack (local.yaml)."""
    file = Path(path) if path is not None else LOCAL
    try:
        document = YAML(typ="safe").load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--target {file}: {exc.strerror or exc}") from None
    except YAMLError as exc:
        raise UsageError(f"--target {file}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise UsageError(f"--target {file}: must be a mapping with a 'kind' key")
    try:
        spec = _File(spec=document).spec
    except ValidationError as exc:
        raise UsageError(f"--target {file}: {_first(exc)}") from None
    return Target(spec=spec, base=file.resolve().parent, source=str(file))


def _first(exc: ValidationError) -> str:
    """The first problem, as 'key.path: message'."""
    error = exc.errors()[0]
    where = [str(part) for part in error["loc"][1:]
             if str(part) not in ("local", "remote")]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{'.'.join(where) or 'kind'}: {message}"


def describe(target: Target) -> dict[str, Any]:
    """The target as the report shows it (no secrets)."""
    return {"source": target.source, **target.spec.model_dump(mode="json",
                                                              exclude={"description"})}
