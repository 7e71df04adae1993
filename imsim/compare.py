"""Model against lab, message by message: does the live deployment bill what the model
predicts?

    result = compare(model.messages, model.xdrs, lab_messages, lab_xdrs, accounting)
    print(table(result)); exit(0 if result.ok else 1)

Both sides come in the shared schema (`imsim.results`: ``message_frame`` and
``xdr_frame``) and are joined on ``msg_id``. Per message the fields compared are the
final SIP code, delivered or not, the number of xDRs, and the customer (``outgoing``)
xDR's units (``charged_quantity``), amount (exact, to 6 decimals), tariff and rate code.
Latencies are shown side by side, never compared: the model's are its delays, the
lab's are measured in real seconds whatever the replay speed.

Reconciliation (lab only): every 2xx MESSAGE transaction in Kamailio's accounting has
exactly one customer xDR (``lost``: none, ``duplicated``: more than one) and no xDR lacks
such a transaction (``orphans``). A 2xx the model also leaves unbilled (outgoing_aaa off)
is counted as ``unbilled``, not lost.

No I/O here: `imsim.training.lab_report.write_reports` writes the files.
"""

from __future__ import annotations

import base64
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

FIELDS = ("code", "delivered", "xdrs", "units", "amount", "tariff", "rate_code")
CUSTOMER = "outgoing"
CENT_MILLIONTH = Decimal("0.000001")


@dataclass
class Comparison:
    """One row per msg_id (``model_*`` / ``lab_*`` columns, ``match``, ``diff``), the
    summary, and the reconciliation (None without accounting lines)."""

    table: pd.DataFrame
    summary: dict[str, Any]
    reconciliation: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # messages lost to an outage of the proxy or billing (lab.gap): a summary line and
    # its own report section, beside the per-message diff
    gap: dict[str, Any] | None = None
    # fields the lab's xDR source does not hold (a remote deployment's: tariff, ...)
    uncompared: tuple[str, ...] = ()
    # the lab's xDRs that bill no test message (`lab.matching`), described
    orphans: list[str] = field(default_factory=list)
    # what each watcher was told about each presentity (`imsim.compare_presence`)
    presence: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        clean = self.reconciliation is None or self.reconciliation["clean"]
        watched = self.presence is None or bool(self.presence["match"].all())
        return bool(self.summary["mismatched"] == 0 and self.summary["messages"] > 0 and clean
                    and not self.orphans and watched)


def money(value: Any) -> Decimal | None:
    """An amount as an exact Decimal to 6 places (floats round-trip through round(x, 6))."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(round(value, 6)) if isinstance(value, float) else str(value)
    return Decimal(text).quantize(CENT_MILLIONTH)


def side(messages: pd.DataFrame, xdrs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per msg_id: the compared fields and the latencies (ms) of one side."""
    rows: dict[str, dict[str, Any]] = {}
    by_msg = {msg_id: group for msg_id, group in xdrs.groupby("msg_id")} if len(xdrs) else {}
    for message in messages.itertuples(index=False):
        billed = by_msg.get(message.msg_id, xdrs.iloc[0:0])
        customer = billed[billed["direction"] == CUSTOMER]
        first = customer.iloc[0] if len(customer) else None
        delivered = not _missing(message.delivered_at)
        rows[str(message.msg_id)] = {
            "code": int(message.code), "delivered": delivered, "xdrs": len(billed),
            "units": None if first is None else int(first["charged_quantity"]),
            "amount": None if first is None else money(first["charged_amount"]),
            "tariff": None if first is None else str(first["tariff"]),
            "rate_code": None if first is None else str(first["rate_code"]),
            "latency_ms": _ms(message.latency),
            "delivery_ms": _ms(message.delivered_at - message.sent_at) if delivered else None,
        }
    return rows


def compare(model_messages: pd.DataFrame, model_xdrs: pd.DataFrame,
            lab_messages: pd.DataFrame, lab_xdrs: pd.DataFrame,
            accounting: Iterable[Mapping[str, str]] | None = None,
            meta: Mapping[str, Any] | None = None, uncompared: Iterable[str] = (),
            orphans: Iterable[str] = ()) -> Comparison:
    """Join both sides on msg_id; reconcile the lab's xDRs with its accounting lines.
    ``uncompared``: fields the lab's source cannot tell (shown, never a mismatch);
    ``orphans``: lab xDRs that bill no test message (each one fails the run)."""
    model, lab = side(model_messages, model_xdrs), side(lab_messages, lab_xdrs)
    ids = list(model) + [m for m in lab if m not in model]
    skipped = tuple(name for name in FIELDS if name in set(uncompared))
    rows = [_row(msg_id, model.get(msg_id), lab.get(msg_id), skipped) for msg_id in ids]
    columns = ["msg_id"] + [f"{who}_{name}" for name in (*FIELDS, "latency_ms", "delivery_ms")
                            for who in ("model", "lab")] + ["match", "diff"]
    frame = pd.DataFrame(rows, columns=columns, dtype=object).astype({"match": bool})
    unbilled = {m for m, row in model.items() if row["code"] // 100 == 2 and not row["xdrs"]}
    recon = None if accounting is None else reconcile(lab_xdrs, accounting, unbilled)
    return Comparison(frame, _summary(frame), recon, dict(meta or {}), uncompared=skipped,
                      orphans=list(orphans))


def _row(msg_id: str, model: dict[str, Any] | None, lab: dict[str, Any] | None,
         skipped: tuple[str, ...] = ()) -> dict[str, Any]:
    row: dict[str, Any] = {"msg_id": msg_id}
    for name in (*FIELDS, "latency_ms", "delivery_ms"):
        row[f"model_{name}"] = None if model is None else _clean(model[name])
        row[f"lab_{name}"] = None if lab is None else _clean(lab[name])
    if model is None or lab is None:
        row["diff"] = "not in the model" if model is None else "not played in the lab"
    else:
        row["diff"] = "; ".join(f"{name} {show(row[f'model_{name}'])} != "
                                f"{show(row[f'lab_{name}'])}"
                                for name in FIELDS if name not in skipped
                                and row[f"model_{name}"] != row[f"lab_{name}"])
    row["match"] = not row["diff"]
    return row


def _summary(frame: pd.DataFrame) -> dict[str, Any]:
    mismatched = frame[~frame["match"]]
    fields: Counter[str] = Counter()
    for diff in mismatched["diff"]:
        fields.update(part.split(" ", 1)[0] for part in diff.split("; "))
    total = len(frame)
    return {"messages": total, "matched": total - len(mismatched),
            "mismatched": len(mismatched),
            "agreement": round(100.0 * (total - len(mismatched)) / total, 2) if total else 0.0,
            "fields": dict(fields),
            "model_amount": str(sum((a for a in frame["model_amount"] if a is not None),
                                    Decimal(0))),
            "lab_amount": str(sum((a for a in frame["lab_amount"] if a is not None),
                                  Decimal(0)))}


def reconcile(xdrs: pd.DataFrame, accounting: Iterable[Mapping[str, str]],
              unbilled: Iterable[str] = ()) -> dict[str, Any]:
    """Kamailio's 2xx MESSAGE transactions against the customer xDRs, by Call-ID."""
    answered = {row["call_id"]: row.get("msg_id", "") for row in accounting
                if row.get("method", "MESSAGE") == "MESSAGE"
                and str(row.get("sip_code", "")).startswith("2")}
    customer = Counter(xdrs.loc[xdrs["direction"] == CUSTOMER, "call_id"]) if len(xdrs) \
        else Counter()
    every = set(xdrs["call_id"]) if len(xdrs) else set()
    free = set(unbilled)
    missing = [c for c in answered if customer[c] == 0]
    lost = sorted(answered[c] or c for c in missing if answered[c] not in free)
    result = {"answered_2xx": len(answered), "customer_xdrs": sum(customer.values()),
              "lost": lost, "unbilled": sorted(answered[c] or c for c in missing
                                               if answered[c] in free),
              "duplicated": sorted(c for c, n in customer.items() if n > 1),
              "orphans": sorted(c for c in every if c not in answered)}
    result["clean"] = not (result["lost"] or result["duplicated"] or result["orphans"])
    return result


# -- presentation ---------------------------------------------------------------------

SHOWN = (("code", "code"), ("delivered", "deliv"), ("units", "units"), ("amount", "amount"),
         ("tariff", "tariff"), ("rate_code", "rate"))


def table(result: Comparison) -> str:
    """The comparison as a plain-text table plus the summary lines."""
    head = ["msg_id", *[f"{short} m/l" for _, short in SHOWN], "match"]
    rows = [[row.msg_id, *[f"{show(getattr(row, 'model_' + n))}/"
                           f"{show(getattr(row, 'lab_' + n))}" for n, _ in SHOWN],
             "yes" if row.match else "NO"] for row in result.table.itertuples(index=False)]
    widths = [max(len(str(cell)) for cell in column) for column in zip(head, *rows,
                                                                         strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in (head, *rows)]
    lines += [f"  {row.msg_id}: {row.diff}" for row in result.table.itertuples(index=False)
              if not row.match]
    return "\n".join(lines + summary_lines(result))


def summary_lines(result: Comparison) -> list[str]:
    s = result.summary
    lines = [f"{s['matched']}/{s['messages']} messages agree ({s['agreement']} %); "
             f"billed: model {s['model_amount']}, lab {s['lab_amount']}"]
    recon = result.reconciliation
    if recon is not None:
        lines.append(f"reconciliation: {recon['answered_2xx']} 2xx MESSAGE in accounting, "
                     f"{recon['customer_xdrs']} customer xDRs; lost {len(recon['lost'])}, "
                     f"duplicated {len(recon['duplicated'])}, orphans {len(recon['orphans'])}"
                     f", unbilled by design {len(recon['unbilled'])}")
    if result.uncompared:
        lines.append(f"not compared (the xDR source does not hold them): "
                     f"{', '.join(result.uncompared)}")
    if result.orphans:
        lines.append(f"orphans: {len(result.orphans)} xDRs bill no test message: "
                     f"{'; '.join(result.orphans[:5])}")
    if result.gap:
        lines.append(str(result.gap.get("line") or f"gap: {result.gap['messages']} messages "
                                                      "failed during an outage"))
    if result.presence is not None:
        agree = int(result.presence["match"].sum())
        lines.append(f"presence: {agree}/{len(result.presence)} watcher/presentity pairs "
                     "agree on the states told")
    lines.append("RESULT: " + ("lab and model agree" if result.ok else "MISMATCH"))
    return lines


def markdown(result: Comparison) -> str:
    meta = "".join(f"- {k}: {v}\n" for k, v in result.meta.items())
    head = ["msg_id", *[f"{n} (model / lab)" for n, _ in SHOWN],
            "delivery ms (model / lab)", "match", "diff"]
    lines = ["# imsim lab run: lab against model", "", meta,
             *[f"**{line}**  " for line in summary_lines(result)], "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result.table.itertuples(index=False):
        cells = [row.msg_id, *[f"{show(getattr(row, 'model_' + n))} / "
                               f"{show(getattr(row, 'lab_' + n))}" for n, _ in SHOWN],
                 f"{show(row.model_delivery_ms)} / {show(row.lab_delivery_ms)}",
                 "yes" if row.match else "**NO**", row.diff]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    if result.gap and result.gap.get("failed"):
        lines += ["", "## Gap: failed during an outage", "", "| msg_id | t (s) | code | reason |",
                  "|---|---|---|---|"]
        lines += [f"| {g['msg_id']} | {show(g['t'])} | {show(g['code'])} | "
                  f"{str(g['reason']).replace('|', '/')} |" for g in result.gap["failed"]]
    if result.presence is not None and not result.presence["match"].all():
        lines += ["", "## Presence: states told (model / lab)", "",
                  "| env | watcher | presentity | model | lab |", "|---|---|---|---|---|"]
        lines += [f"| {r.env} | {r.watcher} | {r.presentity} | {r.model} | {r.lab} |"
                  for r in result.presence.itertuples(index=False) if not r.match]
    recon = result.reconciliation
    if recon is not None and not recon["clean"]:
        lines += ["", "## Reconciliation problems", ""]
        lines += [f"- {key}: {', '.join(recon[key][:20])}"
                  for key in ("lost", "duplicated", "orphans") if recon[key]]
    return "\n".join(lines) + "\n"


def latency_png(result: Comparison) -> str | None:
    """Delivery latency per message, model and lab side by side, as base64 PNG."""
    rows = result.table[result.table["model_delivery_ms"].notna()
                        | result.table["lab_delivery_ms"].notna()]
    if rows.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = rows.head(60)
    figure, axes = plt.subplots(figsize=(max(4.0, 0.35 * len(shown) + 2), 3.2))
    positions = range(len(shown))
    for offset, who in ((-0.2, "model"), (0.2, "lab")):
        values = [v if v is not None else 0 for v in shown[f"{who}_delivery_ms"]]
        axes.bar([p + offset for p in positions], values, width=0.4, label=who)
    axes.set_xticks(list(positions), list(shown["msg_id"]), rotation=90, fontsize=7)
    axes.set_ylabel("delivery latency (ms)")
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ms(seconds: Any) -> float | None:
    return None if _missing(seconds) else round(1000.0 * float(seconds), 3)


def _clean(value: Any) -> Any:
    """Scalars as plain Python values; NaN as None (so None == None compares equal)."""
    if _missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, Decimal):
        return value.item()
    return value


def show(value: Any) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)
