"""Soak: sipp and pjsua2 clients together through Kamailio and the real billing service,
then Kamailio's accounting reconciled with the xDR store: nothing lost, nothing doubled.

    .venv/bin/python benchmarks/soak_lab.py [--sipp 100000] [--rate 1000] [--pjsua2 1000]
                                            [--in-flight 10] [--max-seconds 600]

sipp (lab/sipp/uac_message.xml: 407 challenge, digest resend, 200) sends `--sipp`
MESSAGEs at `--rate`/s to a registered sipp receiver while a pjsua2 sender (lab.driver)
sends `--pjsua2` MESSAGEs to a pjsua2 receiver, `--in-flight` at a time. Every MESSAGE
is authorized and accounted by the imsim billing service (SQLite, synchronous=FULL).

Figures: sent, answered 2xx (Kamailio's accounting, the ground truth), customer xDRs,
lost (a 2xx without its xDR), duplicated (an xDR twice), orphans (an xDR without a 2xx),
msg/s and duration. Bounded: sipp stops at `--max-seconds` (-timeout), the pjsua2 driver
at its plan timeout, and the wait for the last accountings has a deadline. Exit 0 when
every message was answered 2xx and billed exactly once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests" / "lab")]

from bench_lab import (  # noqa: E402
    RECEIVER,
    SENDER,
    bench_scenario,
    cpu_seconds,
    free_port,
    reconcile,
    start_stack,
)
from bench_lab_pjsua2 import measure  # noqa: E402

from lab import load, sip  # noqa: E402
from lab.dbtext import Account  # noqa: E402
from lab.stack import Stack  # noqa: E402

PJSUA2_RECEIVER = "15551230003"  # sipp's receiver holds 15551230002's registration
SETTLE_SECONDS = 10.0  # Kamailio resends a failed /account every second


def play_sipp(stack: Stack, accounts: dict[str, Account], calls: int, rate: float,
              max_seconds: float, trace: Path) -> dict[str, Any]:
    """`calls` MESSAGEs from sipp at `rate`/s to a registered sipp receiver."""
    receiver_port = free_port()
    receiver = subprocess.Popen(load.receiver_argv(receiver_port), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    bob = sip.UdpUser(*accounts[RECEIVER], proxy=("127.0.0.1", stack.sip_port))
    try:
        contact = f"<sip:{RECEIVER}@127.0.0.1:{receiver_port}>"
        if bob.request("REGISTER", f"sip:{bob.domain}", to=bob.aor,
                       extra={"Contact": contact, "Expires": "3600"}).code != 200:
            raise RuntimeError("the sipp receiver could not register")
        # sipp waits as long as Kamailio does for the receiver (fr_timer 10 s), so a
        # late answer under load is a late 200, not a call sipp gave up on
        argv = load.sender_argv(("127.0.0.1", stack.sip_port), accounts[SENDER], RECEIVER,
                                calls=calls, rate=rate, prefix="soak", trace_dir=trace,
                                timeout_s=int(max_seconds), recv_timeout_ms=11_000)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=max_seconds + 30)
        drain(stack.acc_dir)
        return {"sipp_exit": done.returncode}
    finally:
        receiver.terminate()
        receiver.wait(timeout=5)
        bob.close()


def drain(acc_dir: Path, quiet: float = 1.0, limit: float = 11.0) -> None:
    """Keep the receiver answering until Kamailio's accounting has been still for `quiet`
    seconds (its last transactions ended), `limit` seconds at most."""
    deadline, last, still_since = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline:
        size = sum(p.stat().st_size for p in acc_dir.glob("acc_*.log"))
        if size != last:
            last, still_since = size, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return
        time.sleep(0.1)


def play_pjsua2(stack: Stack, accounts: dict[str, Account], count: int, in_flight: int,
                folder: Path, into: dict[str, Any]) -> None:
    if count:
        proxy = ("127.0.0.1", stack.sip_port, "udp")
        into.update(measure(proxy, accounts[SENDER], accounts[PJSUA2_RECEIVER], count,
                            in_flight, folder, prefix="pjsoak"))


def settled(stack: Stack, prefix: str) -> dict[str, Any]:
    """The reconciliation once no 2xx waits for its xDR (or the deadline passed)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while (found := reconcile(stack.acc_dir, stack.dir / "xdr.sqlite", prefix))["lost"] \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def soak(sipp_count: int = 100_000, rate: float = 1000, pjsua2_count: int = 1000,
         in_flight: int = 10, max_seconds: float = 600, children: int = 4,
         folder: Path | None = None) -> dict[str, Any]:
    """Run the soak in `folder` (a temporary one by default); the figures."""
    with tempfile.TemporaryDirectory(prefix="imsim-soak-") as tmp:
        work = Path(folder or tmp)
        stack, accounts = start_stack(work, bench_scenario(work), children)
        try:
            pjsua2: dict[str, Any] = {}
            started = time.monotonic()
            side = threading.Thread(target=play_pjsua2, daemon=True,
                                    args=(stack, accounts, pjsua2_count, in_flight, work,
                                          pjsua2))
            side.start()
            figures = play_sipp(stack, accounts, sipp_count, rate, max_seconds, work)
            side.join(timeout=max_seconds + 60)
            duration = time.monotonic() - started
            status = stack.status()
            figures |= {"cpu_billing_s": cpu_seconds(status.billing_pid or 0),
                        "cpu_kamailio_s": cpu_seconds(status.kamailio_pid or 0)}
            sipp, pj = settled(stack, "soak"), settled(stack, "pjsoak")
        finally:
            stack.down()
    total = {key: sipp[key] + pj[key] for key in ("answered_2xx", "customer_xdrs", "lost",
                                                  "orphans", "duplicated")}
    return figures | total | {
        "sent": sipp_count + pjsua2_count, "sipp_sent": sipp_count,
        "sipp_2xx": sipp["answered_2xx"], "pjsua2_sent": pjsua2_count,
        "pjsua2_2xx": pj["answered_2xx"], "pjsua2_codes": pjsua2.get("codes", {}),
        "duration_s": round(duration, 2),
        "msg_per_s": round(total["answered_2xx"] / duration) if duration else 0,
        "sipp_msg_per_s": round(sipp["msg_per_s"]),
        "load_average": os.getloadavg()}


def clean(figures: dict[str, Any]) -> bool:
    return (figures["lost"] == figures["duplicated"] == figures["orphans"] == 0
            and figures["answered_2xx"] == figures["customer_xdrs"] == figures["sent"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sipp", type=int, default=100_000, help="MESSAGEs from sipp")
    parser.add_argument("--rate", type=float, default=1000, help="sipp's rate, msg/s")
    parser.add_argument("--pjsua2", type=int, default=1000, help="MESSAGEs from pjsua2")
    parser.add_argument("--in-flight", type=int, default=10,
                        help="pjsua2 MESSAGEs awaiting their answer at a time")
    parser.add_argument("--max-seconds", type=float, default=600,
                        help="cap on sipp's run (its -timeout); the whole soak stops soon after")
    parser.add_argument("--children", type=int, default=4, help="Kamailio UDP workers")
    args = parser.parse_args(argv)
    if min(args.sipp, args.pjsua2) < 0 or args.rate <= 0 or args.max_seconds <= 0:
        parser.error("counts must be >= 0, --rate and --max-seconds > 0")
    figures = soak(args.sipp, args.rate, args.pjsua2, args.in_flight, args.max_seconds,
                   args.children)
    print_figures(figures)
    return 0 if clean(figures) else 1


def print_figures(f: dict[str, Any]) -> None:
    print(f"soak: sipp {f['sipp_sent']} at a target rate + pjsua2 {f['pjsua2_sent']}, "
          f"through Kamailio + imsim billing service (sipp exit {f['sipp_exit']})")
    print(f"  sent {f['sent']}  2xx {f['answered_2xx']} (sipp {f['sipp_2xx']}, pjsua2 "
          f"{f['pjsua2_2xx']} {f['pjsua2_codes']})  xDRs {f['customer_xdrs']}")
    print(f"  lost {f['lost']}  dup {f['duplicated']}  orphans {f['orphans']}")
    print(f"  {f['msg_per_s']} msg/s over {f['duration_s']} s (sipp alone "
          f"{f['sipp_msg_per_s']} msg/s by Kamailio's acc timestamps)")
    per = max(f["answered_2xx"], 1)
    print(f"  CPU per message: billing {f['cpu_billing_s'] / per * 1e6:.0f} us, kamailio "
          f"{f['cpu_kamailio_s'] / per * 1e6:.0f} us; load average "
          f"{' '.join(f'{x:.2f}' for x in f['load_average'])} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
