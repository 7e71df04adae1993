"""A small single-threaded HTTP/1.1 JSON server on asyncio, built for Kamailio's http_client.

Kamailio keeps one connection per worker and posts small JSON bodies, one request at a
time; `http.server` answers that at a few hundred requests per second at best. This
server parses requests straight off an `asyncio.Protocol`: keep-alive, TCP_NODELAY (the
asyncio default), one write per response, requests on a connection answered in order.

Limits, so that no client can hurt it: request head 16 KiB, body `max_body` bytes (413),
no chunked bodies (411), a connection idle for `idle_timeout` seconds is closed, and a
request not complete `request_timeout` seconds after its first byte gets 408 and the
connection is closed (a client trickling a byte a second holds one socket for that
long, never the server: every connection is served by the one event loop).
A handler returns a `Reply` or a `Deferred` one (answered when it is
resolved, without a round through the event loop); an exception in a handler becomes a
500 JSON answer, never a dead server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("imsim.billing_service")

MAX_HEAD = 16 * 1024
REASONS = {200: "OK", 100: "Continue", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
           408: "Request Timeout", 422: "Unprocessable Entity",
           431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    payload: Any = field(default_factory=dict)

    def encode(self, keep_alive: bool) -> bytes:
        body = json.dumps(self.payload, separators=(",", ":")).encode()
        head = (f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
        return head.encode() + body


def error(status: int, faultcode: str, faultstring: str) -> Reply:
    """A JSON error answer, PortaBilling-style fault fields."""
    return Reply(status, {"faultcode": faultcode, "faultstring": faultstring})


class Deferred:
    """A reply that comes later: `resolve` it (in the event loop's thread) to send it."""

    __slots__ = ("reply", "_callbacks")

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self._callbacks: list[Callable[[Reply], None]] = []

    def resolve(self, reply: Reply) -> None:
        self.reply, callbacks, self._callbacks = reply, self._callbacks, []
        for callback in callbacks:
            callback(reply)

    def then(self, callback: Callable[[Reply], None]) -> None:
        if self.reply is not None:
            callback(self.reply)
        else:
            self._callbacks.append(callback)

    @classmethod
    def of(cls, work: Awaitable[Reply]) -> Deferred:
        """A Deferred resolved by a coroutine or future (a 500 if it fails)."""
        deferred = cls()

        def finish(task: asyncio.Future[Reply]) -> None:
            if task.cancelled() or task.exception() is not None:
                log.error("handler failed: %r", None if task.cancelled() else task.exception())
                deferred.resolve(error(500, "Server.internal", "internal error"))
            else:
                deferred.resolve(task.result())

        asyncio.ensure_future(work).add_done_callback(finish)
        return deferred


def gather(answers: list[Reply | Deferred], combine: Callable[[list[Reply]], Reply]
           ) -> Reply | Deferred:
    """One answer made of several: ``combine`` of the replies in order, once all are in."""
    replies: list[Reply | None] = [a if isinstance(a, Reply) else None for a in answers]
    waiting = [(n, a) for n, a in enumerate(answers) if isinstance(a, Deferred)]
    if not waiting:
        return combine(replies)  # type: ignore[arg-type]
    done, left = Deferred(), [len(waiting)]

    def arrived(n: int, reply: Reply) -> None:
        replies[n] = reply
        left[0] -= 1
        if left[0] == 0:
            done.resolve(combine(replies))  # type: ignore[arg-type]

    for n, answer in waiting:
        answer.then(lambda reply, n=n: arrived(n, reply))  # type: ignore[misc]
    return done


Handler = Callable[[Request], "Reply | Deferred"]


class _BadRequest(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.payload)
        self.reply = reply


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, handler: Handler, max_body: int, live: set[HttpProtocol]) -> None:
        self.handler, self.max_body, self.live = handler, max_body, live
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closing = False
        self.continued = False
        self.active = time.monotonic()
        self.started: float | None = None  # first byte of the request being received

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.live.discard(self)

    def data_received(self, data: bytes) -> None:
        self.active = time.monotonic()
        if not self.buffer:
            self.started = self.active
        self.buffer += data
        if not self.busy:
            self._serve()

    def close_if_idle(self, since: float, started_before: float) -> None:
        """Close a connection silent since `since`, or whose request began before
        `started_before` and is still incomplete (408)."""
        if self.busy or not self.transport:
            return
        if self.buffer and self.started is not None and self.started < started_before:
            self._send(error(408, "Client.timeout", "request not complete in time"), False)
        elif self.active < since:
            self.transport.close()

    def _serve(self) -> None:
        while not self.busy and not self.closing:
            try:
                parsed = self._parse()
            except _BadRequest as bad:
                self._send(bad.reply, keep_alive=False)
                return
            if parsed is None:
                return
            request, keep_alive = parsed
            self._dispatch(request, keep_alive)

    def _parse(self) -> tuple[Request, bool] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                raise _BadRequest(error(431, "Client.head", "request head too large"))
            return None
        method, path, version, headers = parse_head(bytes(self.buffer[:end]))
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _BadRequest(error(411, "Client.length", "chunked bodies are not accepted"))
        length = content_length(headers, self.max_body)
        if len(self.buffer) < end + 4 + length:
            self._continue(headers)
            return None
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        self.started = time.monotonic() if self.buffer else None  # a pipelined next one
        self.continued = False
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        return Request(method, path, headers, body), keep_alive

    def _continue(self, headers: dict[str, str]) -> None:
        if headers.get("expect", "").lower() == "100-continue" and not self.continued:
            self.continued = True
            if self.transport:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        try:
            answer = self.handler(request)
        except Exception:
            log.exception("handler failed on %s %s", request.method, request.path)
            answer = error(500, "Server.internal", "internal error")
        if isinstance(answer, Reply):
            self._send(answer, keep_alive)
            return
        self.busy = True
        answer.then(lambda reply: self._finish(reply, keep_alive))

    def _finish(self, reply: Reply, keep_alive: bool) -> None:
        self.busy = False
        self.active = time.monotonic()
        self._send(reply, keep_alive)
        if not self.closing:
            self._serve()

    def _send(self, reply: Reply, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(reply.encode(keep_alive))
        if not keep_alive:
            self.closing = True
            self.transport.close()


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
        first, *lines = text.split("\r\n")
        method, path, version = first.split(" ")
    except ValueError:
        raise _BadRequest(error(400, "Client.request_line", "malformed request line")) from None
    if not version.startswith("HTTP/1."):
        raise _BadRequest(error(400, "Client.version", "HTTP/1.x only"))
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise _BadRequest(error(400, "Client.header", "malformed header line"))
        headers[name.strip().lower()] = value.strip()
    return method, path, version, headers


def content_length(headers: dict[str, str], max_body: int) -> int:
    text = headers.get("content-length", "0")
    if not text.isdigit():
        raise _BadRequest(error(400, "Client.length", "Content-Length must be a number"))
    length = int(text)
    if length > max_body:
        raise _BadRequest(error(413, "Client.too_large",
                                f"body of {length} bytes, more than the {max_body} allowed"))
    return length


async def serve(handler: Handler, host: str, port: int, max_body: int = 64 * 1024,
                idle_timeout: float = 30.0, request_timeout: float = 10.0) -> asyncio.Server:
    """Listen; connections silent for `idle_timeout` seconds are closed, requests not
    complete `request_timeout` seconds after their first byte get 408."""
    loop = asyncio.get_running_loop()
    live: set[HttpProtocol] = set()
    every = min(idle_timeout, request_timeout) / 4

    def sweep() -> None:
        now = time.monotonic()
        for connection in list(live):
            connection.close_if_idle(now - idle_timeout, now - request_timeout)
        loop.call_later(every, sweep)

    loop.call_later(every, sweep)
    return await loop.create_server(lambda: HttpProtocol(handler, max_body, live),
                                    host, port, reuse_address=True, backlog=256)
