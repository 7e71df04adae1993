"""`imsim rerate`: the simulator's own xDRs billed again, under variants, on Dask."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsim import sim
from imsim.cli import main
from imsim.model import scenario
from imsim.model.config import UsageCharge
from imsim.model.scenario import Scenario
from imsim.planning import rerate
from tests.helpers import ROOT
from tests.test_planning import with_records

OPERATOR = ROOT / "scenarios" / "planning" / "per_message.yaml"
BUNDLE = ROOT / "scenarios" / "planning" / "bundle.yaml"
UK_DE_RETAIL = "environments[0].tariffs[1].rates[1].price=0.08"   # was 0.04
NO_BRAZIL_RETAIL = "environments[0].tariffs[1].rates[2].status=forbidden"


def micro(amount: float) -> int:
    """The xDR's amount in micro-units, exactly (imsim's floats have <= 6 decimals)."""
    return int(Decimal(repr(amount)) * 1_000_000)


def outgoing(xdrs: pd.DataFrame) -> pd.DataFrame:
    out = xdrs[xdrs["direction"] == "outgoing"].copy()
    out["micro"] = [micro(a) for a in out["charged_amount"]]
    return out.set_index("i_xdr")


def small_bundle() -> Scenario:
    """The bundle scenario with one included message per account and month."""
    loaded = scenario.load(BUNDLE)
    env = loaded.environments[0]
    one = tuple(p.model_copy(update={"included_messages": 1}) for p in env.products)
    return with_records(loaded.model_copy(update={"environments": (env.model_copy(
        update={"products": one}),)}), until=60.0)


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("operator")
    xdrs = sim.run(with_records(scenario.load(OPERATOR)), until=120.0).xdrs
    xdrs.to_csv(folder / "xdrs.csv", index=False)
    xdrs.to_parquet(folder / "xdrs.parquet", index=False)
    return folder, xdrs


def deltas(out: Path, variant: str) -> pd.DataFrame:
    return pd.read_parquet(out / "deltas" / rerate._slug(variant)).set_index("i_xdr")


def rerun(sources: list[Path], chosen: list[rerate.Variant], out: Path, workers: int = 1,
          partitions: int | None = None) -> rerate.Report:
    return rerate.run(sources, chosen, out, workers=workers, partitions=partitions,
                      processes=False)


@pytest.mark.parametrize("name", ["xdrs.csv", "xdrs.parquet"])
def test_rerating_the_simulators_xdrs_reproduces_every_charged_amount(operator, tmp_path,
                                                                       name):
    folder, xdrs = operator
    expected = outgoing(xdrs)
    report = rerun([folder / name], rerate.variants(OPERATOR), tmp_path)
    got = deltas(tmp_path, "base").loc[expected.index]
    assert len(got) == len(expected) > 1000
    assert got["revenue_micro"].tolist() == expected["micro"].tolist()
    assert got["rate_code"].tolist() == expected["rate_code"].tolist()
    assert (got["check"] == "delivered").all()
    assert report.summary.loc[0, "revenue"] == pytest.approx(float(expected["micro"].sum())
                                                             / 1e6)


def test_bundles_are_reproduced_whatever_the_number_of_workers(tmp_path):
    xdrs = sim.run(small_bundle()).xdrs
    xdrs.to_parquet(tmp_path / "xdrs.parquet", index=False)
    expected = outgoing(xdrs)
    chosen = [rerate.Variant.of("base", small_bundle())]
    one = rerun([tmp_path / "xdrs.parquet"], chosen, tmp_path / "one", 1, 1)
    two = rerun([tmp_path / "xdrs.parquet"], chosen, tmp_path / "two", 2, 7)
    first, second = deltas(tmp_path / "one", "base"), deltas(tmp_path / "two", "base")
    assert 0 < (expected["micro"] == 0).sum() < len(expected)   # some included, some not
    assert first.loc[expected.index, "revenue_micro"].tolist() == expected["micro"].tolist()
    pd.testing.assert_frame_equal(first.sort_index(), second.sort_index())
    pd.testing.assert_frame_equal(one.summary, two.summary)
    for by in rerate.DIMENSIONS:
        pd.testing.assert_frame_equal(one.tables[by], two.tables[by])


def test_a_dearer_rate_raises_exactly_the_messages_it_rates(operator, tmp_path):
    folder, xdrs = operator
    expected = outgoing(xdrs)
    chosen = rerate.variants(OPERATOR, vary=[UK_DE_RETAIL])
    report = rerun([folder / "xdrs.csv"], chosen, tmp_path, 2, 3)
    hit = (expected["tariff"] == "retail") & expected["rate_code"].isin(["44", "49"])
    got = deltas(tmp_path, UK_DE_RETAIL).loc[expected.index]
    assert hit.sum() > 100
    assert got["delta_micro"].tolist() == (expected["micro"] * hit).tolist()
    row = report.summary.set_index("variant").loc[UK_DE_RETAIL]
    assert row["delta"] == pytest.approx(expected.loc[hit, "micro"].sum() / 1e6)


def test_refused_messages_are_lost_revenue_with_their_reason(operator, tmp_path):
    folder, xdrs = operator
    expected = outgoing(xdrs)
    chosen = rerate.variants(OPERATOR, vary=[NO_BRAZIL_RETAIL])
    report = rerun([folder / "xdrs.parquet"], chosen, tmp_path)
    lost = expected[(expected["tariff"] == "retail") & (expected["rate_code"] == "55")]
    refusals = report.refusals.set_index(["variant", "reason"])
    row = refusals.loc[(NO_BRAZIL_RETAIL, "customer_rate")]
    assert row["messages"] == len(lost) > 50
    assert row["lost_revenue"] == pytest.approx(lost["micro"].sum() / 1e6)
    got = deltas(tmp_path, NO_BRAZIL_RETAIL)
    assert got.loc[lost.index, "refused"].all() and got["refused"].sum() == len(lost)
    assert (got.loc[lost.index, "revenue_micro"] == 0).all()


def test_winners_and_losers_are_the_customers_whose_bill_changes_most(operator, tmp_path):
    folder, xdrs = operator
    expected = outgoing(xdrs)
    loaded = scenario.load(OPERATOR)
    customer = {a.id: c.name for c in loaded.environments[0].customers for a in c.accounts}
    hit = (expected["tariff"] == "retail") & expected["rate_code"].isin(["44", "49"])
    rise = expected[hit].groupby(expected.loc[hit, "account_id"].map(customer))["micro"].sum()
    chosen = rerate.variants(OPERATOR, vary=[UK_DE_RETAIL])
    report = rerun([folder / "xdrs.parquet"], chosen, tmp_path)
    table = report.winners_losers
    assert set(table["variant"]) == {UK_DE_RETAIL} and set(table["side"]) == {"loser"}
    assert table["customer"].tolist() == rise.sort_values(ascending=False).index.tolist()
    assert table["delta"].tolist() == pytest.approx((rise.sort_values(ascending=False)
                                                     / 1e6).tolist())


def test_a_portabilling_export_is_rerated_to_its_charged_amounts(operator, tmp_path):
    folder, xdrs = operator
    expected = outgoing(xdrs)
    export = portabilling_export(xdrs)
    export.to_csv(tmp_path / "export.csv", index=False)
    code = main(["rerate", str(tmp_path / "export.csv"), "--scenario", str(OPERATOR),
                 "--time-zone", "Europe/Berlin", "--i-service", "5", "--workers", "1",
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    got = deltas(tmp_path / "out", "base")
    assert sorted(got.index) == sorted(expected.index)
    assert got.loc[expected.index, "revenue_micro"].tolist() == expected["micro"].tolist()


def portabilling_export(xdrs: pd.DataFrame) -> pd.DataFrame:
    """The outgoing xDRs as a PortaBilling account export: its names, local times to
    the second, the amount as text; with a failed xDR and one of another service."""
    out = xdrs[xdrs["direction"] == "outgoing"]
    local = out["connect_time"].dt.tz_convert("Europe/Berlin").dt.strftime("%Y-%m-%d %H:%M:%S")
    export = pd.DataFrame({
        "i_xdr": out["i_xdr"], "account_id": out["account_id"], "CLI": out["CLI"],
        "CLD": out["CLD"], "connect_time": local, "charged_amount": out["charged_amount"],
        "charged_quantity": out["charged_quantity"], "h323_conf_id": out["call_id"],
        "i_service": "5", "description": "Messaging", "failed": "0", "bit_flags": "0",
        "disconnect_cause": "16"})
    extra = export.head(2).assign(i_xdr=[10**9, 10**9 + 1], failed=["1", "0"],
                                  i_service=["5", "3"])
    return pd.concat([export, extra], ignore_index=True)


@pytest.mark.parametrize("argv, message", [
    (["--column", "oops"], "--column 'oops': write THEIRS=OURS"),
    (["--variant", "x"], "--variant 'x': write NAME=FILE.yaml"),
    (["--workers", "0"], "must be 1 or more"),
])
def test_bad_flags_are_one_line_and_exit_2(operator, tmp_path, capsys, argv, message):
    folder, _ = operator
    code = main(["rerate", str(folder / "xdrs.csv"), "--scenario", str(OPERATOR),
                 "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_part_is_ordered_the_same_whatever_order_its_rows_came_in():
    at = pd.Timestamp("2026-01-05 09:00", tz="UTC")
    part = pd.DataFrame({"CLI": [2, 1, 1, 1, 1], "connect_time": [at, at, at, at, at],
                         "i_xdr": [-1, -1, -1, 7, -1], "CLD": [5, 6, 5, 5, 5],
                         "call_id": ["e", "d", "c", "b", "a"]})
    expected = ["a", "c", "d", "b", "e"]   # CLI, time, i_xdr, CLD, then call_id
    for seed in range(5):
        shuffled = part.sample(frac=1, random_state=seed)
        assert rerate.ordered(shuffled)["call_id"].tolist() == expected
    untied = part.assign(connect_time=[at + pd.Timedelta(seconds=s) for s in (0, 4, 3, 2, 1)])
    assert rerate.ordered(untied.sample(frac=1, random_state=1))["call_id"].tolist() == \
        ["a", "b", "c", "d", "e"]


def test_an_export_without_a_needed_column_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "x.csv").write_text("account_id,CLI,connect_time,charged_amount\n"
                                    "a,15550000001,2026-01-05 09:00:00,0.02\n")
    code = main(["rerate", str(tmp_path / "x.csv"), "--scenario", str(OPERATOR),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "x.csv: no column CLD in the header (map yours with --column THEIRS=CLD)" in err


def test_a_bad_value_read_by_a_worker_is_one_line_and_exit_2(tmp_path, capfd):
    """The value is read in a worker process: its error reaches the user once, as the
    command's line, not also as the worker's logged traceback."""
    (tmp_path / "x.csv").write_text("account_id,CLI,CLD,connect_time,charged_amount\n"
                                    "a,15550000001,15550000002,2026-01-05 09:00:00,abc\n")
    code = main(["rerate", str(tmp_path / "x.csv"), "--scenario", str(OPERATOR),
                 "--workers", "1", "--out", str(tmp_path / "out")])
    err = capfd.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "x.csv: charged_amount 'abc' is not a number" in err


def test_an_existing_scheduler_gives_the_same_answer(operator, tmp_path):
    from distributed import LocalCluster

    folder, xdrs = operator
    expected = outgoing(xdrs)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1",
                      protocol="tcp://", dashboard_address=None) as existing:
        rerate.run([folder / "xdrs.parquet"], rerate.variants(OPERATOR), tmp_path,
                   scheduler=existing.scheduler_address)
    got = deltas(tmp_path, "base").loc[expected.index]
    assert got["revenue_micro"].tolist() == expected["micro"].tolist()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-2 ** 62, 2 ** 62)), max_size=40),
       st.sampled_from([1, 10 ** 6, 10 ** 14]))
def test_one_key_sort_is_lexsort_by_sender_then_time(rows, scale):
    """`by_sender_and_time` (one int64 key when it fits, else lexsort) orders as
    ``np.lexsort((times, cli))`` does, ties kept in row order."""
    cli = np.array([155 + scale * k for k, _ in rows], dtype=np.int64)
    for times in (np.array([t for _, t in rows], dtype=np.int64),       # too wide: lexsort
                  np.array([t % 1000 for _, t in rows], dtype=np.int64)):  # one key, ties
        assert rerate.by_sender_and_time(cli, times).tolist() == \
            np.lexsort((times, cli)).tolist()


LOW_LIMIT = "environments[0].customers[3].credit_limit=0.5"   # DE Business, was 5000


def test_a_credit_limit_reached_across_parts_is_a_warning(operator, tmp_path):
    folder, _ = operator
    chosen = rerate.variants(OPERATOR, vary=[LOW_LIMIT])
    report = rerun([folder / "xdrs.parquet"], chosen, tmp_path / "many", partitions=4)
    assert len(report.warnings) == 1
    assert "'DE Business'" in report.warnings[0] and "--partitions 1" in report.warnings[0]
    assert LOW_LIMIT.split(".")[-1] in report.warnings[0]   # the variant's name
    assert (tmp_path / "many" / "warnings.txt").read_text().splitlines() == report.warnings
    exact = rerun([folder / "xdrs.parquet"], chosen, tmp_path / "one", partitions=1)
    assert exact.warnings == [] and not (tmp_path / "one" / "warnings.txt").exists()
    refused = exact.refusals.set_index(["variant", "reason"])["messages"]
    assert refused[(chosen[1].name, "balance")] > 0   # the ledger refuses past 0.5
    several = report.refusals.set_index(["variant", "reason"])["messages"]
    assert several[(chosen[1].name, "balance")] < refused[(chosen[1].name, "balance")]


def test_the_cli_prints_a_warning_and_still_writes_every_table(operator, tmp_path, capsys):
    folder, _ = operator
    code = main(["rerate", str(folder / "xdrs.parquet"), "--scenario", str(OPERATOR),
                 "--vary", LOW_LIMIT, "--workers", "1", "--partitions", "3", "--quiet",
                 "--out", str(tmp_path)])
    assert code == 0
    assert "warning: variant " in capsys.readouterr().err
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "warnings.txt").exists()


def charging_incoming(loaded: Scenario) -> Scenario:
    """The scenario with every product also charging its accounts' incoming messages
    at the retail tariff (handbook: free by default)."""
    env = loaded.environments[0]
    products = tuple(p.model_copy(update={"usage_charges": p.usage_charges + (
        UsageCharge(tariff="retail", direction="incoming"),)}) for p in env.products)
    return loaded.model_copy(update={"environments": (env.model_copy(
        update={"products": products}),)})


def test_charged_incoming_messages_are_revenue_before_and_after(tmp_path):
    """The recipient's incoming xDR is part of what a message earned: re-rated, the
    revenue is the simulator's (outgoing and incoming), and a variant that stops
    charging incoming messages loses exactly what each message's incoming xDR said."""
    loaded = charging_incoming(with_records(scenario.load(OPERATOR), until=60.0))
    result = sim.run(loaded)
    xdrs = result.xdrs
    xdrs.to_parquet(tmp_path / "xdrs.parquet", index=False)
    paid = xdrs[xdrs["direction"] == "incoming"].set_index("call_id")["charged_amount"]
    assert len(paid) > 500 and (paid > 0).all()
    chosen = [rerate.Variant.of("base", loaded), rerate.Variant.of("free incoming", with_records(
        scenario.load(OPERATOR), until=60.0))]
    report = rerun([tmp_path / "xdrs.parquet"], chosen, tmp_path / "out", partitions=3)
    summary = report.summary.set_index("variant")
    engine = float(Decimal(result.summary["totals"]["revenue"]["USD"]))
    assert summary.loc["base", "revenue"] == pytest.approx(engine, abs=1e-9)
    assert summary.loc["base", "revenue_before"] == pytest.approx(engine, abs=1e-9)
    assert summary.loc["base", "delta"] == 0
    base, free = deltas(tmp_path / "out", "base"), deltas(tmp_path / "out", "free incoming")
    expected = [micro(a) for a in paid.loc[base["call_id"]]]
    assert base["incoming_micro"].tolist() == expected
    assert (base["delta_micro"] == 0).all()
    assert free.loc[base.index, "delta_micro"].tolist() == [-m for m in expected]
    assert summary.loc["free incoming", "delta"] == pytest.approx(
        -float(paid.map(lambda a: Decimal(repr(a))).sum()), abs=1e-9)
    assert summary.loc["base", "incoming_revenue"] == pytest.approx(
        float(paid.map(lambda a: Decimal(repr(a))).sum()), abs=1e-9)
    assert summary.loc["free incoming", "incoming_revenue"] == 0
    losers = report.winners_losers
    assert losers[losers["variant"] == "free incoming"].empty   # no sender's bill changed
    assert len(report.warnings) == 1 and "'base' charges recipients" in report.warnings[0]
    one = rerun([tmp_path / "xdrs.parquet"], chosen, tmp_path / "one", partitions=1)
    assert one.warnings == []
    pd.testing.assert_frame_equal(one.summary, report.summary)   # no balance ran out


def test_kept_parts_are_read_back_until_an_export_changes(operator, tmp_path):
    """``--keep-parts``: the first run keeps the shuffled parts, a second reads them back
    (its files untouched) and gives the same answer; a changed export makes them again."""
    folder, xdrs = operator
    source, kept = tmp_path / "xdrs.parquet", tmp_path / "parts"
    xdrs.to_parquet(source, index=False)
    chosen = rerate.variants(OPERATOR, vary=[UK_DE_RETAIL])
    plain = rerun([source], chosen, tmp_path / "plain", partitions=3)
    first = rerate.run([source], chosen, tmp_path / "first", workers=1, partitions=3,
                       processes=False, keep_parts=kept)
    written = {p.name: p.stat().st_mtime_ns for p in kept.glob("*.parquet")}
    second = rerate.run([source], chosen, tmp_path / "second", workers=2, partitions=3,
                        processes=False, keep_parts=kept)
    assert (first.parts_reused, second.parts_reused) == (False, True)
    assert len(written) == 3
    assert {p.name: p.stat().st_mtime_ns for p in kept.glob("*.parquet")} == written
    for report in (first, second):
        pd.testing.assert_frame_equal(report.summary, plain.summary)
        pd.testing.assert_frame_equal(report.winners_losers, plain.winners_losers)
    pd.testing.assert_frame_equal(deltas(tmp_path / "second", "base").sort_index(),
                                  deltas(tmp_path / "plain", "base").sort_index())
    xdrs.iloc[: len(xdrs) // 2].to_parquet(source, index=False)   # an export changed
    third = rerate.run([source], chosen, tmp_path / "third", workers=1, partitions=3,
                       processes=False, keep_parts=kept)
    assert not third.parts_reused
    assert third.summary["messages"].iloc[0] < plain.summary["messages"].iloc[0]


def test_keep_parts_will_not_empty_a_folder_of_other_files(operator, tmp_path, capsys):
    folder, _ = operator
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code = main(["rerate", str(folder / "xdrs.parquet"), "--scenario", str(OPERATOR),
                 "--workers", "1", "--quiet", "--keep-parts", str(tmp_path / "mine"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--keep-parts" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "a file").write_text("keep me too")
    assert main(["rerate", str(folder / "xdrs.parquet"), "--scenario", str(OPERATOR),
                 "--workers", "1", "--quiet", "--keep-parts", str(tmp_path / "a file"),
                 "--out", str(tmp_path / "out")]) == 2
    assert (tmp_path / "a file").read_text() == "keep me too"


def test_tariffs_in_two_currencies_are_a_warning(operator, tmp_path):
    """Sums add amounts as numbers: a variant whose vendor tariff is in EUR and customer
    tariffs in USD is said to mix them."""
    folder, _ = operator
    euro = "environments[0].tariffs[0].currency=EUR"
    chosen = rerate.variants(OPERATOR, vary=[euro])
    assert chosen[0].scenario.environments[0].tariffs[0].currency == "USD"
    report = rerun([folder / "xdrs.parquet"], chosen, tmp_path)
    assert len(report.warnings) == 1, report.warnings
    assert report.warnings[0].startswith(f"variant {chosen[1].name!r} has tariffs in EUR, USD")
