"""Messages/s through the live stack with billing, and the xDR reconciliation.

    .venv/bin/python benchmarks/bench_lab.py [--calls 20000] [--rate 2500]

sipp part: a registered sipp receiver, a sipp sender (digest auth, 407 then resend)
pushing MESSAGEs through Kamailio, which asks the imsim billing service to authorize
and account each one. Figures: messages/s answered 200, and the reconciliation of
Kamailio's accounting (the ground truth) with the xDR store: every 2xx MESSAGE has
exactly one customer xDR (lost = 0), no xDR lacks one (orphans = 0), none is doubled.

pjsua2 part (`pjsua2_part`, run first): a pjsua2 sender and receiver (lab.driver, one
process each) through the same stack and the same billing service, `--pjsua2` MESSAGEs
per window size (1 and 50 in flight; benchmarks/bench_lab_pjsua2.py's `measure`),
reconciled the same way.
"""

from __future__ import annotations

import argparse
import collections
import json
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

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab import accounting, load, provision, sip  # noqa: E402
from lab.dbtext import Account  # noqa: E402
from lab.stack import Stack  # noqa: E402

HANDBOOK = ROOT / "scenarios" / "handbook.yaml"
SENDER, RECEIVER = "15551230001", "15551230002"


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def bench_scenario(folder: Path) -> Path:
    """The handbook scenario with balances large enough for any run."""
    yaml = YAML(typ="safe")
    document = yaml.load(HANDBOOK.read_text())
    for env in document["environments"]:
        for customer in env["customers"]:
            for account in customer["accounts"]:
                account["balance"] = 1_000_000_000
    path = folder / "bench.yaml"
    with path.open("w") as handle:
        yaml.dump(document, handle)
    return path


def start_stack(folder: Path, scenario_path: Path, children: int,
                synchronous: str = "FULL") -> tuple[Stack, dict[str, Account]]:
    """The stack on free ports, and the subscribers by account id."""
    from imsim import scenario

    subscribers = provision.subscribers(scenario.load(scenario_path))
    sip_port, billing_port = free_port(), free_port()
    stack = Stack(folder / "run", sip_port=sip_port, billing_port=billing_port,
                  children=children, debug=1, start_timeout=20,
                  billing=provision.billing_command(scenario_path, billing_port,
                                                    folder / "run" / "xdr.sqlite",
                                                    extra=["--synchronous", synchronous]))
    stack.up(subscribers)
    return stack, {user: (user, domain, password) for user, domain, password in subscribers}


def sipp_part(stack: Stack, accounts: dict[str, Account], calls: int, rate: float,
              trace: Path) -> dict[str, Any]:
    """Play `calls` MESSAGEs from sipp at `rate`/s; the figures of the run."""
    receiver_port = free_port()
    receiver = subprocess.Popen(load.receiver_argv(receiver_port), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    bob = sip.UdpUser(*accounts[RECEIVER], proxy=("127.0.0.1", stack.sip_port))
    try:
        contact = f"<sip:{RECEIVER}@127.0.0.1:{receiver_port}>"
        assert bob.request("REGISTER", f"sip:{bob.domain}", to=bob.aor,
                           extra={"Contact": contact, "Expires": "3600"}).code == 200
        sender = accounts[SENDER]
        started = time.monotonic()
        done = subprocess.run(load.sender_argv(("127.0.0.1", stack.sip_port), sender, RECEIVER,
                                               calls=calls, rate=rate, prefix="bench",
                                               trace_dir=trace, timeout_s=600),
                              capture_output=True, text=True, timeout=900)
        elapsed = time.monotonic() - started
    finally:
        receiver.terminate()
        receiver.wait(timeout=5)
        bob.close()
    return {"sipp_exit": done.returncode, "wall_s": elapsed}


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


def billing_only_part(folder: Path, scenario_path: Path, messages: int, clients: int,
                      synchronous: str) -> dict[str, Any]:
    """The billing service alone, driven over HTTP by `clients` processes like Kamailio's."""
    import multiprocessing

    port = free_port()
    argv = provision.billing_command(scenario_path, port, folder / "direct.sqlite",
                                     extra=["--synchronous", synchronous])
    service = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        Stack(folder / "direct", billing_port=port, start_timeout=20)._wait_port(port)
        cpu_before = cpu_seconds(service.pid)
        per = messages // clients
        workers = [multiprocessing.Process(target=_kamailio_like_client, args=(port, w, per))
                   for w in range(clients)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - started
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
                folder: Path) -> list[dict[str, Any]] | None:
    """Messages/s from pjsua2 clients through the same stack and billing service, per
    window size, each reconciled with Kamailio's accounting."""
    if not args.pjsua2:
        return None
    from bench_lab_pjsua2 import measure

    proxy = ("127.0.0.1", stack.sip_port, "udp")
    sender, receiver = accounts[SENDER], accounts[RECEIVER]
    measure(proxy, sender, receiver, 200, 10, folder, prefix="warm")
    results = []
    for window in (1, 50):
        figures = measure(proxy, sender, receiver, args.pjsua2, window, folder, prefix="pj")
        time.sleep(0.5)  # the last /account calls
        found = reconcile(stack.acc_dir, stack.dir / "xdr.sqlite", f"pj-{window}-")
        results.append(figures | {k: found[k] for k in ("customer_xdrs", "lost", "orphans",
                                                        "duplicated")})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="MESSAGEs sipp sends")
    parser.add_argument("--rate", type=float, default=2500, help="sipp's target rate, msg/s")
    parser.add_argument("--children", type=int, default=4, help="Kamailio UDP workers")
    parser.add_argument("--direct", type=int, default=20000,
                        help="messages posted straight to the billing service (0: skip)")
    parser.add_argument("--pjsua2", type=int, default=5000,
                        help="MESSAGEs per pjsua2 window size (0: skip)")
    parser.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL"),
                        help="SQLite durability of the xDR store (FULL: fsync per commit)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imsim-bench-lab-") as tmp:
        folder = Path(tmp)
        scenario_path = bench_scenario(folder)
        direct = None
        if args.direct:
            direct = billing_only_part(folder, scenario_path, args.direct, args.children,
                                       args.synchronous)
        stack, accounts = start_stack(folder, scenario_path, args.children,
                                      args.synchronous)
        try:
            status = stack.status()
            pjsua2 = pjsua2_part(stack, accounts, args, folder)
            run = sipp_part(stack, accounts, args.calls, args.rate, folder)
            time.sleep(1.0)  # the last /account calls
            run["cpu_billing_s"] = cpu_seconds(status.billing_pid or 0)
            run["cpu_kamailio_s"] = cpu_seconds(status.kamailio_pid or 0)
            figures = run | reconcile(stack.acc_dir, stack.dir / "xdr.sqlite", "bench")
        finally:
            stack.down()
    print_figures(args, figures, pjsua2, direct)
    clean = figures["lost"] == figures["orphans"] == figures["duplicated"] == 0
    clean = clean and (direct is None or direct["stored"] == direct["messages"])
    clean = clean and all(p["lost"] == p["orphans"] == p["duplicated"] == 0
                          and p["answered_200"] == p["sent"] for p in pjsua2 or [])
    return 0 if clean and figures["answered_2xx"] == args.calls else 1


def print_figures(args: argparse.Namespace, figures: dict[str, Any],
                  pjsua2: list[dict[str, Any]] | None, direct: dict[str, Any] | None) -> None:
    if direct is not None:
        print(f"billing service alone, {direct['clients']} keep-alive clients like Kamailio's "
              f"workers (SQLite synchronous={args.synchronous}):")
        print(f"  {direct['messages']} messages (/authorize + /account): "
              f"{direct['msg_per_s']:.0f} msg/s, {direct['stored']} stored, "
              f"CPU {direct['cpu_us']:.0f} us per message")
    print(f"sipp -> kamailio ({args.children} workers) -> imsim billing service "
          f"(SQLite synchronous={args.synchronous})")
    print(f"  sent {args.calls} MESSAGEs at a target of {args.rate:g}/s, "
          f"sipp exit {figures['sipp_exit']}, wall {figures['wall_s']:.2f} s")
    print(f"  answered 2xx: {figures['answered_2xx']}  "
          f"throughput: {figures['msg_per_s']:.0f} msg/s (Kamailio acc timestamps)")
    print(f"  customer xDRs: {figures['customer_xdrs']}  lost: {figures['lost']}  "
          f"orphans: {figures['orphans']}  duplicated: {figures['duplicated']}")
    per = max(figures["answered_2xx"], 1)
    print(f"  CPU per message: billing service {figures['cpu_billing_s'] / per * 1e6:.0f} us, "
          f"kamailio {figures['cpu_kamailio_s'] / per * 1e6:.0f} us "
          f"(on {os.cpu_count()} CPUs)")
    if pjsua2 is None:
        return
    print(f"pjsua2 -> kamailio -> imsim billing service -> pjsua2, {args.pjsua2} MESSAGEs "
          "per window")
    for p in pjsua2:
        print(f"  {p['in_flight']:>3} in flight: {p['msg_per_s']:>5} msg/s  200: "
              f"{p['answered_200']}/{p['sent']}  delivered: {p['delivered']}  latency p50 "
              f"{p['latency_ms_p50']} ms, p99 {p['latency_ms_p99']} ms  customer xDRs: "
              f"{p['customer_xdrs']}  lost: {p['lost']}  orphans: {p['orphans']}  "
              f"duplicated: {p['duplicated']}")


if __name__ == "__main__":
    sys.exit(main())
