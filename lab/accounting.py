"""Kamailio's own accounting lines (db_flatstore), the ground truth for reconciliation.

One line per MESSAGE transaction answered after digest auth was attempted (407
challenges included), in files `acc_<process rank>.log`, fields separated by "|"
("|" inside a value is written as %7C).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

# acc core columns, then time_mode=2's "ts", then the db_extra columns (kamailio.cfg.tmpl)
COLUMNS = ("method", "from_tag", "to_tag", "call_id", "sip_code", "sip_reason", "time", "ts",
           "from_user", "from_domain", "to_user", "to_domain", "msg_id")


def read(acc_dir: Path) -> list[dict[str, str]]:
    """Every accounting line of every worker, oldest first."""
    rows = []
    for path in sorted(Path(acc_dir).glob("acc_*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line:
                rows.append(dict(zip(COLUMNS, (unquote(v) for v in line.split("|")),
                                     strict=False)))
    return sorted(rows, key=lambda row: float(row.get("ts") or 0))
