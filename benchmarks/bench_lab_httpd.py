"""The billing service's HTTP server: lab.httpd (hand-written) against aiohttp.

    .venv/bin/python benchmarks/bench_lab_httpd.py [--messages 10000] [--repeats 3]

The same `BillingService.handle` behind each server, driven by Kamailio-like
keep-alive clients (bench_lab's, /authorize then /account per message), the two
servers in turn, `--repeats` times: msg/s, CPU per message of the service, the load
average. aiohttp is not a dependency of imsim: install it to compare
(`.venv/bin/pip install aiohttp==3.14.5`); without it only lab.httpd is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_lab import bench_scenario, cpu_seconds, drive, free_port  # noqa: E402

from lab import httpd, provision  # noqa: E402
from lab.stack import Stack  # noqa: E402


async def serve_aiohttp(scenario: str, port: int, db: str) -> None:
    """The billing service with aiohttp in place of lab.httpd (what main() does)."""
    from aiohttp import web

    from imsim.model import scenario as scenarios
    from lab import billing_service as bs
    from lab.xdr_store import XdrStore

    loaded, store, loop = scenarios.load(scenario), XdrStore(db), asyncio.get_running_loop()
    login, password = bs.api_credentials(Path(db).with_name("api.secret"), "admin")
    service = bs.BillingService(loaded, store, bs.ScenarioClock(loaded.start, time.time()), login,
                                password)
    service.loop, store.after_batch = loop, service.after_batch

    async def handle(request: Any) -> Any:
        answer = service.handle(httpd.Request(request.method, request.path,
                                              {k.lower(): v for k, v in request.headers.items()},
                                              await request.read()))
        if isinstance(answer, httpd.Deferred):
            future = loop.create_future()
            answer.then(future.set_result)
            answer = await future
        return web.Response(body=json.dumps(answer.payload, separators=(",", ":")).encode(),
                            status=answer.status, content_type="application/json")

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def one(kind: str, folder: Path, messages: int, clients: int) -> dict[str, Any]:
    """One run of `kind` ("httpd" or "aiohttp"): msg/s and CPU us per message."""
    run = Path(tempfile.mkdtemp(dir=folder))
    scenario, port = bench_scenario(run), free_port()
    argv = (provision.billing_command(scenario, port, run / "xdr.sqlite") if kind == "httpd"
            else [sys.executable, __file__, "--serve-aiohttp", str(scenario), str(port),
                  str(run / "xdr.sqlite")])
    service = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        Stack(run / "x", billing_port=port, start_timeout=20)._wait_port(port)
        before = cpu_seconds(service.pid)
        elapsed = drive(port, messages, clients)
        cpu = cpu_seconds(service.pid) - before
    finally:
        service.terminate()
        service.wait(timeout=10)
    return {"kind": kind, "msg_per_s": messages / elapsed, "cpu_us": cpu / messages * 1e6,
            "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000, help="messages per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per server")
    parser.add_argument("--clients", type=int, default=8, help="keep-alive clients")
    parser.add_argument("--serve-aiohttp", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_aiohttp:
        scenario, port, db = args.serve_aiohttp
        asyncio.run(serve_aiohttp(scenario, int(port), db))
        return 0
    try:
        import aiohttp
        kinds = ["httpd", "aiohttp"]
        print(f"lab.httpd against aiohttp {aiohttp.__version__}, {args.messages} messages "
              f"per run, {args.clients} clients, {os.cpu_count()} CPUs")
    except ImportError:
        kinds = ["httpd"]
        print("aiohttp is not installed: lab.httpd only")
    with tempfile.TemporaryDirectory(prefix="imsim-bench-httpd-") as tmp:
        for _ in range(args.repeats):
            for kind in kinds:
                r = one(kind, Path(tmp), args.messages, args.clients)
                print(f"  {r['kind']:8} {r['msg_per_s']:6.0f} msg/s  CPU {r['cpu_us']:4.0f} us "
                      f"per message  load {r['load']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
