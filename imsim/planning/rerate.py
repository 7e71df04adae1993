"""Re-rate real traffic: xDR exports under candidate scenarios, side by side, on Dask.

```python
chosen = rerate.variants("scenarios/planning.yaml", ["dearer=dearer.yaml"],
                         ["environments[0].tariffs[1].rates[0].price=0.01,0.02"])
report = rerate.run(["exports/*.csv.gz"], chosen, "runs/rerate", workers=2)
report.summary, report.tables["rate_code"], report.winners_losers
```

Every outgoing message of the exports (`imsim.planning.exports.charged`) is billed again under
each variant by `imsim.planning.bill.Billing` (as `rate_messages`; prepared once per
variant and process), the planning rules (decide per group of messages,
`imsim.rules.batch.rate_many` for money, bundles per account-month, off-peak in the
customer's zone); nothing here rates, authorizes or applies a bundle.
The variant ``base`` is the ``--scenario`` itself; ``--variant NAME=FILE`` adds a
scenario file; each combination of ``--vary`` factors (`imsim.planning.sweep.parse_vary`)
adds the base changed by them.

Partitioning (why results do not depend on the cluster): the input is shuffled by the
sender's number (``CLI``, dask's hash partitioning) into ``partitions`` parts (default:
as many as the input has, a property of the files, never of the workers), so every
message of an account, and so of each account-month bundle, is in one part. Within a
part, messages are sorted by (CLI, connect_time, i_xdr, CLD, call_id) before rating, so the
first messages of a month are the same ones on any cluster. Totals are sums of integer
micro-units, exact in any order.

Memory: re-rating holds one part at a time, about 1 KB per message and variant over a
base of about 0.3 GiB (parts of 470,000 rows under two variants: 0.54 GiB in one
process). The shuffle also keeps pieces of parts until their turn; dask spills them to
disk at 60 % of ``memory_limit`` and pauses a worker at 80 %, so the limit (default
2 GiB per LocalCluster worker) bounds a worker whatever the number of rows (10M rows on
1 worker: peak RSS 1.5-1.6 GiB). Keep Parquet files or row groups at about 500,000
rows, CSV ``blocksize`` at 64 MB or less (a .gz file is one part: split large ones), or
raise ``partitions``.

Revenue is what the messages earned, as in the simulator's totals and planning: the
senders' charges and, where incoming messages are charged, the recipients' (an
incoming xDR counts with the outgoing xDR of the same ``call_id``; ``incoming_revenue``
is that part). By customer and product a message is its sender's; a customer's bill
(`winners_losers`) is its own charges only.

What is written into ``out``: ``summary.csv`` (per variant: messages, refused,
revenue before and after, cost, margin, lost revenue, incoming revenue before and
after), ``by_rate_code.csv``, ``by_product.csv``, ``by_customer.csv``, ``by_day.csv``
(day in UTC),
``refusals.csv`` (per variant and refusing check: messages and the revenue they
earned before, now lost), ``winners_losers.csv`` (the customers whose bill falls,
winners, or rises, losers, most) and ``deltas/NAME/part-NNNNN.parquet``, one
row per message and variant; ``warnings.txt`` when a result may be inexact (below)
or adds amounts of different currencies (`mixed_currencies`).
Output folders must be shared with a remote cluster.

Balances across parts: a debit account's messages are all in one part, so its balance
runs out exactly as the ledger's. A credit customer's accounts may be in several
parts, and each part settles from the customer's whole credit limit: where the
customer was charged at least what its limit left at the start, messages past the
limit may not have been refused, and `Report.warnings` says so (`shared_limits`).
A recipient charged for incoming messages pays from every part its senders are in,
each from its whole balance: a variant that charges them gets a warning too
(`shared_recipients`). ``partitions=1`` settles them exactly, in one part.
"""

from __future__ import annotations

import logging
import resource
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imsim.errors import UsageError
from imsim.model import scenario as scenario_mod
from imsim.model.config import BalanceModel
from imsim.model.scenario import Scenario
from imsim.planning import parts
from imsim.planning.bill import Billing
from imsim.planning.cluster import cluster
from imsim.rules.ledger import Ledger
from imsim.rules.proxy import select_policy

MICRO = 1_000_000
ORDER = ["CLI", "connect_time", "i_xdr", "CLD", "call_id"]
DIMENSIONS = ("rate_code", "product", "customer", "day")
SUMS = ("messages", "refused", "before_micro", "revenue_micro", "cost_micro", "lost_micro",
        "incoming_before_micro", "incoming_micro")
UNKNOWN = "(unknown)"
WORKERS = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 128 * 2 ** 20,
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 32 * 2 ** 20,
}
"""Our LocalCluster's workers' glibc: distributed's MALLOC_TRIM_THRESHOLD_ of 64 KiB
also pins the mmap threshold at 128 KiB, so every array of a part was a fresh mmap and
its page faults (0.6-1.3 s of system time per part of 470,000 messages under two
variants). Arrays under 32 MiB now reuse the heap, and free memory over 128 MiB still
goes back to the system (10M rows on 1 worker: 149,376 -> 188,205 rows per CPU-second,
the same peak memory)."""


@dataclass(frozen=True)
class Variant:
    """A candidate configuration: its name and scenario, and who each account is."""

    name: str
    scenario: Scenario
    accounts: pd.DataFrame = field(repr=False)   # CLI (int64); env, customer, product

    @classmethod
    def of(cls, name: str, loaded: Scenario) -> Variant:
        rows = [(int(a.id), env.name, c.name, a.product) for env in loaded.environments
                for c in env.customers for a in c.accounts]
        accounts = pd.DataFrame(rows, columns=["CLI", "env", "customer", "product"])
        accounts = accounts.drop_duplicates("CLI").astype({"CLI": "int64"}).assign(
            env=lambda f: pd.Categorical(f["env"], categories=cls.environments(loaded)),
            customer=lambda f: _with_unknown(f["customer"]),
            product=lambda f: _with_unknown(f["product"]))
        return cls(name, loaded, accounts.reset_index(drop=True))

    @staticmethod
    def environments(loaded: Scenario) -> list[str]:
        return [env.name for env in loaded.environments]

    @cached_property
    def billing(self) -> Billing:
        """The variant's billing, prepared once per process for all its parts."""
        return Billing(self.scenario)

    def home(self, cli: pd.Series) -> np.ndarray:
        """Each sender's row in ``accounts``, -1 when it is no account of the variant."""
        return pd.Index(self.accounts["CLI"]).get_indexer(cli.to_numpy())

    def who(self, column: str, home: np.ndarray) -> pd.Categorical:
        """The senders' customer or product (UNKNOWN for no account)."""
        known: pd.Categorical = self.accounts[column].array
        codes = take(known.codes, home, len(known.categories) - 1)
        return pd.Categorical.from_codes(codes, known.categories)


def take(values: np.ndarray, rows: np.ndarray, missing: int) -> np.ndarray:
    """``values[rows]``, ``missing`` where a row is -1 (also when there are no values)."""
    if len(values) == 0:
        return np.full(len(rows), missing, dtype=np.int64)
    return np.where(rows >= 0, values[np.maximum(rows, 0)], missing)


def _with_unknown(names: pd.Series) -> pd.Categorical:
    return pd.Categorical(names, categories=[*pd.unique(names), UNKNOWN])


def variants(base: str | Path, named: Sequence[str] = (),
             vary: Sequence[str] = ()) -> list[Variant]:
    """``base``, each ``NAME=FILE.yaml`` and each combination of ``vary`` on the base."""
    from imsim.planning import sweep

    found = [Variant.of("base", scenario_mod.load(base))]
    for spec in named:
        name, sep, path = (part.strip() for part in spec.partition("="))
        if not sep or not name or not path:
            raise UsageError(f"--variant {spec!r}: write NAME=FILE.yaml")
        found.append(Variant.of(name, scenario_mod.load(path)))
    if vary:
        planned = sweep.plan(base, vary)
        for item in planned.runs:
            label = ", ".join(f"{f.name}={v}" for f, v in zip(planned.factors, item.values,
                                                              strict=True))
            found.append(Variant.of(label, planned.scenarios[item.combination]))
    names = [v.name for v in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--variant: the name {twice[0]!r} is used twice (name each once)")
    return found


def unit_sizes(loaded: Scenario) -> dict[str, int]:
    """Per environment, the billing unit size its exports were rated with (0: none)."""
    sizes = {}
    for env in loaded.environments:
        policy = select_policy(env.service_policies, env.domain)
        sizes[env.name] = int(policy.billing_unit_size or 0) if policy else 0
    return sizes


# -- one part ------------------------------------------------------------------------------

def messages(part: pd.DataFrame, variant: Variant, home: np.ndarray,
             sizes: Mapping[str, int]) -> pd.DataFrame:
    """The part as `rate_messages` input (env, CLI, CLD, connect_time, length): the
    export's env when the variant has it, else the sender's home (else the first);
    the length when exported, else ``charged_quantity`` units of the base's size."""
    names = Variant.environments(variant.scenario)
    exported = pd.Categorical(part["env"], categories=names).codes
    codes = np.where(exported >= 0, exported, take(variant.accounts["env"].array.codes, home, 0))
    size = np.array([sizes.get(name, 0) for name in names], dtype=np.int64)[codes]
    length = part["length"].to_numpy()
    length = np.where(length >= 0, length, part["charged_quantity"].to_numpy() * size)
    return pd.DataFrame({"env": pd.Categorical.from_codes(codes, names),
                         "CLI": part["CLI"].to_numpy(), "CLD": part["CLD"].to_numpy(),
                         "connect_time": part["connect_time"].array, "length": length})


def rerated(part: pd.DataFrame, variant: Variant, sizes: Mapping[str, int]) -> pd.DataFrame:
    """One row per message of ``part`` under ``variant``: before, after, the delta."""
    home = variant.home(part["CLI"])
    rated = variant.billing.rate(messages(part, variant, home, sizes))
    incoming_before = part["incoming_before_micro"].to_numpy()
    before = part["charged_amount_micro"].to_numpy() + incoming_before
    incoming = rated["incoming_micro"].to_numpy()
    after = rated["charged_amount_micro"].to_numpy() + incoming
    refused = (rated["check"] != "delivered").to_numpy()
    out = pd.DataFrame({
        "variant": pd.Categorical.from_codes(np.zeros(len(part), np.int8), [variant.name]),
        "i_xdr": part["i_xdr"].to_numpy(), "call_id": part["call_id"].array,
        "account_id": part["account_id"].array, "env": rated["env"].array,
        "CLI": part["CLI"].to_numpy(), "CLD": part["CLD"].to_numpy(),
        "connect_time": part["connect_time"].array, "customer": variant.who("customer", home),
        "product": variant.who("product", home), "rate_code": rated["rate_code"].array,
        "check": rated["check"].array, "billed": rated["billed"].to_numpy(),
        "refused": refused, "before_micro": before, "revenue_micro": after,
        "incoming_before_micro": incoming_before, "incoming_micro": incoming,
        "cost_micro": rated["cost_micro"].to_numpy(), "delta_micro": after - before,
        "lost_micro": np.where(refused, before, 0)})
    for extra in ("code", "step"):   # the refusal's SIP code and handbook step, if given
        if extra in rated.columns:
            out[extra] = rated[extra].to_numpy()
    return out


def partial(delta: pd.DataFrame) -> pd.DataFrame:
    """Integer sums per (variant, dimension, key as text); ``by='reason'`` sums the
    refused messages by their refusing check. One groupby over every dimension at
    once, rolled up per dimension from its (small) result."""
    frame = delta.assign(messages=1, day=delta["connect_time"].dt.floor("D"))
    cells = _sums(frame, ["variant", *DIMENSIONS]).assign(total="all")
    refused = _sums(frame[frame["refused"]].rename(columns={"check": "reason"}),
                    ["variant", "reason"])
    frames = [_sums(cells, ["variant", by]) for by in ("total", *DIMENSIONS)] + [refused]
    out = pd.concat([f.assign(key=_keys(f.iloc[:, 1]), by=f.columns[1]).drop(
        columns=f.columns[1]) for f in frames], ignore_index=True)
    return out.assign(variant=out["variant"].astype(str))


def _sums(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.groupby(keys, sort=False, observed=True, dropna=False)[
        list(SUMS)].sum().reset_index()


def _keys(values: pd.Series) -> list[str]:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return [v.strftime("%Y-%m-%d") for v in values]
    return ["(none)" if pd.isna(v) else str(v) for v in values]


def with_incoming(part: pd.DataFrame) -> pd.DataFrame:
    """The part's messages (its outgoing xDRs) with ``incoming_before_micro``, what the
    export charged their recipients: its incoming xDRs of the same ``call_id``, which
    the shuffle put in the same part (the same sender). An incoming xDR with no
    outgoing one in the export is not re-rated."""
    flag = part["incoming"].to_numpy()
    if not flag.any():   # incoming messages free (the handbook's default): nothing to find
        return part.drop(columns="incoming").assign(incoming_before_micro=0)
    out = part[~flag].drop(columns="incoming")
    charged = part[flag & part["call_id"].ne("").to_numpy()]
    paid = charged.groupby("call_id")["charged_amount_micro"].sum()
    before = paid.reindex(out["call_id"].to_numpy()).fillna(0).to_numpy(np.int64)
    return out.assign(incoming_before_micro=before)


def ordered(part: pd.DataFrame) -> pd.DataFrame:
    """The part by (CLI, connect_time), then i_xdr, CLD and call_id where those tie:
    the same order whatever order the shuffle delivered the rows in."""
    cli, times = part["CLI"].to_numpy(), part["connect_time"].array.asi8
    order = by_sender_and_time(cli, times)
    cli, times = cli[order], times[order]
    if ((cli[1:] == cli[:-1]) & (times[1:] == times[:-1])).any():
        return part.sort_values(ORDER, kind="stable", ignore_index=True)
    return part.take(order).reset_index(drop=True)


def by_sender_and_time(cli: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``np.lexsort((times, cli))``; as one sort of one int64 key (the sender's rank,
    then the time since the part's first) when both fit in 62 bits, as they do for
    months of messages (a part of 470,000 messages: 118 -> 59 ms)."""
    if len(cli) == 0:
        return np.arange(0)
    rank, senders = pd.factorize(cli, sort=True)
    span = times - times.min()
    bits = int(span.max()).bit_length()
    if bits + len(senders).bit_length() > 62:
        return np.lexsort((times, cli))
    return np.argsort((rank.astype(np.int64) << bits) | span, kind="stable")


def rerate_part(part: pd.DataFrame, chosen: Sequence[Variant], sizes: Mapping[str, int],
                out: str, index: int) -> pd.DataFrame:
    """Re-rate one part under every variant, write its deltas, return its sums."""
    part = with_incoming(part)
    if part.empty:
        return pd.DataFrame(columns=["variant", "key", "by", *SUMS])
    part = ordered(part.assign(env=part["env"].astype("category")))   # recoded per variant
    sums = []
    for variant in chosen:
        delta = rerated(part, variant, sizes)
        folder = Path(out) / "deltas" / _slug(variant.name)
        folder.mkdir(parents=True, exist_ok=True)
        categories = [c for c in delta.columns if isinstance(delta[c].dtype, pd.CategoricalDtype)]
        delta.to_parquet(folder / f"part-{index:05d}.parquet", index=False,
                         use_dictionary=categories)   # not tried on numbers: 172 -> 136 ms
        sums.append(partial(delta))
    return pd.concat(sums, ignore_index=True)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.,=" else "_" for c in name)


# -- the whole run ------------------------------------------------------------------------

@dataclass
class Report:
    """Per variant: the summary, the tables by dimension, refusals, winners and losers."""

    summary: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    refusals: pd.DataFrame
    winners_losers: pd.DataFrame
    peak_rss: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)   # shared_limits, ..., mixed_currencies
    parts_reused: bool = False   # read back from ``keep_parts``: the exports were not read

    @classmethod
    def of(cls, sums: pd.DataFrame, order: Sequence[str], top: int = 10) -> Report:
        total = sums.groupby(["variant", "by", "key"], sort=True)[list(SUMS)].sum()
        total = total.reset_index()
        rank = {name: k for k, name in enumerate(order)}
        total = total.sort_values(["variant", "key"], key=lambda c: c.map(rank)
                                  if c.name == "variant" else c, kind="stable")
        pick = {by: money(total[total["by"] == by].drop(columns="by")).rename(
            columns={"key": by}) for by in ("total", *DIMENSIONS, "reason")}
        summary = pick.pop("total").drop(columns="total").reset_index(drop=True)
        refusals = pick.pop("reason")
        refusals = refusals[["variant", "reason", "messages", "lost_revenue"]]
        return cls(summary, pick, refusals.reset_index(drop=True),
                   winners_losers(pick["customer"], top))

    def write(self, out: str | Path) -> list[Path]:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        frames = {"summary": self.summary, "refusals": self.refusals,
                  "winners_losers": self.winners_losers,
                  **{f"by_{by}": table for by, table in self.tables.items()}}
        for name, frame in frames.items():
            frame.to_csv(folder / f"{name}.csv", index=False)
        written = [folder / f"{name}.csv" for name in frames]
        (folder / "warnings.txt").unlink(missing_ok=True)
        if self.warnings:
            (folder / "warnings.txt").write_text("".join(f"{w}\n" for w in self.warnings))
            written.append(folder / "warnings.txt")
        return written


def shared_limits(by_customer: pd.DataFrame, chosen: Sequence[Variant],
                  count: int) -> list[str]:
    """The credit customers charged at least the room their limit left at the start.
    A customer's accounts may be in several parts, and each part settles from the
    whole room: messages past the limit may not have been refused, where one part
    (``--partitions 1``) refuses them as the ledger does."""
    if count <= 1:
        return []
    found = []
    for variant in chosen:
        mine = by_customer[by_customer["variant"] == variant.name].set_index("customer")
        charged = (mine["revenue"] - mine["incoming_revenue"]).round(6)   # its own charges
        for env in variant.scenario.environments:
            ledger = Ledger.of(env)
            for customer in env.customers:
                if customer.balance_model is not BalanceModel.credit or not customer.accounts:
                    continue
                room = ledger.available(customer, customer.accounts[0])
                spent = Decimal(str(charged.get(customer.name, 0.0)))
                if room is not None and spent >= room:
                    found.append(
                        f"variant {variant.name!r}: credit customer {customer.name!r} was "
                        f"charged {spent:,.2f} with {room:,.2f} of credit left at the start; "
                        f"its accounts may be in several of the {count} parts, each "
                        "settled from the whole limit, so messages past it may not be "
                        "refused: --partitions 1 settles them exactly (one part: the "
                        "whole input must fit one worker)")
    return found


def mixed_currencies(chosen: Sequence[Variant]) -> list[str]:
    """The variants whose tariffs are in more than one currency: their sums add
    amounts of different currencies into one figure."""
    found = []
    for variant in chosen:
        currencies = sorted({t.currency for env in variant.scenario.environments
                             for t in env.tariffs})
        if len(currencies) > 1:
            found.append(f"variant {variant.name!r} has tariffs in {', '.join(currencies)}: "
                         "revenue, cost and margin add them as one figure; re-rate one "
                         "currency's environments at a time")
    return found


def shared_recipients(summary: pd.DataFrame, count: int) -> list[str]:
    """The variants that charge recipients for incoming messages. A recipient's
    balance or credit limit pays for messages from senders in any part, and each part
    settles from the whole of it: one who runs out may not have had messages refused,
    where one part (``--partitions 1``) refuses them as the ledger does."""
    if count <= 1:
        return []
    return [f"variant {row.variant!r} charges recipients {row.incoming_revenue:,.2f} for "
            f"incoming messages; a recipient's senders may be in several of the {count} "
            "parts, each settled from the recipient's whole balance or credit limit, so "
            "messages past it may not be refused: --partitions 1 settles them exactly "
            "(one part: the whole input must fit one worker)"
            for row in summary.itertuples() if row.incoming_revenue > 0]


def money(table: pd.DataFrame) -> pd.DataFrame:
    """Micro-unit sums as amounts, with margin (revenue - cost) and delta."""
    out = table.drop(columns=[c for c in table.columns if c.endswith("_micro")])
    names = {"before": "before", "revenue": "revenue", "cost": "cost", "lost": "lost_revenue",
             "incoming_before": "incoming_revenue_before", "incoming": "incoming_revenue"}
    for name, column in names.items():
        out[column] = table[f"{name}_micro"] / MICRO
    out["margin"] = (table["revenue_micro"] - table["cost_micro"]) / MICRO
    out["delta"] = (table["revenue_micro"] - table["before_micro"]) / MICRO
    return out.rename(columns={"before": "revenue_before"}).reset_index(drop=True)


def winners_losers(by_customer: pd.DataFrame, top: int) -> pd.DataFrame:
    """Per variant, the ``top`` customers whose bill falls most (winners) and rises
    most (losers); a customer whose bill does not change is neither. The bill is what
    the customer's accounts are charged for their messages: revenue without what their
    recipients paid (``incoming_revenue``)."""
    rows = []
    own = by_customer.assign(   # amounts have at most 6 places: round away float noise
        revenue_before=(by_customer["revenue_before"]
                        - by_customer["incoming_revenue_before"]).round(6),
        revenue=(by_customer["revenue"] - by_customer["incoming_revenue"]).round(6))
    own["delta"] = (own["revenue"] - own["revenue_before"]).round(6)
    for _, table in own.groupby("variant", sort=False):
        changed = table[table["delta"] != 0]
        rows.append(changed[changed["delta"] < 0].nsmallest(top, "delta").assign(side="winner"))
        rows.append(changed[changed["delta"] > 0].nlargest(top, "delta").assign(side="loser"))
    columns = ["variant", "side", "customer", "revenue_before", "revenue", "delta", "messages"]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows)[columns].reset_index(drop=True)


def run(sources: Sequence[str | Path], chosen: Sequence[Variant], out: str | Path,
        workers: int = 2, scheduler: str | None = None, client: Any = None,
        partitions: int | None = None, progress: bool = False,
        mapping: Mapping[str, str] | None = None, time_zone: str = "UTC",
        i_service: str | None = None, top: int = 10, blocksize: str | int = "64MB",
        memory_limit: str = "2GiB", processes: bool = True,
        keep_parts: str | Path | None = None) -> Report:
    """Re-rate every outgoing message of ``sources`` under ``chosen``; write into
    ``out`` (see the module docstring); the report. On a LocalCluster of ``workers``
    (``processes=False``: threads of this process), the cluster at ``scheduler``, or
    a given ``client``. ``keep_parts``: a folder where the shuffled parts are kept for
    later runs on the same exports, or read from (`imsim.planning.parts.kept`)."""
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)   # "initialized by"
    shutil.rmtree(Path(out) / "deltas", ignore_errors=True)
    sizes = unit_sizes(chosen[0].scenario)
    with cluster(workers, scheduler, client, memory_limit, processes, WORKERS) as dask:
        reading = parts.Reading(sources, partitions, mapping, time_zone, i_service, blocksize)
        if keep_parts is None:
            shuffled, made = parts.by_sender(reading), True
        else:
            shuffled, made = parts.kept(keep_parts, reading)
        sums = list(_compute(dask, shuffled, chosen, sizes, str(out), progress))
        peak = dask.run(peak_rss)
    report = Report.of(pd.concat(sums, ignore_index=True), [v.name for v in chosen], top)
    report.peak_rss = dict(peak)
    report.parts_reused = not made
    report.warnings = (shared_limits(report.tables["customer"], chosen, shuffled.npartitions)
                       + shared_recipients(report.summary, shuffled.npartitions)
                       + mixed_currencies(chosen))
    report.write(out)
    return report


def _compute(dask: Any, shuffled: Any, chosen: Sequence[Variant], sizes: Mapping[str, int],
             out: str, progress: bool) -> Iterator[pd.DataFrame]:
    from dask import delayed
    from distributed import as_completed
    from tqdm import tqdm

    task: Callable[..., Any] = delayed(rerate_part, pure=True)
    scattered = dask.scatter(list(chosen), broadcast=True)
    parts = [task(p, scattered, sizes, out, k) for k, p in enumerate(shuffled.to_delayed())]
    futures = dask.compute(parts)
    with tqdm(total=len(futures), unit="part", disable=not progress, file=sys.stderr,
              leave=False) as bar:
        for future in as_completed(futures):
            yield future.result()
            bar.update()


def peak_rss() -> int:
    """This process's peak resident set size in bytes (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


