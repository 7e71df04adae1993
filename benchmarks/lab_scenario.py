"""What the lab benchmarks share: a free loopback port and the handbook scenario with
balances no run can exhaust (bench_lab, bench_lab_pjsua2, bench_lab_httpd, soak_lab)."""

from __future__ import annotations

import socket
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
HANDBOOK = ROOT / "scenarios" / "handbook.yaml"


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


def bench_scenario(folder: Path, extra: int = 0) -> Path:
    """The handbook scenario with balances large enough for any run, and `extra` more
    accounts like the first (`pair_users` names them)."""
    yaml = YAML(typ="safe")
    document = yaml.load(HANDBOOK.read_text())
    first = document["environments"][0]["customers"][0]["accounts"]
    first += [{"id": user, "password": f"bench-{user}", "product": first[0]["product"],
               "balance": 1} for user in (f"1555124{n:04d}" for n in range(extra))]
    for env in document["environments"]:
        for customer in env["customers"]:
            for account in customer["accounts"]:
                account["balance"] = 1_000_000_000
    path = folder / "bench.yaml"
    with path.open("w") as handle:
        yaml.dump(document, handle)
    return path
