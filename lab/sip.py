"""A tiny SIP-over-UDP client for loopback: liveness pings and scripted requests.

Enough SIP for the launcher and the lab tests (OPTIONS, REGISTER, MESSAGE, PUBLISH,
SUBSCRIBE with digest auth); the real clients of the lab are pjsua2.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class Response:
    code: int
    reason: str
    headers: dict[str, str]
    body: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Request:
    method: str
    uri: str
    headers: dict[str, str]
    body: str = ""
    raw: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def parse(data: bytes) -> Response | Request:
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    first, *lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    if first.startswith("SIP/2.0"):
        _, code, reason = (first.split(" ", 2) + [""])[:3]
        return Response(int(code), reason, headers, body)
    method, uri, _ = first.split(" ", 2)
    return Request(method, uri, headers, body, text)


def options_ping(host: str, port: int, timeout: float = 0.5) -> int | None:
    """Send one OPTIONS to the proxy itself; the status code, or None on silence."""
    reply = options(host, port, timeout)
    return reply.code if reply is not None else None


def options(host: str, port: int, timeout: float = 0.5) -> Response | None:
    """One OPTIONS to the proxy itself; its answer (the lab's carries X-Imsim-Boot, the
    proxy's start time), or None on silence."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        try:
            sock.sendto(options_request(host, port, sock.getsockname()[1]), (host, port))
            reply = parse(sock.recvfrom(65535)[0])
        except (OSError, ValueError):
            return None
        return reply if isinstance(reply, Response) else None


def options_request(host: str, port: int, local_port: int) -> bytes:
    tag, branch = secrets.token_hex(4), "z9hG4bK" + secrets.token_hex(6)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:ping@127.0.0.1>;tag={tag}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: ping-{secrets.token_hex(8)}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _digest(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = secrets.token_hex(4), "00000001"
        digest = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        digest = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    parts += [f'response="{digest}"', "algorithm=MD5"]
    if "opaque" in params:
        parts.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(parts)


@dataclass
class UdpUser:
    """One SIP account on its own UDP socket; answers MESSAGE/NOTIFY it receives."""

    user: str
    domain: str
    password: str
    proxy: tuple[str, int]
    timeout: float = 2.0
    auth_user: str | None = None  # authenticate as someone else (to test spoofing)
    received: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.tag = secrets.token_hex(4)
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    def register(self, expires: int = 300) -> Response:
        return self.request("REGISTER", f"sip:{self.domain}", to=self.aor,
                            extra={"Contact": f"<sip:{self.user}@127.0.0.1:{self.port}>",
                                   "Expires": str(expires)})

    def message(self, to_user: str, body: str, msg_id: str = "",
                to_domain: str | None = None, auth: bool = True) -> Response:
        uri = f"sip:{to_user}@{to_domain or self.domain}"
        extra = {"Content-Type": "text/plain"}
        if msg_id:
            extra["X-IMSIM-Msg-Id"] = msg_id
        return self.request("MESSAGE", uri, to=uri, extra=extra, body=body, auth=auth)

    def request(self, method: str, uri: str, to: str, extra: dict[str, str] | None = None,
                body: str = "", auth: bool = True, call_id: str | None = None) -> Response:
        """Send; answer one digest challenge when `auth`; return the final response."""
        call_id = call_id or secrets.token_hex(8)
        reply = self._transaction(method, uri, to, extra or {}, body, call_id, None)
        if auth and reply.code in (401, 407):
            name = "WWW-Authenticate" if reply.code == 401 else "Proxy-Authenticate"
            answer = _digest(reply.header(name), method, uri, self.auth_user or self.user,
                             self.password)
            header = "Authorization" if reply.code == 401 else "Proxy-Authorization"
            reply = self._transaction(method, uri, to, extra or {}, body, call_id,
                                      (header, answer))
        return reply

    def _transaction(self, method: str, uri: str, to: str, extra: dict[str, str],
                     body: str, call_id: str, credentials: tuple[str, str] | None
                     ) -> Response:
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(6)
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <{self.aor}>;tag={self.tag}",
            f"To: <{to}>",
            f"Call-ID: {call_id}",
            f"CSeq: {self.cseq} {method}",
        ]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        if credentials:
            lines.append(f"{credentials[0]}: {credentials[1]}")
        lines.append(f"Content-Length: {len(body.encode())}")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.proxy)
        return self._await_final(branch)

    def _receive(self, seconds: float) -> Iterator[Response]:
        """What arrives for ``seconds``: requests are answered, responses yielded."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                packet = parse(self.sock.recvfrom(65535)[0])
            except TimeoutError:
                return
            if isinstance(packet, Request):
                self._answer(packet)
            else:
                yield packet

    def _await_final(self, branch: str) -> Response:
        for packet in self._receive(self.timeout):
            if branch in packet.header("via") and packet.code >= 200:
                return packet
        raise TimeoutError(f"{self.user}: no final response within {self.timeout} s")

    def _answer(self, request: Request, code: int = 200) -> None:
        """Answer an incoming request (MESSAGE, NOTIFY) with `code`, copying dialog ids."""
        self.received.append(request)
        vias = [line.split(":", 1)[1].strip() for line in request.raw.split("\r\n")
                if line.lower().startswith(("via:", "v:"))]
        lines = [f"SIP/2.0 {code} OK"] + [f"Via: {via}" for via in vias]
        to = request.header("to")
        if ";tag=" not in to:
            to += f";tag={secrets.token_hex(4)}"
        lines += [f"From: {request.header('from')}", f"To: {to}",
                  f"Call-ID: {request.header('call-id')}", f"CSeq: {request.header('cseq')}",
                  "Content-Length: 0"]
        target = _via_address(vias[0]) if vias else self.proxy
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), target)

    def serve(self, seconds: float) -> list[Request]:
        """Receive and answer incoming requests for a while; returns what arrived."""
        for _ in self._receive(seconds):
            pass
        return self.received


def _via_address(via: str) -> tuple[str, int]:
    sent_by = via.split(" ", 1)[1].split(";")[0]
    host, _, port = sent_by.partition(":")
    rport = re.search(r";rport=(\d+)", via)
    received = re.search(r";received=([\d.]+)", via)
    return (received.group(1) if received else host,
            int(rport.group(1)) if rport else int(port or 5060))


class ProxyWatch:
    """Pings the proxy with OPTIONS every `interval` seconds without ever blocking, and
    says when it went silent, came back, or came back as a new instance (the lab's
    Kamailio answers OPTIONS with X-Imsim-Boot, its start time): a client then
    registers again, since a restarted proxy forgot every registration.

    `poll()` returns the events since the last call: "down" (no answer for
    `down_after` intervals), "up" (answering again, same instance or no boot header),
    "restarted" (answering with another boot id).
    """

    def __init__(self, host: str, port: int, interval: float = 1.0, down_after: float = 2.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address, self.interval, self.clock = (host, port), interval, clock
        self.down_after = down_after
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if host.startswith("127.") else "", 0))
        self.sock.setblocking(False)
        self.boot: str | None = None
        self.down = False
        self.last_answer = clock()
        self.silent_since = self.last_answer  # the answer before the last down/restart
        self.next_ping = 0.0

    def close(self) -> None:
        self.sock.close()

    def poll(self) -> list[str]:
        events = [event for event in map(self._answer, self._received()) if event]
        now = self.clock()
        if now >= self.next_ping:
            self.next_ping = now + self.interval
            with contextlib.suppress(OSError):
                self.sock.sendto(options_request(*self.address, self.sock.getsockname()[1]),
                                 self.address)
        if not self.down and now - self.last_answer > self.down_after * self.interval:
            self.down, self.silent_since = True, self.last_answer
            events.append("down")
        return events

    def _received(self) -> list[Response]:
        found: list[Response] = []
        while True:
            try:
                packet = parse(self.sock.recv(65535))
            except (BlockingIOError, InterruptedError):
                return found
            except (OSError, ValueError):  # ICMP refusals, garbage
                continue
            if isinstance(packet, Response):
                found.append(packet)

    def _answer(self, reply: Response) -> str | None:
        previous, self.last_answer = self.last_answer, self.clock()
        boot, known = reply.header("x-imsim-boot") or None, self.boot
        self.boot = boot or known
        was_down, self.down = self.down, False
        if boot and known and boot != known:
            self.silent_since = self.silent_since if was_down else previous
            return "restarted"
        return "up" if was_down else None
