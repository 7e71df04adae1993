"""The lab run's ``report.html`` as a page people read: the verdict first, then the
messages where lab and model differ with the differing fields named, what the latency
figure means, and the whole table narrow enough for a 1200-pixel screen.

Built from a `imsim.compare.Comparison`; the comparison itself (what matches, what
the summary says) stays in `imsim.compare`.
"""

from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Any

from imsim.compare import FIELDS, Comparison, latency_png, markdown, show, summary_lines

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1160px;margin:1.5em auto;padding:0 1em;
     color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}
.verdict{font-size:1.3em;padding:.6em 1em;border-radius:6px;margin:1em 0}
.verdict.ok{background:#e3f4e1;border:1px solid #7bbf72}
.verdict.bad{background:#fde4e1;border:1px solid #e0776b}
.differs{border:2px solid #e0776b;border-radius:6px;padding:.5em 1em;margin:.6em 0;
         background:#fff7f6}
.differs h3{margin:.2em 0}
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:13px}
th,td{padding:3px 6px;border-bottom:1px solid #ddd;text-align:left;overflow-wrap:anywhere}
th{background:#f3f3f3}
tr.bad td{background:#fde4e1}
td.diff{font-weight:bold;color:#a00}
table.fields{width:auto;min-width:28em}
.note{background:#f5f7fb;border-left:4px solid #7a8fc0;padding:.5em 1em}
img{max-width:100%}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}
dt{font-weight:bold}dd{margin:0}
"""
COLUMNS = (("code", "code"), ("delivered", "delivered"), ("units", "units"),
           ("amount", "amount"), ("tariff", "tariff"), ("rate_code", "rate code"))


def html_report(result: Comparison) -> str:
    """The whole page."""
    title = "imsim lab run: lab against model"
    body = [f"<h1>{title}</h1>", _verdict(result), *_differences(result),
            "<h2>Summary</h2>", _list(summary_lines(result)), "<h2>Run</h2>",
            _meta(result.meta), *_latency(result), "<h2>Every message</h2>",
            _table(result), *_extra(result)]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<meta name='viewport' content='width=device-width'>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def _verdict(result: Comparison) -> str:
    s = result.summary
    if result.ok:
        text = f"Lab and model agree: {s['matched']} of {s['messages']} messages."
    else:
        text = (f"MISMATCH: {s['mismatched']} of {s['messages']} messages differ"
                + (f" ({', '.join(sorted(s['fields']))})" if s["fields"] else "") + ".")
    css = "ok" if result.ok else "bad"
    return f"<p class='verdict {css}' id='verdict'><b>{html.escape(text)}</b></p>"


def differing_fields(row: Any, skipped: tuple[str, ...] = ()) -> list[str]:
    """The compared fields on which model and lab disagree in one table row."""
    return [name for name in FIELDS if name not in skipped
            and getattr(row, f"model_{name}") != getattr(row, f"lab_{name}")]


def _differences(result: Comparison) -> list[str]:
    rows = [r for r in result.table.itertuples(index=False) if not r.match]
    if not rows:
        return []
    out = [f"<h2 id='differing'>Messages that differ ({len(rows)})</h2>"]
    for row in rows:
        names = differing_fields(row, result.uncompared)
        cells = "".join(f"<tr><td>{html.escape(n)}</td>"
                        f"<td>{html.escape(show(getattr(row, 'model_' + n)))}</td>"
                        f"<td>{html.escape(show(getattr(row, 'lab_' + n)))}</td></tr>"
                        for n in names)
        detail = (f"<table class='fields'><tr><th>field</th><th>model</th><th>lab</th></tr>"
                  f"{cells}</table>") if cells else f"<p>{html.escape(row.diff)}</p>"
        out.append(f"<div class='differs'><h3>{html.escape(str(row.msg_id))}: "
                   f"{html.escape(', '.join(names) or row.diff)}</h3>{detail}</div>")
    return out


def _latency(result: Comparison) -> list[str]:
    figure = latency_png(result)
    image = (f'<img alt="delivery latency per message, model and lab" '
             f'src="data:image/png;base64,{figure}">') if figure else \
        "<p>(no delivered message: no latency figure)</p>"
    return ["<h2>Delivery latency, model and lab</h2>", _latency_note(result), image]


def _median(values: Any) -> float | None:
    numbers = [float(v) for v in values if v is not None and v == v]
    return statistics.median(numbers) if numbers else None


def _latency_note(result: Comparison) -> str:
    model = _median(result.table["model_delivery_ms"])
    lab = _median(result.table["lab_delivery_ms"])
    medians = ""
    if model is not None and lab is not None:
        medians = (f" Here the median is {model:g} ms in the model and {lab:g} ms in the "
                   "lab.")
    return ("<p class='note' id='latency-note'>What this figure compares: the model's "
            "delivery times come from the scenario's timing settings (the client links' "
            "delays, the proxy's and billing's service times and AAA latency: a "
            "deployment across a network); the lab's are measured on this machine's "
            "loopback (127.0.0.1), where Kamailio, the billing service and the clients "
            f"answer in a few milliseconds.{medians} The two are shown side by side and "
            "never compared: a gap here is expected and is not a mismatch. To size a real "
            "deployment, set the model's timing from measured delays.</p>")


def _table(result: Comparison) -> str:
    head = "".join(f"<th>{label}<br><small>model / lab</small></th>" for _, label in COLUMNS)
    rows = []
    for row in result.table.itertuples(index=False):
        differs = set(differing_fields(row, result.uncompared))
        cells = "".join(
            f"<td{' class=diff' if name in differs else ''}>"
            f"{html.escape(show(getattr(row, 'model_' + name)))} / "
            f"{html.escape(show(getattr(row, 'lab_' + name)))}</td>" for name, _ in COLUMNS)
        delivery = (f"{show(row.model_delivery_ms)} / {show(row.lab_delivery_ms)}")
        rows.append(f"<tr{'' if row.match else ' class=bad'}><td>{html.escape(str(row.msg_id))}"
                    f"</td>{cells}<td>{html.escape(delivery)}</td>"
                    f"<td>{'yes' if row.match else '<b>NO</b>'}</td></tr>")
    return (f"<table class='cmp'><tr><th>message</th>{head}<th>delivery ms<br><small>model"
            f" / lab</small></th><th>match</th></tr>{''.join(rows)}</table>")


def _extra(result: Comparison) -> list[str]:
    """Outage gap, presence disagreements and reconciliation problems, when any."""
    out = []
    if result.gap and result.gap.get("failed"):
        out += ["<h2>Gap: failed during an outage</h2>", _list(
            f"{g['msg_id']} at {g['t']} s: {g['code']} {g['reason']}"
            for g in result.gap["failed"])]
    if result.presence is not None and not result.presence["match"].all():
        out += ["<h2>Presence: states told (model / lab)</h2>", _list(
            f"{r.env}: {r.watcher} watching {r.presentity}: {r.model} / {r.lab}"
            for r in result.presence.itertuples(index=False) if not r.match)]
    recon = result.reconciliation
    if recon is not None and not recon["clean"]:
        out += ["<h2>Reconciliation problems</h2>", _list(
            f"{key}: {', '.join(recon[key][:20])}" for key in ("lost", "duplicated", "orphans")
            if recon[key])]
    return out


def _list(lines: Any) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(str(line))}</li>" for line in lines) + "</ul>"


def _meta(meta: dict[str, Any]) -> str:
    return "<dl>" + "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                            for k, v in meta.items()) + "</dl>"


def write_reports(result: Comparison, out: Path | str) -> list[Path]:
    """compare.csv, report.md and report.html into ``out``; the paths written."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "compare.csv", folder / "report.md", folder / "report.html"]
    result.table.to_csv(paths[0], index=False)
    if result.presence is not None:
        result.presence.to_csv(folder / "presence.csv", index=False)
    paths[1].write_text(markdown(result), encoding="utf-8")
    paths[2].write_text(html_report(result), encoding="utf-8")
    return paths
