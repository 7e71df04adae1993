"""The db_text tables Kamailio reads: subscribers (ha1 only), served domains, presence.

Kamailio runs db_text in non-caching mode, so a table file rewritten here is re-read on
its next query (subscriber). The domain table is cached by the domain module and needs
the `domain.reload` RPC (see `lab.stack.Stack.provision`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

Account = tuple[str, str, str]  # (user, domain, password)

# Table versions Kamailio 5.6 checks at start-up.
TABLE_VERSIONS = {
    "subscriber": 7,
    "domain": 2,
    "domain_attrs": 1,
    "presentity": 5,
    "active_watchers": 12,
    "watchers": 3,
    "xcap": 4,
    "buddies": 2,  # an htable table (version 2 of the htable schema)
}

HEADERS_VERSION = "id(int,auto) table_name(string) table_version(int)"
HEADERS = {
    "subscriber": "id(int,auto) username(string) domain(string) ha1(string)",
    "domain": "id(int,auto) domain(string) did(string,null) last_modified(int)",
    "domain_attrs": (
        "id(int,auto) did(string) name(string) type(int) value(string) last_modified(int)"
    ),
    "presentity": (
        "id(int,auto) username(string) domain(string) event(string) etag(string) "
        "expires(int) received_time(int) body(string) sender(string) priority(int) "
        "ruid(string,null)"
    ),
    "active_watchers": (
        "id(int,auto) presentity_uri(string) watcher_username(string) "
        "watcher_domain(string) to_user(string) to_domain(string) event(string) "
        "event_id(string,null) to_tag(string) from_tag(string) callid(string) "
        "local_cseq(int) remote_cseq(int) contact(string) record_route(string,null) "
        "expires(int) status(int) reason(string,null) version(int) socket_info(string) "
        "local_contact(string) from_user(string) from_domain(string) updated(int) "
        "updated_winfo(int) flags(int) user_agent(string,null)"
    ),
    "watchers": (
        "id(int,auto) presentity_uri(string) watcher_username(string) "
        "watcher_domain(string) event(string) status(int) reason(string,null) "
        "inserted_time(int)"
    ),
    "xcap": (
        "id(int,auto) username(string) domain(string) doc(string) doc_type(int) "
        "etag(string) source(int) doc_uri(string) port(int)"
    ),
    "buddies": (
        "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) "
        "expires(int)"
    ),
}
Buddy = tuple[str, str, str]  # (watcher user, domain, watched user)

_USER = re.compile(r"^[A-Za-z0-9+._~-]{1,64}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*$")


def ha1(user: str, realm: str, password: str) -> str:
    """Digest HA1 = md5(user:realm:password), the only secret stored."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def check_account(account: Account) -> None:
    """Reject values that db_text or a SIP URI cannot carry unescaped."""
    user, domain, password = account
    if not _USER.match(user):
        raise ValueError(f"account user {user!r}: use letters, digits and + . _ ~ -")
    if not _DOMAIN.match(domain):
        raise ValueError(f"account {user!r}: domain {domain!r} is not a host name")
    if not password:
        raise ValueError(f"account {user}@{domain}: empty password")


def write_private(path: Path, text: str) -> None:
    """Write atomically, owner-only, and make sure the mtime moves on."""
    previous = path.stat().st_mtime_ns if path.exists() else 0
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    _bump_mtime(path, previous)


def _bump_mtime(path: Path, previous_ns: int) -> None:
    """db_text compares whole-second mtimes: a rewrite must land in a later second."""
    now = path.stat().st_mtime_ns
    floor = (previous_ns // 10**9 + 1) * 10**9
    if previous_ns and now < floor:
        os.utime(path, ns=(floor, floor))


def subscriber_table(accounts: Iterable[Account]) -> str:
    rows = [HEADERS["subscriber"]]
    for index, (user, domain, password) in enumerate(accounts, start=1):
        check_account((user, domain, password))
        rows.append(f"{index}:{user}:{domain}:{ha1(user, domain, password)}")
    return "\n".join(rows) + "\n"


def domain_table(domains: Iterable[str]) -> str:
    rows = [HEADERS["domain"]]
    for index, domain in enumerate(sorted(set(domains)), start=1):
        rows.append(f"{index}:{domain}::0")
    return "\n".join(rows) + "\n"


def version_table() -> str:
    rows = [HEADERS_VERSION]
    rows += [f"{i}:{name}:{v}" for i, (name, v) in enumerate(TABLE_VERSIONS.items(), 1)]
    return "\n".join(rows) + "\n"


def create_database(db_dir: Path) -> None:
    """Empty tables plus the version table, owner-only."""
    db_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(db_dir, 0o700)
    write_private(db_dir / "version", version_table())
    for table, header in HEADERS.items():
        if not (db_dir / table).exists():
            write_private(db_dir / table, header + "\n")


def buddy_table(buddies: Iterable[Buddy] | None) -> str:
    """Who may watch whom: rows "<watcher>@<domain>><watched>@<domain>" = 1, plus the
    row "policy" = "buddies". None: no lists, any watcher of the same domain (no row)."""
    rows = [HEADERS["buddies"]]
    if buddies is not None:
        rows.append("1:policy:0:0:buddies:0")
        for index, (watcher, domain, watched) in enumerate(sorted(set(buddies)), start=2):
            for user in (watcher, watched):
                check_account((user, domain, "-"))
            rows.append(f"{index}:{watcher}@{domain}>{watched}@{domain}:0:1:1:0")
    return "\n".join(rows) + "\n"


def provision(accounts: Iterable[Account], db_dir: Path,
              buddies: Iterable[Buddy] | None = None) -> list[str]:
    """Store the accounts (ha1 only), their domains and the buddy lists; returns the
    served domains."""
    accounts = list(accounts)
    domains = sorted({domain for _, domain, _ in accounts})
    write_private(db_dir / "subscriber", subscriber_table(accounts))
    write_private(db_dir / "domain", domain_table(domains))
    write_private(db_dir / "buddies", buddy_table(buddies))
    return domains
