"""The billing service's xDR store: SQLite in WAL mode, written by one thread.

Every write goes through `XdrStore.submit`, which hands the rows to the writer thread
and returns a future; the writer commits everything queued in one transaction
(``synchronous=FULL``: the WAL is fsynced) and only then resolves the futures, so a
caller that waits for the future before answering knows its xDRs are durable.

One row per (call_id, direction): a second accounting of the same MESSAGE (the reply
route firing twice, a resent /account after a restart) is ignored by the store.
Readers open their own connection (`XdrStore.query`); WAL lets them run beside the writer.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

from imsim.rules.message import XDR_COLUMNS, Xdr

log = logging.getLogger("imsim.billing_service")

BUSY_TIMEOUT_MS = 5000
MAX_BATCH = 512
SCHEMA = """
CREATE TABLE IF NOT EXISTS xdr (
    i_xdr INTEGER PRIMARY KEY,
    env TEXT NOT NULL, account_id TEXT NOT NULL, CLI TEXT NOT NULL, CLD TEXT NOT NULL,
    connect_time TEXT NOT NULL, call_id TEXT NOT NULL, msg_id TEXT NOT NULL,
    service TEXT NOT NULL, direction TEXT NOT NULL, tariff TEXT NOT NULL,
    rate_code TEXT NOT NULL, charged_quantity INTEGER NOT NULL, unit_price TEXT NOT NULL,
    charged_amount TEXT NOT NULL, currency TEXT NOT NULL, sip_code INTEGER NOT NULL,
    reason TEXT NOT NULL,
    connect_ts REAL NOT NULL,  -- connect_time as Unix seconds, for range queries
    UNIQUE (call_id, direction)
);
CREATE INDEX IF NOT EXISTS xdr_account_time ON xdr (account_id, connect_ts);
"""
INSERT = (f"INSERT OR IGNORE INTO xdr ({', '.join(XDR_COLUMNS)}, connect_ts) "
          f"VALUES ({', '.join('?' for _ in XDR_COLUMNS)}, ?)")
SELECT = f"SELECT {', '.join(XDR_COLUMNS)} FROM xdr"


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (explicit BEGIN), WAL, with a busy timeout."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def to_row(xdr: Xdr) -> tuple[Any, ...]:
    """An Xdr as stored: times as ISO text, money as exact decimal text, then connect_ts."""
    values = tuple(value.isoformat() if isinstance(value, dt.datetime)
                   else str(value) if isinstance(value, Decimal) else value
                   for value in xdr)
    return (*values, xdr.connect_time.timestamp())


def from_row(row: Sequence[Any]) -> Xdr:
    record = dict(zip(XDR_COLUMNS, row, strict=True))
    record["connect_time"] = dt.datetime.fromisoformat(record["connect_time"])
    record["unit_price"] = Decimal(record["unit_price"])
    record["charged_amount"] = Decimal(record["charged_amount"])
    return Xdr(**record)


_Item = tuple[list[tuple[Any, ...]], concurrent.futures.Future]


class XdrStore:
    """SQLite xDR table with one writer thread that batches and commits before answering."""

    def __init__(self, path: Path | str, synchronous: str = "FULL",
                 after_batch: Callable[[], None] | None = None) -> None:
        """`after_batch` is called in the writer thread once per committed batch, after the
        batch's futures are resolved (one wake-up of an event loop per batch)."""
        self.path = Path(path)
        self.after_batch = after_batch
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.synchronous = synchronous
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(connect(self.path, synchronous)) as conn:
            conn.executescript(SCHEMA)
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="xdr-writer", daemon=True)
        self._thread.start()

    # writing -----------------------------------------------------------------------
    def submit(self, xdrs: Iterable[Xdr]) -> concurrent.futures.Future:
        """Queue xDRs for the writer; the future resolves (to the rows inserted) after COMMIT."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put(([to_row(x) for x in xdrs], future))
        return future

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        conn = connect(self.path, self.synchronous)
        try:
            while (batch := self._next_batch()) is not None:
                self._commit(conn, batch)
        finally:
            conn.close()

    def _next_batch(self) -> list[_Item] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def _commit(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            counts = [conn.executemany(INSERT, rows).rowcount for rows, _ in batch]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("xdr store: write of %d accountings failed: %s", len(batch), exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _, future in batch:
                future.set_exception(exc)
            if self.after_batch is not None:
                self.after_batch()
            return
        for (_, future), count in zip(batch, counts, strict=True):
            future.set_result(count)
        if self.after_batch is not None:
            self.after_batch()

    # reading -----------------------------------------------------------------------
    def reader(self) -> sqlite3.Connection:
        return connect(self.path, self.synchronous)

    def accounted(self) -> tuple[set[str], int]:
        """Call-IDs already holding xDRs, and the highest i_xdr (0 when empty)."""
        with closing(self.reader()) as conn:
            calls = {row[0] for row in conn.execute("SELECT DISTINCT call_id FROM xdr")}
            top = conn.execute("SELECT COALESCE(MAX(i_xdr), 0) FROM xdr").fetchone()[0]
        return calls, int(top)

    def xdrs(self) -> list[Xdr]:
        """Every stored xDR, oldest first."""
        with closing(self.reader()) as conn:
            rows = conn.execute(f"{SELECT} ORDER BY i_xdr")
            return [from_row(row) for row in rows]

    def query(self, account_id: str | None = None, since: dt.datetime | None = None,
              until: dt.datetime | None = None, limit: int = 1000, offset: int = 0
              ) -> list[Xdr]:
        """xDRs of one account (or all), connect_time in [since, until), by i_xdr."""
        where, args = _where(account_id, since, until)
        sql = f"{SELECT} WHERE {where} ORDER BY i_xdr LIMIT ? OFFSET ?"
        with closing(self.reader()) as conn:
            return [from_row(row) for row in conn.execute(sql, [*args, limit, offset])]

    def count(self, account_id: str | None = None, since: dt.datetime | None = None,
              until: dt.datetime | None = None) -> int:
        """How many xDRs `query` pages through (PortaBilling's ``total``)."""
        where, args = _where(account_id, since, until)
        with closing(self.reader()) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM xdr WHERE {where}", args)
                       .fetchone()[0])


def _where(account_id: str | None, since: dt.datetime | None,
           until: dt.datetime | None) -> tuple[str, list[Any]]:
    where, args = ["1=1"], []
    for clause, value in (("account_id = ?", account_id),
                          ("connect_ts >= ?", since and since.timestamp()),
                          ("connect_ts < ?", until and until.timestamp())):
        if value is not None:
            where.append(clause)
            args.append(value)
    return " AND ".join(where), args
