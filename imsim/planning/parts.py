"""The messages re-rating reads, shuffled into parts by sender, and kept for later runs.

`by_sender` reads the exports and shuffles them by the sender's number (a lazy dask
DataFrame: `imsim.planning.rerate` explains why). Parsing and shuffling cost about a
quarter of a re-rating's CPU time, the same for every variant, so a planner who tries
variant after variant on the same month can keep the parts (`kept`, ``imsim rerate
--keep-parts DIR``): one Parquet file per part, whole senders in each. A later run on
the same exports with the same reading options reads the files back, and neither
parses the exports nor shuffles them. The folder's `MANIFEST` names what the parts were
made from (each export file's path, size and modification time, the options and imsim's
version, which reads the exports); anything else makes them again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from imsim import __version__
from imsim.errors import UsageError
from imsim.planning import exports

KEPT = ["i_xdr", "env", "account_id", "CLI", "CLD", "connect_time", "call_id",
        "charged_quantity", "charged_amount_micro", "length", "incoming"]
"""What re-rating reads: the only columns the shuffle moves (a third of its cost went
on the others: 10M rows on 1 worker, read and shuffled, 17.2 -> 10.7 CPU-seconds)."""
DTYPES = {**exports.COLUMNS, "incoming": "bool"}   # what `exports.charged` gives
MANIFEST = "_imsim_parts.json"   # "_": not a Parquet file to dask and pyarrow
VERSION = 1


@dataclass(frozen=True)
class Reading:
    """Which exports, and how they are read and split."""

    sources: Sequence[str | Path]
    partitions: int | None = None
    mapping: Mapping[str, str] | None = field(default=None)
    time_zone: str = "UTC"
    i_service: str | None = None
    blocksize: str | int = "64MB"

    def key(self) -> dict[str, Any]:
        """What the parts depend on (`MANIFEST`)."""
        found = []
        for path in exports.files(self.sources):
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    stat = file.stat()
                    found.append([str(file.resolve()), stat.st_size, stat.st_mtime_ns])
        return {"version": VERSION, "imsim": __version__, "columns": KEPT, "files": found,
                "partitions": self.partitions, "mapping": dict(self.mapping or {}),
                "time_zone": self.time_zone, "i_service": self.i_service,
                "blocksize": str(self.blocksize)}


def by_sender(reading: Reading) -> Any:
    """The outgoing messages of the exports (and charged incoming ones: `exports.charged`),
    the columns re-rating reads, shuffled into parts by sender: a lazy dask DataFrame."""
    frame = exports.read(reading.sources, reading.mapping, reading.time_zone,
                         reading.blocksize)
    meta = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in DTYPES.items()})
    frame = frame.map_partitions(exports.charged, reading.i_service, meta=meta)[KEPT]
    return frame.shuffle(on="CLI", npartitions=reading.partitions or frame.npartitions)


def kept(folder: str | Path, reading: Reading) -> tuple[Any, bool]:
    """The parts kept in ``folder`` when they were made from ``reading``, else made
    there now (on the active dask client); and whether they were made now."""
    folder, key = Path(folder), reading.key()
    if _made_from(folder / MANIFEST) == key:
        return read_back(folder), False
    if folder.exists() and not (folder.is_dir() and _ours_or_empty(folder)):
        raise UsageError(f"--keep-parts {folder}: not a folder imsim kept parts in, and not "
                         "empty; name a new or empty folder")
    making = folder.with_name(folder.name + ".making")   # a run stopped midway: left here
    shutil.rmtree(making, ignore_errors=True)
    by_sender(reading).to_parquet(str(making), write_index=False)
    (making / MANIFEST).write_text(json.dumps(key, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    making.rename(folder)
    return read_back(folder), True


def _ours_or_empty(folder: Path) -> bool:
    return (folder / MANIFEST).exists() or not any(folder.iterdir())


def read_back(folder: Path) -> Any:
    """The kept parts, a file each (a file is never split: it holds whole senders)."""
    import dask.dataframe as dd

    frame = dd.read_parquet(str(folder), split_row_groups=False)
    return frame.astype({column: DTYPES[column] for column in KEPT})   # as made


def _made_from(manifest: Path) -> Any:
    try:
        return json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
