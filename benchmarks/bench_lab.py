"""The curve of the live stack with billing: offered MESSAGE rate against answered,
latency, CPU per message per component, the knee, and the xDR reconciliation.

    .venv/bin/python benchmarks/bench_lab.py [--rates 500 1000 1500 2000 2500]
        [--seconds 4] [--repeats 2] [--children 8] [--pjsua2 3000] [--pairs 4]

Billing service alone (`--direct`): Kamailio-like keep-alive clients posting /authorize
and /account straight to it: msg/s and its CPU per message.

sipp part, one point per offered rate, each run `--repeats` times on one stack: a
registered sipp receiver, a sipp sender (digest auth: 407, then the resend) offering
`rate x seconds` MESSAGEs through Kamailio, which asks the imsim billing service to
authorize each one and accounts the final answers in batches. Per run: answered 2xx
(and their share of those offered), msg/s (Kamailio's accounting timestamps), p50/p99
response time (sipp: first MESSAGE to the 200, the challenge included), CPU us per
answered message of the billing service, Kamailio and both sipps, the machine's load
average, and the reconciliation of Kamailio's accounting (the ground truth) with the
xDR store: every 2xx MESSAGE has exactly one customer xDR (lost = 0), no xDR lacks one
(orphans = 0), none is doubled. The knee: the highest rate every run of which answered
>= 99.9 % with 2xx and lost, doubled or orphaned no xDR.

pjsua2 part: pjsua2 senders and receivers (lab.driver), one pair, then `--pairs` pairs,
each account in a driver process of its own, `--window` MESSAGEs in flight per sender
(benchmarks/bench_lab_pjsua2.py's `measure`), reconciled the same way.

The machine may be shared: every figure is printed beside the load average, and the
exit code is 0 only when no xDR was lost, doubled or orphaned and a knee was found.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from lab_scenario import HANDBOOK, bench_scenario, free_port  # noqa: E402,F401

from lab import accounting, load, provision, sip  # noqa: E402
from lab.dbtext import Account  # noqa: E402
from lab.stack import Stack  # noqa: E402

SENDER, RECEIVER = "15551230001", "15551230002"


def start_stack(folder: Path, scenario_path: Path, children: int,
                synchronous: str = "FULL") -> tuple[Stack, dict[str, Account]]:
    """The stack on free ports, and the subscribers by account id."""
    from imsim.model import scenario

    subscribers = provision.subscribers(scenario.load(scenario_path))
    sip_port, billing_port = free_port(), free_port()
    stack = Stack(folder / "run", sip_port=sip_port, billing_port=billing_port,
                  children=children, debug=1, start_timeout=20,
                  billing=provision.billing_command(scenario_path, billing_port,
                                                    folder / "run" / "xdr.sqlite",
                                                    extra=["--synchronous", synchronous]))
    stack.up(subscribers)
    return stack, {user: (user, domain, password) for user, domain, password in subscribers}


def sipp_point(stack: Stack, accounts: dict[str, Account], rate: float, calls: int,
               prefix: str, folder: Path) -> dict[str, Any]:
    """One point of the curve: `calls` MESSAGEs offered at `rate`/s by sipp to a sipp
    receiver; answered, latency, CPU per component, reconciliation."""
    receiver_port, status = free_port(), stack.status()
    receiver = subprocess.Popen(load.receiver_argv(receiver_port), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    bob = sip.UdpUser(*accounts[RECEIVER], proxy=("127.0.0.1", stack.sip_port))
    rtt = folder / prefix
    rtt.mkdir()
    before = {"billing": cpu_seconds(status.billing_pid or 0),
              "kamailio": cpu_seconds(status.kamailio_pid or 0)}
    try:
        contact = f"<sip:{RECEIVER}@127.0.0.1:{receiver_port}>"
        assert bob.request("REGISTER", f"sip:{bob.domain}", to=bob.aor,
                           extra={"Contact": contact, "Expires": "3600"}).code == 200
        sender = subprocess.Popen(load.sender_argv(("127.0.0.1", stack.sip_port),
                                                   accounts[SENDER], RECEIVER, calls=calls,
                                                   rate=rate, prefix=prefix, timeout_s=600,
                                                   rtt=True),
                                  cwd=rtt, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, code, usage = os.wait4(sender.pid, 0)
        sender.returncode = os.waitstatus_to_exitcode(code)
        time.sleep(0.5)  # the last batches of /accounts
        cpu = {"sipp": usage.ru_utime + usage.ru_stime + cpu_seconds(receiver.pid)}
    finally:
        receiver.terminate()
        receiver.wait(timeout=5)
        bob.close()
    cpu |= {name: cpu_seconds(pid or 0) - before[name] for name, pid in
            (("billing", status.billing_pid), ("kamailio", status.kamailio_pid))}
    times = sorted(load.response_times(rtt))
    found = reconcile(stack.acc_dir, stack.dir / "xdr.sqlite", f"{prefix}-")
    return found | {"rate": rate, "calls": calls, "sipp_exit": sender.returncode,
                    "p50_ms": 1000 * percentile(times, 0.5),
                    "p99_ms": 1000 * percentile(times, 0.99),
                    "cpu_us": {k: v / max(found["answered_2xx"], 1) * 1e6
                               for k, v in cpu.items()},
                    "load": os.getloadavg()[0]}


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else math.nan


def curve(stack: Stack, accounts: dict[str, Account], args: argparse.Namespace,
          folder: Path) -> list[dict[str, Any]]:
    """Every offered rate, `args.repeats` times, each point `args.seconds` long."""
    points = []
    for rate in args.rates:
        for run in range(args.repeats):
            calls = int(rate * args.seconds)
            points.append(sipp_point(stack, accounts, rate, calls, f"r{rate:g}x{run}", folder))
            print_point(points[-1], flush=True)
    return points


def knee(points: list[dict[str, Any]]) -> float | None:
    """The highest offered rate below which every run answered >= 99.9 % with 2xx and
    lost, duplicated or orphaned no xDR."""
    best = None
    for rate in sorted({p["rate"] for p in points}):
        if not all(good(p) for p in points if p["rate"] == rate):
            break
        best = rate
    return best


def good(point: dict[str, Any]) -> bool:
    return (point["answered_2xx"] >= 0.999 * point["calls"]
            and point["lost"] == point["orphans"] == point["duplicated"] == 0)


def reconcile(acc_dir: Path, db: Path, prefix: str = "") -> dict[str, Any]:
    """Kamailio's 2xx MESSAGE lines against the customer xDRs, by Call-ID (the messages
    whose msg_id starts with `prefix`)."""
    lines = [row for row in accounting.read(acc_dir)
             if row.get("method") == "MESSAGE" and row.get("sip_code", "").startswith("2")
             and row.get("msg_id", "").startswith(prefix)]
    answered = collections.Counter(row["call_id"] for row in lines)
    with closing(sqlite3.connect(db)) as conn:
        billed = collections.Counter(
            call_id for (call_id,) in conn.execute(
                "SELECT call_id FROM xdr WHERE direction = 'outgoing' AND msg_id LIKE ?",
                (prefix.replace("%", "") + "%",)))
    stamps = sorted(float(row["ts"]) for row in lines)
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    return {"answered_2xx": sum(answered.values()), "customer_xdrs": sum(billed.values()),
            "lost": len(set(answered) - set(billed)),
            "orphans": len(set(billed) - set(answered)),
            "duplicated": sum(n - 1 for n in billed.values() if n > 1),
            "acc_span_s": span,
            "msg_per_s": (len(stamps) - 1) / span if span else 0.0}


def _kamailio_like_client(port: int, worker: int, count: int) -> None:
    """One keep-alive connection posting /authorize then /account, as a Kamailio worker."""
    base = {"msg_id": "", "from_user": SENDER, "from_domain": "sip.example.com",
            "to_user": RECEIVER, "to_domain": "sip.example.com", "length": 5}
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        replies = sock.makefile("rb")
        for n in range(count):
            body = base | {"call_id": f"direct-{worker}-{n}", "msg_id": f"direct-{worker}-{n}"}
            for path, doc in (("/authorize", body), ("/account", body | {"code": 200,
                                                                        "reason": "OK"})):
                data = json.dumps(doc).encode()
                sock.sendall(f"POST {path} HTTP/1.1\r\nHost: billing\r\nContent-Type: "
                             f"application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                             .encode() + data)
                length = 0
                while (line := replies.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                replies.read(length)


def drive(port: int, messages: int, clients: int) -> float:
    """``messages`` authorizations and accountings sent to the billing service on
    ``port`` by ``clients`` keep-alive clients like Kamailio's workers, each its own
    process; the seconds they took."""
    import multiprocessing

    workers = [multiprocessing.Process(target=_kamailio_like_client,
                                       args=(port, w, messages // clients))
               for w in range(clients)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.monotonic() - started


def billing_only_part(folder: Path, scenario_path: Path, messages: int, clients: int,
                      synchronous: str) -> dict[str, Any]:
    """The billing service alone, driven over HTTP by `clients` processes like Kamailio's."""
    port = free_port()
    argv = provision.billing_command(scenario_path, port, folder / "direct.sqlite",
                                     extra=["--synchronous", synchronous])
    service = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        Stack(folder / "direct", billing_port=port, start_timeout=20)._wait_port(port)
        cpu_before = cpu_seconds(service.pid)
        per = messages // clients
        elapsed = drive(port, messages, clients)
        cpu = cpu_seconds(service.pid) - cpu_before
    finally:
        service.terminate()
        service.wait(timeout=10)
    with closing(sqlite3.connect(folder / "direct.sqlite")) as conn:
        stored = conn.execute("SELECT COUNT(DISTINCT call_id) FROM xdr "
                              "WHERE direction = 'outgoing'").fetchone()[0]
    return {"messages": per * clients, "msg_per_s": per * clients / elapsed,
            "stored": stored, "cpu_us": cpu / (per * clients) * 1e6, "clients": clients}


def cpu_seconds(group: int) -> float:
    """User + system CPU seconds of every live process in a process group."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pjsua2_part(stack: Stack, accounts: dict[str, Account], args: argparse.Namespace,
                folder: Path) -> list[dict[str, Any]]:
    """Messages/s from pjsua2 clients through the same stack and billing service: one
    sender and one receiver, then `args.pairs` pairs each in driver processes of their
    own; each run reconciled with Kamailio's accounting."""
    from bench_lab_pjsua2 import measure

    if not args.pjsua2:
        return []
    proxy = ("127.0.0.1", stack.sip_port, "udp")
    measure(proxy, accounts[SENDER], [accounts[RECEIVER]], 200, 10, folder, prefix="warm")
    results = []
    for pairs in sorted({1, args.pairs}):
        senders = [accounts[user] for user in pair_users(pairs)[0]]
        receivers = [accounts[user] for user in pair_users(pairs)[1]]
        for run in range(args.repeats):
            prefix = f"pj{pairs}x{run}"
            figures = measure(proxy, senders, receivers, args.pjsua2, args.window, folder,
                              prefix=prefix)
            time.sleep(0.5)  # the last batches of /accounts
            found = reconcile(stack.acc_dir, stack.dir / "xdr.sqlite", f"{prefix}-")
            results.append(figures | {k: found[k] for k in ("customer_xdrs", "lost",
                                                            "orphans", "duplicated")}
                           | {"pairs": pairs, "load": os.getloadavg()[0]})
            print_pjsua2(results[-1], flush=True)
    return results


def pair_users(pairs: int) -> tuple[list[str], list[str]]:
    """Sender and receiver account ids of `pairs` pairs (the first: the handbook's)."""
    extra = [f"1555124{n:04d}" for n in range(2 * (pairs - 1))]
    return [SENDER, *extra[0::2]], [RECEIVER, *extra[1::2]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[500, 1000, 1500, 2000,
                                                                    2500],
                        help="offered MESSAGE rates, msg/s (the curve's points)")
    parser.add_argument("--seconds", type=float, default=4.0, help="sending time per point")
    parser.add_argument("--repeats", type=int, default=2, help="runs per point")
    parser.add_argument("--children", type=int, default=8, help="Kamailio UDP workers")
    parser.add_argument("--direct", type=int, default=10000,
                        help="messages posted straight to the billing service (0: skip)")
    parser.add_argument("--pjsua2", type=int, default=3000,
                        help="MESSAGEs per pjsua2 run (0: skip)")
    parser.add_argument("--pairs", type=int, default=4,
                        help="pjsua2 sender/receiver pairs, a driver process each")
    parser.add_argument("--window", type=int, default=50, help="pjsua2 MESSAGEs in flight")
    parser.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL"),
                        help="SQLite durability of the xDR store (FULL: fsync per commit)")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, load average {load_average()} at the start; "
          "figures are as measured on this machine, each point run "
          f"{args.repeats} times")
    with tempfile.TemporaryDirectory(prefix="imsim-bench-lab-") as tmp:
        folder = Path(tmp)
        scenario_path = bench_scenario(folder, max(args.pairs - 1, 0) * 2)
        if args.direct:
            print_direct(args, billing_only_part(folder, scenario_path, args.direct,
                                                 args.children, args.synchronous))
        stack, accounts = start_stack(folder, scenario_path, args.children,
                                      args.synchronous)
        try:
            print(f"sipp -> kamailio ({args.children} workers) -> imsim billing service "
                  f"(SQLite synchronous={args.synchronous}), {args.seconds:g} s per point")
            points = curve(stack, accounts, args, folder)
            pjsua2 = pjsua2_part(stack, accounts, args, folder)
        finally:
            stack.down()
    top = knee(points)
    print(f"knee: {top:g} msg/s offered (the highest rate with >= 99.9 % answered 2xx and "
          "no lost, duplicated or orphaned xDR in every run)" if top else
          "knee: below the lowest rate offered")
    print(f"load average at the end: {load_average()}")
    clean = all(p["lost"] == p["orphans"] == p["duplicated"] == 0 for p in points + pjsua2)
    return 0 if clean and top is not None else 1


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def print_direct(args: argparse.Namespace, direct: dict[str, Any]) -> None:
    print(f"billing service alone, {direct['clients']} keep-alive clients like Kamailio's "
          f"workers (SQLite synchronous={args.synchronous}):")
    print(f"  {direct['messages']} messages (/authorize + /account): "
          f"{direct['msg_per_s']:.0f} msg/s, {direct['stored']} stored, "
          f"CPU {direct['cpu_us']:.0f} us per message, load {os.getloadavg()[0]:.2f}",
          flush=True)


def print_point(p: dict[str, Any], flush: bool = False) -> None:
    cpu = p["cpu_us"]
    print(f"  offered {p['rate']:>5g}/s: answered 2xx {p['answered_2xx']:>6}/{p['calls']:<6} "
          f"({100 * p['answered_2xx'] / p['calls']:5.1f} %) {p['msg_per_s']:>5.0f} msg/s  "
          f"p50 {p['p50_ms']:4.0f} ms p99 {p['p99_ms']:5.0f} ms  CPU us/msg: billing "
          f"{cpu['billing']:.0f}, kamailio {cpu['kamailio']:.0f}, sipp {cpu['sipp']:.0f}  "
          f"xDRs lost {p['lost']} dup {p['duplicated']} orphans {p['orphans']}  "
          f"load {p['load']:.2f}", flush=flush)


def print_pjsua2(p: dict[str, Any], flush: bool = False) -> None:
    print(f"  pjsua2, {p['pairs']} pair(s), {p['in_flight']} in flight each: "
          f"{p['msg_per_s']:>5} msg/s  200: {p['answered_200']}/{p['sent']}  delivered: "
          f"{p['delivered']}  latency p50 {p['latency_ms_p50']} ms, p99 "
          f"{p['latency_ms_p99']} ms  driver CPU {p['driver_cpu_us']} us/msg (start-up "
          f"included)  xDRs {p['customer_xdrs']} lost {p['lost']} dup "
          f"{p['duplicated']} orphans {p['orphans']}  load {p['load']:.2f}", flush=flush)


if __name__ == "__main__":
    sys.exit(main())
