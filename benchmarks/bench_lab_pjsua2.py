"""Messages/s from pjsua2 clients through Kamailio and the billing authorizer.

    .venv/bin/python benchmarks/bench_lab_pjsua2.py [--count 5000] [--in-flight 1 50]
                                                     [--billing real|fake]

A sender and a receiver, each in its own driver process (lab.driver), the sender sending
`count` MESSAGEs as fast as the window allows (`in_flight` transactions awaiting their
final answer). Every MESSAGE is digest-authenticated, authorized over HTTP, looked up and
relayed to the receiver's pjsua2, whose 200 is relayed back and accounted.

`measure(proxy, sender, receiver, ...)` is the part `benchmarks/bench_lab.py` can call
with its own stack (billing "real": the imsim billing service on the handbook scenario
with huge balances; "fake": tests/lab/fake_billing.py, a plain threaded http.server).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests" / "lab")]

from lab import driver  # noqa: E402
from lab.dbtext import Account  # noqa: E402
from lab.stack import Stack  # noqa: E402

DOMAIN = "sip.example.com"
SENDER: Account = ("15551230001", DOMAIN, "alice-secret")
RECEIVER: Account = ("15551230002", DOMAIN, "bob-secret")


def measure(proxy: tuple[str, int, str], sender: Account | list[Account],
            receiver: Account | list[Account], count: int, in_flight: int, out_dir: Path,
            prefix: str = "pj") -> dict[str, Any]:
    """Send `count` MESSAGEs sender -> receiver (or the i-th of several senders to the
    i-th receiver, in turn), `in_flight` outstanding per sender, each account in a
    driver process of its own; the figures."""
    senders = sender if isinstance(sender, list) else [sender]
    receivers = receiver if isinstance(receiver, list) else [receiver]
    script = [{"id": f"{prefix}-{in_flight}-{n}", "at": 0, "from": senders[n % len(senders)][0],
               "to": receivers[n % len(senders)][0], "body": "benchmark"}
              for n in range(count)]
    # the driver processes once ended, their start-up (pjsua2, registering) included
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    records = driver.run_driver([*senders, *receivers], script, proxy, speed=0,
                                out_path=out_dir / f"{prefix}-{in_flight}.jsonl",
                                timeout=60 + count / 200, max_in_flight=in_flight,
                                processes=2 * len(senders))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    driver_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rows = driver.messages(records)
    ok = [r for r in rows if r["code"] == 200]
    codes: dict[Any, int] = {}
    for row in rows:
        codes[row["code"]] = codes.get(row["code"], 0) + 1
    span = (max(r["answered_at"] for r in ok) - min(r["sent_at"] for r in ok)) if ok else 0
    latencies = sorted(r["answered_at"] - r["sent_at"] for r in ok)
    return {"in_flight": in_flight, "sent": len(rows), "answered_200": len(ok),
            "delivered": sum(r["delivered_at"] is not None for r in rows), "codes": codes,
            "driver_cpu_us": round(driver_cpu / max(len(ok), 1) * 1e6),
            "span_s": round(span, 3), "msg_per_s": round(len(ok) / span) if span else 0,
            "latency_ms_p50": round(1000 * statistics.median(latencies), 2) if ok else None,
            "latency_ms_p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2)
            if ok else None}


def start_stack(folder: Path, billing: str, children: int) -> tuple[Stack, Any]:
    """Kamailio on free ports with the chosen authorizer; the fake one is returned to close."""
    from fake_billing import FakeBilling, free_port

    accounts = [SENDER, RECEIVER]
    sip_port = free_port()
    if billing == "fake":
        fake = FakeBilling().start()
        stack = Stack(folder / "run", sip_port=sip_port, billing_port=fake.port,
                      children=children, debug=1, start_timeout=20)
        stack.up(accounts)
        return stack, fake
    from lab import provision

    scenario_path = rich_handbook(folder)
    billing_port = free_port()
    stack = Stack(folder / "run", sip_port=sip_port, billing_port=billing_port,
                  children=children, debug=1, start_timeout=20,
                  billing=provision.billing_command(scenario_path, billing_port,
                                                    folder / "run" / "xdr.sqlite"))
    stack.up(accounts)
    return stack, None


def rich_handbook(folder: Path) -> Path:
    """The handbook scenario with balances no benchmark can exhaust (bench_lab's)."""
    from lab_scenario import bench_scenario

    return bench_scenario(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="MESSAGEs per run")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--billing", choices=("real", "fake"), default="real")
    parser.add_argument("--children", type=int, default=4, help="Kamailio UDP workers")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imsim-bench-pjsua2-") as tmp:
        folder = Path(tmp)
        stack, fake = start_stack(folder, args.billing, args.children)
        try:
            proxy = ("127.0.0.1", stack.sip_port, "udp")
            measure(proxy, SENDER, RECEIVER, 200, 10, folder, prefix="warm")
            results = []
            for window in args.in_flight:
                started = time.monotonic()
                figures = measure(proxy, SENDER, RECEIVER, args.count, window, folder)
                figures["run_s"] = round(time.monotonic() - started, 2)
                results.append(figures)
        finally:
            stack.down()
            if fake is not None:
                fake.close()
    print(f"pjsua2 -> kamailio ({args.children} workers) -> {args.billing} billing "
          f"-> pjsua2, {args.count} MESSAGEs per run")
    for figures in results:
        print(f"  {figures['in_flight']:>3} in flight: {figures['msg_per_s']:>5} msg/s  "
              f"200: {figures['answered_200']}/{figures['sent']}  delivered: "
              f"{figures['delivered']}  latency p50 {figures['latency_ms_p50']} ms, "
              f"p99 {figures['latency_ms_p99']} ms  (codes {figures['codes']}, "
              f"process run {figures['run_s']} s)")
    return 0 if all(f["answered_200"] == f["sent"] for f in results) else 1


if __name__ == "__main__":
    sys.exit(main())
