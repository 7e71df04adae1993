"""Planning plots: every function takes DataFrames (or a `RunResult`) and returns its
matplotlib Figure, drawn with readable defaults (titles, labelled axes, thousands
separators). Nothing is shown or saved here: a notebook displays the figure, a
script calls ``fig.savefig``.

- `money_by_variant`: revenue, cost and margin per variant, 95 % confidence intervals
  (from `imsim.sweep.means`);
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
    fig, ax = _figure("Revenue, cost and margin by variant (95 % CI)", variant,
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
    """``<metric>_mean`` against a numeric factor with its 95 % band; one line per
    value of ``group`` when given."""
    fig, ax = _figure(f"{label or metric} against {factor}", factor, label or metric)
    groups = means.groupby(group, sort=True) if group else [("", means)]
    for name, part in groups:
        part = part.sort_values(factor)
        mean, ci = part[f"{metric}_mean"], part[f"{metric}_ci"].fillna(0)
        ax.plot(part[factor], mean, marker="o", label=f"{group}={name}" if group else None)
        ax.fill_between(part[factor], mean - ci, mean + ci, alpha=0.2)
    if group:
        ax.legend()
    return fig


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
    """Messages by the deciding check: a messages frame, a `RunResult`, or a summary."""
    if isinstance(messages, RunResult):
        messages = messages.summary
    if isinstance(messages, Mapping):
        counts = pd.Series({f"{o['code']} {o['check']}": o["messages"]
                            for o in messages["outcomes"]})
    else:
        counts = messages.groupby(messages["code"].astype(str) + " "
                                  + messages["check"].astype(str)).size()
    counts = counts.groupby(level=0).sum().sort_values()
    fig, ax = _figure("Outcomes", "messages", "")
    ax.barh(counts.index, counts.to_numpy())
    ax.grid(axis="x", alpha=0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    return fig


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
