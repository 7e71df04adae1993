"""`imsim lab run`: play a scenario live, collect what was billed, compare with the model.

    outcome = run(Path("scenarios/handbook.yaml"), targets.load(), speed=50, out=folder)
    outcome.comparison.ok

Local target (the embedded stack): the stack is started when it is not running; one
already serving the same scenario file (same content) is reported and reused; one
serving another scenario gets the scenario's subscribers and a billing service restarted
on it (fresh xDR store). Just before the script starts, the billing service's clock is
set to the driver's start and speed (`POST /lab/clock`), so journal changes and their
propagation happen at the same scenario seconds as in the model, and balances start as
provisioned. This run's xDRs are the ones stored after that moment.

Remote target: the clients play against its proxy (domain and passwords from the
target); xDRs come from PortaBilling's JSON API (each sending account's, in the run's
window) or a CSV export, and are matched with the test messages by Call-ID, else by
CLI, CLD and time (`lab.collect`, `lab.matching`); xDRs that bill no test message are
orphans and fail the run; fields the source does not hold are named, not compared.
Kamailio accounting only when the target names its files.

Everything lands in ``out``: records.jsonl (and the per-process records, plans and logs),
lab_messages.csv, lab_xdrs.csv, accounting.jsonl, model/ (the simulator's frames),
compare.csv, presence.csv (what each watcher was told, `imsim.compare_presence`), report.md,
report.html, run.json. A run that fails or is interrupted still
merges the records its driver processes wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from imsim import compare, compare_presence, sim
from imsim.errors import UsageError
from imsim.model import scenario as scenarios
from imsim.model.scenario import Scenario
from imsim.results import message_frame, xdr_frame
from imsim.rules.message import Xdr
from imsim.training import lab_report
from lab import accounting, collect, driver, gap, matching, provision
from lab import plan as plans
from lab.stack import Stack, StackError, check_free, set_aside
from lab.targets import Remote, Target
from lab.xdr_client import XdrClient, XdrSourceError

XDR_DB = "xdr.sqlite"
INFO = "lab.json"
SETTLE_SECONDS = 3.0  # for the last /account answers to be stored
Echo = Callable[[str], None]


@dataclass
class Outcome:
    comparison: compare.Comparison
    out: Path
    records: int


@dataclass
class Live:
    """Where this run plays and how it collects (filled by `local` or `remote`)."""

    proxy: tuple[str, int, str]
    client: XdrClient | None = None  # the embedded stack's billing service
    acc_dir: Path | None = None
    source: collect.Source | None = None  # a remote target's xDRs
    align_clock: bool = False
    after_xdr: int = 0  # this run's xDRs have a larger i_xdr
    start: float | None = None  # wall time of scenario second 0
    end: float | None = None  # wall time of the last final answer


def run(scenario_path: Path, target: Target, speed: float = 50.0, out: Path | None = None,
        seed: int | None = None, processes: int = 1, compare_only: bool = False,
        echo: Echo = print) -> Outcome:
    """The whole loop; raises UsageError for bad input or a stack that cannot start."""
    if not 0 < speed <= 1e6:
        raise UsageError(f"--speed {speed}: must be > 0")
    loaded = scenarios.load(scenario_path)
    folder = Path(out) if out is not None else default_out(loaded)
    if compare_only and not (folder / "records.jsonl").is_file():
        raise UsageError(f"--out {folder}: no records.jsonl of an earlier run (give the "
                         "folder that run wrote)")
    folder.mkdir(parents=True, exist_ok=True)
    seed = loaded.sim.seed if seed is None else seed  # one seed rule: `imsim run`'s
    model = sim.run(loaded, seed=seed)
    model.write(folder / "model")
    live = local(scenario_path, loaded, target, echo) if target.local else remote(target)
    plan = retarget(plans.from_scenario(loaded, live.proxy, speed), target)
    if compare_only:
        records = driver.read_records([folder / "records.jsonl"])
        live.start = next((r["detail"] for r in records if r.get("event") == "start"), None)
    else:
        echo(f"playing {len(plan.messages)} messages of {loaded.name} at speed {speed:g} "
             f"against {live.proxy[0]}:{live.proxy[1]}/{live.proxy[2]}")
        records = play(plan, live, folder, processes, speed)
    live.end = max((r.get("answered_at") or 0 for r in records), default=None)
    unbilled = set(model.messages.loc[model.messages["code"] // 100 == 2, "msg_id"]) \
        - set(model.xdrs["msg_id"])
    found = collect_xdrs(live, plan, records, unbilled, billed_numbers(model.xdrs))
    lab_xdrs = xdr_frame(found.xdrs, money="decimal")
    acc = collect_accounting(live, plan)
    result = compare.compare(model.messages, model.xdrs, lab_messages(records, loaded),
                             lab_xdrs, acc, meta(scenario_path, loaded, target, speed, seed)
                             | matched(found, live), found.uncompared, found.orphans)
    result.gap = outage_gap(records, model.messages)
    if loaded.sim.records.presence:   # the model kept what watchers were told
        result.presence = compare_presence.compare(model.presence, records, loaded)
    save(folder, result, lab_xdrs, acc, records, loaded)
    echo(compare.table(result))
    echo(f"report: {folder / 'report.html'}")
    return Outcome(result, folder, len(records))


def outage_gap(records: list[dict[str, Any]], model_messages: pd.DataFrame
               ) -> dict[str, Any] | None:
    """The messages lost to an outage of the proxy or the billing service (`lab.gap`)."""
    codes = dict(zip(model_messages["msg_id"].astype(str), model_messages["code"].astype(int),
                     strict=True))
    found = gap.find(records, codes)
    if found is not None:
        found["line"] = gap.describe(found)
    return found


def default_out(loaded: Scenario) -> Path:
    name = loaded.name.replace("/", "-")
    return Path("runs") / "lab" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


# -- the local stack -------------------------------------------------------------------

def local(scenario_path: Path, loaded: Scenario, target: Target, echo: Echo) -> Live:
    spec = target.spec
    stack = Stack(sip_port=spec.sip_port, billing_port=spec.billing_port)  # type: ignore[union-attr]
    status, wanted = stack.status(), fingerprint(scenario_path)
    if status.running and status.billing_pid and serving(stack.dir) == wanted:
        echo(f"reusing: {status.describe()}, scenario {loaded.name}")
    elif status.running:
        stack.sip_port, stack.billing_port = status.sip_port, status.billing_port
        echo(f"re-provisioning the running stack for {loaded.name}: {status.describe()}")
        stack.provision(provision.subscribers(loaded), provision.buddies(loaded))
        set_aside(stack.dir / XDR_DB)
        _start(stack, lambda: stack.restart_billing(_command(stack, scenario_path)))
    else:
        check_free(stack.sip_port, stack.billing_port)
        stack.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        set_aside(stack.dir / XDR_DB)
        stack.billing = _command(stack, scenario_path)
        status = _start(stack, lambda: stack.up(provision.subscribers(loaded),
                                                provision.buddies(loaded)))
        echo(f"started: {status.describe()}")
    record_serving(stack.dir, scenario_path, loaded, wanted)
    status = stack.status()
    return Live(("127.0.0.1", status.sip_port, spec.transport),  # type: ignore[union-attr]
                api_client(stack.dir, status.billing_port), stack.acc_dir, align_clock=True)


def _command(stack: Stack, scenario_path: Path) -> list[str]:
    return provision.billing_command(scenario_path, stack.billing_port, stack.dir / XDR_DB)


def _start(stack: Stack, start: Callable[[], Any]) -> Any:
    try:
        return start()
    except (StackError, ValueError) as exc:
        raise UsageError(f"{str(exc).splitlines()[0]} (logs in {stack.dir})") from None


def fingerprint(scenario_path: Path) -> str:
    path = Path(scenario_path).resolve()
    return f"{path}#{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def serving(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / INFO).read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_serving(folder: Path, scenario_path: Path, loaded: Scenario, mark: str) -> None:
    from lab import dbtext

    info = {"scenario": str(Path(scenario_path).resolve()), "name": loaded.name,
            "fingerprint": mark}
    dbtext.write_private(folder / INFO, json.dumps(info) + "\n")


def api_client(folder: Path, port: int) -> XdrClient:
    secret = json.loads((folder / "billing_api.secret").read_text())
    return XdrClient(f"http://127.0.0.1:{port}", secret["login"], secret["password"])


# -- a remote target ------------------------------------------------------------------

def remote(target: Target) -> Live:
    spec = target.spec
    assert isinstance(spec, Remote)
    xdrs = spec.xdrs
    source = collect.Source(time_zone=xdrs.time_zone, columns=dict(xdrs.columns),
                            tolerance=xdrs.tolerance, settle=xdrs.settle,
                            numbers=[(r.pattern, r.replace) for r in xdrs.numbers])
    if xdrs.api is not None:
        api = xdrs.api
        try:
            source.client = XdrClient(api.url, api.login, api.password(target.base),
                                      token=api.token(), verify=api.tls(target.base),
                                      time_zone=xdrs.time_zone,
                                      service_type=xdrs.service_type)
            source.client.login()  # wrong credentials or TLS: before anything is played
        except XdrSourceError as exc:
            raise UsageError(f"xDR source: {exc}") from None
    else:
        source.csv = target.path(xdrs.csv)  # type: ignore[arg-type]
    return Live(spec.proxy.address(), source=source,
                acc_dir=target.path(spec.accounting) if spec.accounting else None)


def retarget(plan: plans.DriverPlan, target: Target) -> plans.DriverPlan:
    """The plan with the target's domain and passwords (a remote deployment's own)."""
    spec = target.spec
    if not isinstance(spec, Remote):
        return plan
    passwords = target.passwords()
    identities = tuple(dataclasses.replace(
        i, domain=spec.domain or i.domain,
        password=passwords.get(i.user, i.password) if i.register else i.password)
        for i in plan.identities)
    messages = tuple(dataclasses.replace(
        m, domain=spec.domain or m.domain,
        password=passwords.get(m.sender, m.password) if _own(plan, m) else m.password,
        to_uri=plans.target_uri(m.to, spec.domain or m.domain)) for m in plan.messages)
    return dataclasses.replace(plan, identities=identities, messages=messages)


def _own(plan: plans.DriverPlan, message: plans.PlannedMessage) -> bool:
    """Sent with the account's own password (not a scripted wrong one)."""
    return any(i.key == message.identity_key and i.register for i in plan.identities)


# -- playing and collecting ------------------------------------------------------------

def play(plan: plans.DriverPlan, live: Live, folder: Path, processes: int,
         speed: float) -> list[dict[str, Any]]:
    def on_start(start: float) -> None:
        live.start = start
        if live.align_clock and live.client is not None:
            answer = live.client.call("/lab/clock", {"epoch": start, "speed": speed})
            live.after_xdr = int(answer.get("last_xdr", 0))

    try:
        return driver.play(plan, plan.proxy, speed, folder, processes, on_start=on_start)
    except BaseException:
        kept = driver.read_records(sorted(folder.glob("records-*.jsonl")))
        with open(folder / "records.jsonl", "w", encoding="utf-8") as merged:
            merged.writelines(json.dumps(r) + "\n" for r in kept)
        raise


def collect_xdrs(live: Live, plan: plans.DriverPlan, records: list[dict[str, Any]],
                 unbilled: set[str] = frozenset(),  # type: ignore[assignment]
                 numbers: dict[str, tuple[str, str]] | None = None) -> collect.Collected:
    """This run's billed xDRs; ``unbilled``: 2xx messages no xDR is awaited for;
    ``numbers``: msg_id -> (CLI, CLD) as the model bills it (for matching by time)."""
    awaited = _answered(records, unbilled)
    try:
        sent = collect.sent_messages(driver.messages(records), numbers or {})
        if live.source is None:  # the embedded stack: its xDRs carry imsim's msg_id
            found = collect.gather(lambda: _stored(live), sent, awaited,
                                   settle=SETTLE_SECONDS, poll=0.1)
            return dataclasses.replace(found, uncompared=())
        skew = matching.measured_skew(records)
        return collect.remote_xdrs(live.source, sent, senders(plan), awaited, skew)
    except XdrSourceError as exc:
        raise UsageError(f"xDR source: {exc}") from None


def senders(plan: plans.DriverPlan) -> set[str]:
    """The scenario's accounts that send in the script (whose xDR lists are read)."""
    own = {i.user for i in plan.identities if i.register}
    return {m.sender for m in plan.messages if m.sender in own}


def billed_numbers(model_xdrs: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """msg_id -> (CLI, CLD) of the model's customer xDRs: the numbers after the
    handbook's translation, as a deployment's xDRs write them."""
    customer = model_xdrs[model_xdrs["direction"] == compare.CUSTOMER]
    return {str(m): (str(cli), str(cld)) for m, cli, cld in
            zip(customer["msg_id"], customer["CLI"], customer["CLD"], strict=True)}


def matched(found: collect.Collected, live: Live) -> dict[str, Any]:
    """The report's lines on how a remote run's xDRs were paired with its messages."""
    if live.source is None:
        return {}
    ways = ", ".join(f"{n} by {how}" for how, n in found.by.items() if n)
    return {"xDRs matched": f"{len(found.xdrs)} ({ways or 'none'}); orphans "
                            f"{len(found.orphans)}",
            "remote clock skew": f"{found.skew:+.3f} s (from the proxy's Date headers)"}


def _answered(records: list[dict[str, Any]], unbilled: set[str]) -> int:
    return sum(1 for r in records if r.get("kind") == "message" and r["msg_id"] not in unbilled
               and isinstance(r.get("code"), int) and 200 <= r["code"] < 300)


def _stored(live: Live) -> list[Xdr]:
    """The embedded service's xDRs stored since this run began (every account's)."""
    assert live.client is not None
    return [x for x in live.client.xdrs() if x.i_xdr > live.after_xdr]


def collect_accounting(live: Live, plan: plans.DriverPlan) -> list[dict[str, str]] | None:
    """Kamailio's accounting lines of this run (written while it played)."""
    if live.acc_dir is None or live.start is None:
        return None
    ids, end = {m.msg_id for m in plan.messages}, (live.end or time.time()) + 0.5
    return [row for row in accounting.read(live.acc_dir) if row.get("msg_id") in ids
            and live.start - 0.2 <= float(row.get("ts") or 0) <= end]


def lab_messages(records: list[dict[str, Any]], loaded: Scenario) -> pd.DataFrame:
    """The driver's rows in the shared message schema. Times are scenario seconds; a
    delivery is placed its real latency after the send (network time is not scaled)."""
    envs = {env.domain: env.name for env in loaded.environments}
    rows = []
    for row in driver.messages(records):
        if row["sent_at"] is None:
            continue
        delivered = row["delivered_at"]
        code = row["code"] if isinstance(row["code"], int) else 0
        rows.append((row["msg_id"], envs.get(row["domain"], ""), row["from"], row["to"],
                     row["sent_t"], code, row["reason"] or "", math.nan,
                     row["sent_t"] + delivered - row["sent_at"] if delivered else math.nan,
                     row["answered_at"] - row["sent_at"] if row["answered_at"] else math.nan,
                     ""))
    return message_frame(rows)


def meta(scenario_path: Path, loaded: Scenario, target: Target, speed: float,
         seed: int) -> dict[str, Any]:
    kind = "local stack" if target.local else f"remote ({target.source})"
    return {"scenario": f"{loaded.name} ({scenario_path})", "target": kind,
            "speed": f"{speed:g} scenario s per s", "model seed": seed,
            "played": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def save(folder: Path, result: compare.Comparison, lab_xdrs: pd.DataFrame,
         acc: list[dict[str, str]] | None, records: list[dict[str, Any]],
         loaded: Scenario) -> None:
    lab_messages(records, loaded).to_csv(folder / "lab_messages.csv", index=False)
    lab_xdrs.to_csv(folder / "lab_xdrs.csv", index=False)
    if acc is not None:
        with open(folder / "accounting.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in acc)
    lab_report.write_reports(result, folder)
    summary = {"ok": result.ok, "summary": result.summary,
               "reconciliation": result.reconciliation, "gap": result.gap, "meta": result.meta,
               "uncompared": result.uncompared, "orphans": result.orphans}
    (folder / "run.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
