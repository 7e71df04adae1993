"""Planning plots: every function takes DataFrames (or a `RunResult`) and returns its
matplotlib Figure, drawn with readable defaults (titles, labelled axes, thousands
separators). Nothing is shown or saved here: a notebook displays the figure, a
script calls ``fig.savefig``.

- `money_by_variant`: revenue, cost and margin per variant, 95 % confidence intervals
  (from `imsim.planning.sweep.means`);
- `metric_by_factor`: any sweep metric against a factor, with its interval (latency
  against load, revenue against price);
- `revenue_by_destination`: billed revenue per rate code (xDRs or a planning month);
- `outcomes`: messages by the check that decided them;
- `latency_cdf`: delivery latency, one curve per run;
- `notify_load`: presence NOTIFYs per interval over the day;
- `proxy_utilization`: busy workers and queue of the proxy pool over time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from imsim.planning.bill import DELIVERED
from imsim.results import RunResult

SIZE = (8.0, 4.5)
MONEY = ("revenue", "cost", "margin")


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=SIZE, layout="constrained")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    return fig, ax


def money_by_variant(means: pd.DataFrame, variant: str, currency: str = "",
                     metrics: Sequence[str] = MONEY) -> Figure:
    """Grouped bars of ``<metric>_mean`` per value of ``variant``, error bars ±
    ``<metric>_ci`` (the 95 % half-width)."""
    fig, ax = _figure(f"Revenue, cost and margin by variant (95 % CI, {_runs(means)})", variant,
                      f"amount per run {currency}".strip())
    labels = [str(v) for v in means[variant]]
    x, width = np.arange(len(labels)), 0.8 / len(metrics)
    for k, metric in enumerate(metrics):
        ci = means[f"{metric}_ci"].fillna(0).to_numpy()
        ax.bar(x + (k - (len(metrics) - 1) / 2) * width, means[f"{metric}_mean"], width,
               yerr=ci, capsize=4, label=metric)
    ax.set_xticks(x, labels)
    ax.legend()
    return fig


def metric_by_factor(means: pd.DataFrame, factor: str, metric: str, label: str = "",
                     group: str | None = None) -> Figure:
    """``<metric>_mean`` against a numeric factor with its 95 % band (``_low`` to
    ``_high`` from `imsim.planning.sweep.means`: never below zero for a latency); one line per
    value of ``group`` when given. The title says how many runs each point has."""
    fig, ax = _figure(f"{label or metric} against {factor} (95 % interval, {_runs(means)})",
                      factor, label or metric)
    groups = means.groupby(group, sort=True) if group else [("", means)]
    for name, part in groups:
        part = part.sort_values(factor)
        low, high = _band(part, metric)
        ax.plot(part[factor], part[f"{metric}_mean"], marker="o",
                label=f"{group}={name}" if group else None)
        ax.fill_between(part[factor], low, high, alpha=0.2)
    if group:
        ax.legend()
    return fig


def _band(part: pd.DataFrame, metric: str) -> tuple[pd.Series, pd.Series]:
    if f"{metric}_low" in part:
        return part[f"{metric}_low"].fillna(part[f"{metric}_mean"]), \
            part[f"{metric}_high"].fillna(part[f"{metric}_mean"])
    ci = part[f"{metric}_ci"].fillna(0)
    return part[f"{metric}_mean"] - ci, part[f"{metric}_mean"] + ci


def _runs(means: pd.DataFrame) -> str:
    """``n = 3 runs per point`` (or ``n = 2 to 3``)."""
    if "n" not in means:
        return "n unknown"
    low, high = int(means["n"].min()), int(means["n"].max())
    return f"n = {low} runs per point" if low == high else f"n = {low} to {high} runs per point"


def revenue_by_destination(billed: pd.DataFrame | RunResult, top: int = 12) -> Figure:
    """Revenue per rate code, from xDRs (outgoing rows) or a rated planning month."""
    frame = billed.xdrs if isinstance(billed, RunResult) else billed
    if "direction" in frame:
        frame = frame[frame["direction"] != "vendor"]
    if "billed" in frame:
        frame = frame[frame["billed"]]
    revenue = frame.groupby(frame["rate_code"].astype(str))["charged_amount"].sum()
    revenue = revenue.sort_values(ascending=False).head(top)
    fig, ax = _figure("Revenue by destination", "rate code", "revenue")
    ax.bar(revenue.index, revenue.to_numpy())
    return fig


def outcomes(messages: pd.DataFrame | RunResult | Mapping[str, Any]) -> Figure:
    """Messages by SIP answer and deciding check ("200 delivered", "403 product"): a
    messages frame, a `RunResult`, a run summary or a planning month's summary."""
    counts = _outcome_counts(messages).sort_values()
    fig, ax = _figure("Outcomes: messages by SIP answer and deciding check", "messages",
                      "SIP answer and check")
    labels = [str(label) for label in counts.index]
    ax.barh(np.arange(len(labels)), counts.to_numpy())
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.grid(axis="x", alpha=0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    return fig


def _outcome_counts(messages: pd.DataFrame | RunResult | Mapping[str, Any]) -> pd.Series:
    """Message counts by "<code> <check>" label."""
    if isinstance(messages, RunResult):
        messages = messages.summary
    if not isinstance(messages, Mapping):
        labels = messages["code"].astype(int).astype(str) + " " + messages["check"].astype(str)
        return labels.value_counts()
    if isinstance(messages["outcomes"], Mapping):  # a planning month: refusals apart
        pairs = [(f"200 {DELIVERED}", messages["outcomes"].get(DELIVERED, 0))]
        pairs += [(f"{r['code']} {r['check']}", r["messages"]) for r in messages["refusals"]]
    else:
        pairs = [(f"{o['code']} {o['check']}", o["messages"]) for o in messages["outcomes"]]
    counts: dict[str, int] = {}
    for label, n in pairs:
        counts[label] = counts.get(label, 0) + int(n)
    return pd.Series({k: v for k, v in counts.items() if v}, dtype="int64")


def latency_cdf(runs: Mapping[str, pd.DataFrame | RunResult] | pd.DataFrame) -> Figure:
    """Empirical CDF of the latency of delivered messages, one curve per run."""
    fig, ax = _figure("Delivery latency", "latency (s)", "share of delivered messages")
    items = {"run": runs} if isinstance(runs, pd.DataFrame) else runs
    for label, run in items.items():
        frame = run.messages if isinstance(run, RunResult) else run
        values = np.sort(frame.loc[frame["code"].between(200, 299), "latency"].to_numpy())
        if len(values):
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                    label=label)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    ax.legend()
    return fig


def notify_load(presence: pd.DataFrame | RunResult, start: dt.datetime | None = None,
                interval: str = "15min") -> Figure:
    """NOTIFYs sent per ``interval``, against the clock when ``start`` is given (else
    simulated time)."""
    frame = presence.presence if isinstance(presence, RunResult) else presence
    notifies = frame[frame["event"] == "NOTIFY"]
    origin = pd.Timestamp(start) if start is not None else pd.Timestamp(0, tz="UTC")
    when = origin + pd.to_timedelta(notifies["time"], unit="s")
    counts = pd.Series(1, index=pd.DatetimeIndex(when)).resample(interval).sum()
    fig, ax = _figure("Presence NOTIFY load", "time" if start else "simulated time",
                      f"NOTIFYs per {interval}")
    ax.plot(counts.index, counts.to_numpy(), drawstyle="steps-post")
    fig.autofmt_xdate()
    return fig


def proxy_utilization(utilization: pd.DataFrame | RunResult, pool: str = "proxy") -> Figure:
    """Busy workers and queue length of a pool (sampled) over simulated time."""
    frame = utilization.utilization if isinstance(utilization, RunResult) else utilization
    part = frame[frame["pool"] == pool]
    fig, ax = _figure(f"{pool.capitalize()} utilization", "simulated time (s)", "transactions")
    for env, rows in part.groupby("env"):
        ax.plot(rows["time"], rows["busy"], label=f"{env}: busy workers")
        ax.plot(rows["time"], rows["queue"], label=f"{env}: queued", alpha=0.7)
    ax.legend()
    return fig
