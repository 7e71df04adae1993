"""xDR exports in: CSV, CSV.gz, Parquet and globs, imsim's or PortaBilling's names.

```python
frame = exports.read(["exports/2026-01-*.csv.gz"])        # a dask DataFrame, lazy
billed = frame.map_partitions(exports.charged)            # what re-rating bills again
```

Every export becomes the same columns (`COLUMNS`), whatever it was written by:

- imsim's own xDRs (`imsim.results.XDR_DTYPES`: ``imsim run --out`` as CSV or Parquet)
  are read as they are;
- a PortaBilling xDR export keeps PortaBilling's names; these mean one of ours
  (`ALIASES`): ``h323_conf_id`` -> ``call_id``, ``bill_time`` -> ``connect_time``,
  ``used_quantity`` -> ``charged_quantity``, ``price`` -> ``unit_price``, ``result`` ->
  ``sip_code``, ``disconnect_reason`` -> ``reason``; ``unix_connect_time`` (seconds since
  the epoch) stands for ``connect_time`` when that is absent. ``i_xdr, account_id, CLI,
  CLD, charged_amount, charged_quantity, call_id`` already have our names;
  ``i_service, description, failed, bit_flags, disconnect_cause`` are kept as read.
- ``mapping`` (``imsim rerate --column THEIRS=OURS``) names any other column, and wins
  over the aliases.

Values: ``CLI`` and ``CLD`` become int64 E.164 digits (a leading ``+`` is dropped; a
value that is not a number becomes -1, which no account and no rate matches);
``CLD`` is the number as billed. ``connect_time`` is read as ISO 8601 or PortaBilling's
``YYYY-MM-DD HH:MM:SS`` in ``time_zone`` (default UTC; a wall-clock time shown twice
when the clocks go back is the earlier one) and becomes UTC; a value that is no time
is an `ExportError`. Rows empty in every required column are left out; a CSV whose
header has ``;`` or a tab and no comma is read with that separator. Money is exact:
``charged_amount_micro`` is the amount in micro-units, parsed from the text as a
decimal (CSV) or rounded from a float with at most 6 decimals (Parquet, imsim's
documented float round trip). ``length`` is the message length when the export has
one, else -1 (`imsim.planning.rerate` then infers it from ``charged_quantity``).
"""

from __future__ import annotations

import csv
import glob
import gzip
from collections.abc import Iterator, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from imsim.errors import UsageError

MICRO = 1_000_000
# PortaBilling export names that mean one of our columns
ALIASES = {"h323_conf_id": "call_id", "bill_time": "connect_time",
           "used_quantity": "charged_quantity", "price": "unit_price", "result": "sip_code",
           "disconnect_reason": "reason"}
"""PortaBilling export names that mean one of our columns (``i_account`` is PortaBilling's
internal number of an account, not its id: map it yourself if your export has no
``account_id``)."""
REQUIRED = ("account_id", "CLI", "CLD", "connect_time", "charged_amount")
FAILED = ("1", "true", "t", "y", "yes")
"""A ``failed`` flag that marks an unsuccessful attempt (read lower-case, stripped);
anything else, "0", "N", "no" or empty, is a billed xDR (`failed`)."""
TIME_COLUMNS = ("connect_time", "unix_connect_time")
PARQUET = (".parquet", ".pq")
CSV = (".csv", ".csv.gz", ".txt", ".txt.gz")

COLUMNS: dict[str, str] = {
    "i_xdr": "int64", "env": "str", "account_id": "str", "CLI": "int64", "CLD": "int64",
    "connect_time": "datetime64[us, UTC]", "call_id": "str", "direction": "str",
    "charged_quantity": "int64", "charged_amount_micro": "int64", "length": "int64",
    "i_service": "str", "failed": "str",
}
"""What `read` gives, whatever the export's names (an absent text column is "")."""


class ExportError(UsageError):
    """An export that cannot be read as xDRs: no such file, a missing column."""


# -- names -----------------------------------------------------------------------------

def canonical(name: str, mapping: Mapping[str, str] | None = None) -> str:
    """Our name for an export's column: the override, the PortaBilling alias, or as is."""
    name = name.strip()
    if mapping and name in mapping:
        return mapping[name]
    return ALIASES.get(name, name)


def renames(columns: Sequence[str], mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """{export column: ours} for every column (``unix_connect_time`` stays itself)."""
    return {c: canonical(c, mapping) for c in columns}


def check_header(columns: Sequence[str], where: str,
                 mapping: Mapping[str, str] | None = None,
                 how: str = "--column THEIRS={name}") -> None:
    """Raise `ExportError` naming the required columns that no export column means, and
    ``how`` to map one."""
    ours = set(renames(columns, mapping).values())
    if "unix_connect_time" in ours:
        ours.add("connect_time")
    absent = [name for name in REQUIRED if name not in ours]
    if absent:
        raise ExportError(f"{where}: no column {', '.join(absent)} in the header (map "
                          f"yours with {how.format(name=absent[0])})")


def csv_rows(path: Path | str, delimiter: str | None = None,
             mapping: Mapping[str, str] | None = None,
             how: str = "--column THEIRS={name}") -> Iterator[dict[str, str]]:
    """The rows of a CSV export (.csv or .csv.gz) as dicts in our names, after checking
    its header; the separator is `separator`'s unless given; rows empty in every
    required column are left out, as `read` leaves them."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter or separator(path))
            if not reader.fieldnames:
                raise ExportError(f"{path}: empty export (no header row)")
            names = renames([n for n in reader.fieldnames if n], mapping)
            check_header(list(names), str(path), mapping, how)
            for row in reader:
                fields = {names[k]: v for k, v in row.items() if k}
                if any(str(fields.get(c) or "").strip() for c in (*REQUIRED, *TIME_COLUMNS)):
                    yield fields
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise ExportError(f"{path}: cannot read the export ({exc})") from None


# -- files -----------------------------------------------------------------------------

def files(sources: Sequence[str | Path]) -> list[Path]:
    """Every file the sources name (globs expanded, folders of Parquet parts as one)."""
    found: list[Path] = []
    for source in sources:
        matches = sorted(glob.glob(str(source))) if glob.has_magic(str(source)) else [source]
        if not matches or not Path(matches[0]).exists():
            raise ExportError(f"{source}: no such export (check the path or the glob)")
        found += [part for m in matches for part in _parts(Path(m))]
    for path in found:
        if not (path.is_dir() or kind(path)):
            raise ExportError(f"{path}: not an export (name it .csv, .csv.gz or .parquet)")
    return found


def _parts(path: Path) -> list[Path]:
    """A folder of CSV exports is its CSV files; any other folder a Parquet dataset."""
    if not path.is_dir():
        return [path]
    inside = sorted(p for p in path.iterdir() if p.is_file())
    if any(p.name.lower().endswith(PARQUET) for p in inside):
        return [path]
    return [p for p in inside if p.name.lower().endswith(CSV)] or [path]


def kind(path: Path) -> str | None:
    """'parquet' or 'csv' by the file name (a folder is a Parquet dataset), else None."""
    name = path.name.lower()
    if path.is_dir() or name.endswith(PARQUET):
        return "parquet"
    return "csv" if name.endswith(CSV) else None


def header(path: Path) -> list[str]:
    """The column names of one export file."""
    if kind(path) == "parquet":
        import pyarrow.dataset as ds

        return list(ds.dataset(path, format="parquet").schema.names)
    try:
        return list(pd.read_csv(path, nrows=0, dtype=str, sep=separator(path)).columns)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: cannot read the export ({exc})") from None


def separator(path: Path) -> str:
    """The column separator of a CSV export, from its header: ``,``, else ``;`` or a tab
    when the header has one of those and no comma (spreadsheets in many locales)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        first = handle.readline()
    if "," in first:
        return ","
    return next((sep for sep in (";", "\t") if sep in first), ",")


def read(sources: Sequence[str | Path], mapping: Mapping[str, str] | None = None,
         time_zone: str = "UTC", blocksize: str | int = "64MB") -> Any:
    """The exports as one lazy dask DataFrame with `COLUMNS` (headers checked now)."""
    import dask.dataframe as dd

    _zone(time_zone)
    parts = []
    for path in files(sources):
        columns = header(path)
        check_header(columns, str(path), mapping)
        raw = _raw(path, blocksize)
        parts.append(raw.map_partitions(normalize, mapping, time_zone, str(path),
                                        meta=empty()))
    return parts[0] if len(parts) == 1 else dd.concat(parts)


def _zone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ExportError(f"--time-zone: unknown time zone {name!r} (write an IANA zone such "
                          "as Europe/Berlin or America/New_York)") from None


def _raw(path: Path, blocksize: str | int) -> Any:
    import dask.dataframe as dd

    if kind(path) == "parquet":
        return dd.read_parquet(str(path))
    packed = path.name.lower().endswith(".gz")
    return dd.read_csv(str(path), dtype=str, keep_default_na=False, sep=separator(path),
                       blocksize=None if packed else blocksize,
                       compression="gzip" if packed else None)


def empty() -> pd.DataFrame:
    """No rows, `COLUMNS` (the dask meta)."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in COLUMNS.items()})


# -- values ----------------------------------------------------------------------------

def normalize(raw: pd.DataFrame, mapping: Mapping[str, str] | None = None,
              time_zone: str = "UTC", source: str = "") -> pd.DataFrame:
    """One chunk of an export in `COLUMNS` (see the module docstring); a bad value's
    `ExportError` names ``source``, the file it came from."""
    try:
        return _normalize(raw, mapping, time_zone)
    except ExportError as exc:
        raise ExportError(f"{source}: {exc}" if source else str(exc)) from None


def _normalize(raw: pd.DataFrame, mapping: Mapping[str, str] | None,
               time_zone: str) -> pd.DataFrame:
    frame = _without_blank_rows(raw.rename(columns=renames(list(raw.columns), mapping)))
    n = len(frame)
    out = pd.DataFrame({
        "i_xdr": _integers(frame.get("i_xdr"), n, -1),
        "env": _text(frame.get("env"), n), "account_id": _text(frame.get("account_id"), n),
        "CLI": numbers(frame["CLI"]), "CLD": numbers(frame["CLD"]),
        "connect_time": times(frame, time_zone),
        "call_id": _text(frame.get("call_id"), n), "direction": _text(frame.get("direction"), n),
        "charged_quantity": _integers(frame.get("charged_quantity"), n, 1),
        "charged_amount_micro": micro(frame["charged_amount"]),
        "length": _integers(frame.get("length"), n, -1),
        "i_service": _text(frame.get("i_service"), n), "failed": _text(frame.get("failed"), n),
    }, index=frame.index)
    return out.astype(COLUMNS)


def _without_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that hold something in a required column (a spreadsheet's empty lines,
    ``,,,,``, are no xDRs)."""
    texts = [frame[c] for c in (*REQUIRED, *TIME_COLUMNS)
             if c in frame.columns and not _typed(frame[c])]
    if not texts:
        return frame
    blank = np.logical_and.reduce([(c.astype("str").fillna("").str.strip() == "").to_numpy()
                                   for c in texts])
    return frame[~blank] if blank.any() else frame


def _typed(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column.dtype)
                or isinstance(column.dtype, pd.DatetimeTZDtype))


def _text(column: pd.Series | None, n: int) -> Any:
    if column is None:   # one "" taken n times: no Python string per row
        return pd.array(pa.array([""]).take(pa.array(np.zeros(n, np.int32))), dtype="str")
    return column.astype("str").fillna("").str.strip().array


def _integers(column: pd.Series | None, n: int, default: int) -> np.ndarray:
    if column is None:
        return np.full(n, default, dtype=np.int64)
    values = pd.to_numeric(column.replace("", None), errors="coerce")
    return values.fillna(default).to_numpy(dtype=np.int64)


def numbers(column: pd.Series) -> np.ndarray:
    """E.164 digits as int64 (``+`` dropped); -1 where the value is not a number."""
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)
    fast = _digits(column)
    if fast is not None:
        return fast
    text = column.astype("str").fillna("").str.strip().str.lstrip("+")
    digits = text.str.isdigit() & text.str.isascii() & text.str.len().between(1, 18)
    return text.where(digits, "-1").astype("int64").to_numpy()


def _digits(column: pd.Series) -> np.ndarray | None:
    """`numbers` in one pass of Arrow's cast, when every value is 1-18 digits after
    an optional ``+`` (None otherwise: the per-value rule decides)."""
    try:
        text = pc.utf8_ltrim(pc.utf8_trim_whitespace(pa.array(column.array)), characters="+")
        if pc.any(pc.greater(pc.utf8_length(text), 18)).as_py():
            return None
        values = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return values if len(values) == 0 or values.min() >= 0 else None


def times(frame: pd.DataFrame, time_zone: str = "UTC") -> pd.Series:
    """``connect_time`` (ISO, or local text in ``time_zone``) or ``unix_connect_time``.

    A local time the zone's clock shows twice (autumn) is its earlier reading; one it
    skips (spring) is moved forward past the gap. A value that is no time: `ExportError`.
    """
    if "connect_time" not in frame.columns:
        seconds = pd.to_numeric(frame["unix_connect_time"], errors="coerce")
        out = pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[us, UTC]")
        return _all_times(out, frame["unix_connect_time"], "unix_connect_time")
    column = frame["connect_time"]
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    text = column.astype("str").str.strip()
    zoned = text.str.contains(r"(?:[+-]\d\d(?::?\d\d)?|Z)$", regex=True)
    out = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    if zoned.any():
        out[zoned] = _parsed(text[zoned], utc=True)
    if (~zoned).any():
        local = _parsed(text[~zoned], utc=False)
        out[~zoned] = local.dt.tz_localize(time_zone, ambiguous=np.ones(len(local), bool),
                                           nonexistent="shift_forward").dt.tz_convert("UTC")
    return _all_times(out, text, "connect_time")


def _parsed(text: pd.Series, utc: bool) -> pd.Series:
    try:
        return pd.to_datetime(text, utc=utc, format="ISO8601")
    except ValueError:
        bad = next(v for v in text if _not_a_time(v, utc))
        raise _not_time("connect_time", bad) from None


def _not_a_time(value: str, utc: bool) -> bool:
    try:
        pd.to_datetime(pd.Series([value]), utc=utc, format="ISO8601")
    except ValueError:
        return True
    return False


def _all_times(out: pd.Series, written: pd.Series, name: str) -> pd.Series:
    missing = out.isna().to_numpy()
    if missing.any():
        raise _not_time(name, str(written[missing].iloc[0]))
    return out


def _not_time(name: str, value: str) -> ExportError:
    return ExportError(f"{name} {value!r} is not a time: write 'YYYY-MM-DD HH:MM:SS' (in "
                       "--time-zone), ISO 8601 with an offset, or seconds since 1970 in "
                       "unix_connect_time (or map another column with --column THEIRS=OURS)")


def micro(column: pd.Series) -> np.ndarray:
    """Amounts in micro-units, exactly (decimal text, or floats with <= 6 decimals)."""
    if pd.api.types.is_float_dtype(column.dtype):
        return np.round(column.fillna(0).to_numpy() * MICRO).astype(np.int64)
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64) * MICRO
    values, inverse = np.unique(column.astype("str").str.strip().to_numpy(dtype=str),
                                return_inverse=True)
    return np.array([_micro(str(v)) for v in values], dtype=np.int64)[inverse]


def _micro(text: str) -> int:
    try:
        amount = Decimal(text or "0") * MICRO
    except InvalidOperation:
        raise ExportError(f"charged_amount {text!r} is not a number (fix the export or map "
                          "another column with --column THEIRS=charged_amount)") from None
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def charged(frame: pd.DataFrame, i_service: str | None = None) -> pd.DataFrame:
    """What re-rating reads: the customer's own outgoing xDRs (imsim's ``direction ==
    'outgoing'``, or no direction: a PortaBilling account export) and the charged
    incoming ones (imsim's ``direction == 'incoming'`` with an amount: what a recipient
    paid for the message of the same ``call_id``), flagged in the bool column
    ``incoming``; not ``failed``, of the messaging service ``i_service`` when given
    (PortaBilling's id for it on that installation)."""
    incoming = frame["direction"].eq("incoming") & frame["charged_amount_micro"].ne(0)
    keep = _kept(frame, i_service) & (frame["direction"].isin(["outgoing", ""]) | incoming)
    return frame[keep].assign(incoming=incoming[keep])


def failed(flag: Any) -> bool:
    """An xDR's ``failed`` flag (a text, number or bool) marks an unsuccessful attempt."""
    return str(flag).strip().lower() in FAILED


def _kept(frame: pd.DataFrame, i_service: str | None) -> pd.Series:
    """Not ``failed``; of the messaging service ``i_service`` when given."""
    keep = ~frame["failed"].str.strip().str.lower().isin(FAILED)
    if i_service is not None:
        keep &= frame["i_service"] == str(i_service)
    return keep
