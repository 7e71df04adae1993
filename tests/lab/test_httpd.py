"""lab.httpd on its own, in this process, with short timeouts: slow clients, odd framing."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lab import httpd
from tests.lab.billing_fixtures import free_tcp_port, post


@pytest.fixture
def server() -> Iterator[int]:
    """An echo server ({"path": ...}) with idle 2 s and request 1 s timeouts."""
    port, ready = free_tcp_port(), threading.Event()
    loop = asyncio.new_event_loop()

    async def main() -> None:
        await httpd.serve(lambda r: httpd.Reply(200, {"path": r.path}), "127.0.0.1", port,
                          max_body=1024, idle_timeout=2.0, request_timeout=1.0)
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(main()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(5)
    yield port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


def raw(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_slowloris_client_blocks_nobody_and_is_cut_off(server):
    slow = socket.create_connection(("127.0.0.1", server), timeout=5)
    slow.sendall(b"POST /slow HTTP/1.1\r\n")
    started = time.monotonic()
    for n in range(20):  # others are served while the slow one trickles a byte at a time
        slow.sendall(b"X")
        begun = time.monotonic()
        assert post(server, f"/fast{n}", {}) == (200, {"path": f"/fast{n}"})
        assert time.monotonic() - begun < 0.5
        time.sleep(0.02)
    answer = b""
    while time.monotonic() - started < 4:
        try:
            slow.sendall(b"X")
        except OSError:
            break
        time.sleep(0.2)
    slow.settimeout(1)
    try:
        answer = slow.recv(4096)
    except OSError:
        pass
    slow.close()
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3.5


def test_an_idle_keep_alive_connection_is_closed(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(b"POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server
        assert 1.0 < time.monotonic() - started < 4.0


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"411"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 2048\r\n\r\n", b"413"),
    (b"POST /x HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20000, b"431"),
    (b"POST /x SPDY/3\r\n\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
])
def test_bad_framing_gets_a_4xx_and_the_server_lives_on(server, request_bytes, status):
    assert raw(server, request_bytes).startswith(b"HTTP/1.1 " + status)
    assert post(server, "/after", {})[0] == 200


def test_pipelined_requests_are_answered_in_order(server):
    one = b"POST /one HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
    two = b"POST /two HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    answer = raw(server, one + two)
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.index(b"/one") < answer.index(b"/two")


def test_many_clients_at_once(server):
    results: list[int] = []

    def client(n: int) -> None:
        for k in range(10):
            results.append(post(server, f"/c{n}-{k}", {})[0])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results == [200] * 200
