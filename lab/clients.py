"""pjsua2 softphones for the lab driver: one Endpoint, its accounts and buddies, a recorder.

Rules learned the hard way (pjsua2-python 2.15.1):
- one Endpoint per process: a second libCreate after libDestroy aborts the process;
- threadCnt=0 and mainThreadOnly: every pjsua call and callback on the polling thread;
- keep Python references to every Account and Buddy, or they are collected and the
  next callback into them crashes;
- at most 8 accounts and 256 buddies per process (C assertions abort beyond that);
- SendInstantMessageParam.userData only takes a SWIG pointer: we pass the message's
  SipHeader object and find the message again by its address in the status callback.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pjsua2 as pj

from lab.plan import TARGET_CACHE, Identity, PlannedMessage

MSG_ID_HEADER = "X-IMSIM-Msg-Id"
PJSIP_EBUSY = 171001  # PJSIP_ERRNO_START_PJSIP + 1, not exported by the bindings
_MSG_ID = re.compile(r"^X-IMSIM-Msg-Id[ \t]*:[ \t]*(.*?)[ \t]*\r?$", re.I | re.M)
_URI_USER = re.compile(r"sips?:([^@;>]+)@")
PRESENCE = {pj.PJSUA_BUDDY_STATUS_ONLINE: "online", pj.PJSUA_BUDDY_STATUS_OFFLINE: "offline",
            pj.PJSUA_BUDDY_STATUS_UNKNOWN: "unknown"}


class Recorder:
    """Plain dict records, one JSON line each, flushed as they arrive."""

    def __init__(self, path: Path, process: int, speed: float) -> None:
        self.file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self.process, self.speed = process, speed
        self.start: float | None = None  # wall time of scenario second 0

    def scenario_t(self, wall: float) -> float | None:
        if self.start is None:
            return None
        scale = self.speed if 0 < self.speed < float("inf") else 1.0
        return round((wall - self.start) * scale, 6)

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        if self.file.closed:
            return {}
        wall = fields.pop("wall", None) or time.time()
        record = {"kind": kind, "proc": self.process, "wall": wall,
                  "t": self.scenario_t(wall), **fields}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        return record

    def close(self) -> None:
        self.file.close()


def start_endpoint(log_path: Path, level: int = 0) -> tuple[pj.Endpoint, int]:
    """The process's one Endpoint, polled by its caller, with a UDP transport on loopback."""
    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.uaConfig.maxCalls = 1
    config.medConfig.threadCnt = 0
    config.logConfig.level = level
    config.logConfig.consoleLevel = 0
    config.logConfig.filename = str(log_path)
    ep.libInit(config)
    transport = pj.TransportConfig()
    transport.port = 0
    transport.boundAddress = "127.0.0.1"
    transport_id = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.libStart()
    ep.audDevManager().setNullDev()
    return ep, transport_id


def user_of(uri: str) -> str:
    found = _URI_USER.search(uri)
    return found.group(1) if found else uri


class Softphone(pj.Account):
    """One identity: registers, publishes, watches its buddies, sends and receives."""

    def __init__(self, ident: Identity, proxy: tuple[str, int, str], transport_id: int,
                 recorder: Recorder, on_status: Callable[[Any], None]) -> None:
        super().__init__()
        self.ident, self.recorder, self.on_status = ident, recorder, on_status
        self.config = self._config(proxy, transport_id)
        self.buddies: dict[str, Watched] = {}
        self.targets: OrderedDict[str, pj.Buddy] = OrderedDict()
        self.reg_code: int | None = None  # final answer to the last REGISTER (not un-)
        self.registered = False
        self.online = False
        self.create(self.config)

    def _config(self, proxy: tuple[str, int, str], transport_id: int) -> pj.AccountConfig:
        host, port, transport = proxy
        ident, config = self.ident, pj.AccountConfig()
        config.idUri = ident.uri
        config.priority = 10 if ident.register else 0  # incoming requests prefer these
        config.regConfig.registrarUri = f"sip:{ident.domain}"
        config.regConfig.registerOnAdd = False
        config.regConfig.retryIntervalSec = 0
        config.regConfig.timeoutSec = 3600
        config.regConfig.unregWaitMsec = 500
        config.sipConfig.transportId = transport_id
        config.sipConfig.proxies.append(f"sip:{host}:{port};lr;transport={transport}")
        config.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", ident.user, 0, ident.password))
        config.natConfig.contactRewriteUse = 0
        config.natConfig.viaRewriteUse = 0
        config.natConfig.sipOutboundUse = 0
        config.natConfig.udpKaIntervalSec = 0
        config.presConfig.publishEnabled = False
        config.mwiConfig.enabled = False
        return config

    # presence window ---------------------------------------------------------------
    def go_online(self) -> None:
        """REGISTER, PUBLISH open, SUBSCRIBE to every buddy."""
        self.online = True
        self.config.presConfig.publishEnabled = True
        self.modify(self.config)
        self.setOnlineStatus(_status(pj.PJSUA_BUDDY_STATUS_ONLINE))
        try:
            self.setRegistration(True)
        except pj.Error as exc:
            if exc.status != PJSIP_EBUSY:  # busy: modify() started the REGISTER
                self.recorder.write("run", event="register_error", detail=describe(exc))
        for buddy in self.ident.buddies:
            self.watch(buddy)

    def register_again(self) -> None:
        try:
            self.setRegistration(True)
        except pj.Error as exc:
            if exc.status != PJSIP_EBUSY:  # busy: a REGISTER is on its way already
                self.recorder.write("run", event="register_error", detail=describe(exc))

    def go_offline(self) -> None:
        """PUBLISH closed, stop watching, REGISTER with expires 0."""
        if not self.online:
            return
        self.online = False
        self.setOnlineStatus(_status(pj.PJSUA_BUDDY_STATUS_OFFLINE))
        for buddy in self.buddies.values():
            buddy.subscribePresence(False)
        if self.registered:
            self.setRegistration(False)

    def watch(self, user: str) -> None:
        uri = f"sip:{user}@{self.ident.domain}"
        if uri not in self.buddies:
            self.buddies[uri] = Watched(self, user, uri)

    # messages ----------------------------------------------------------------------
    def send(self, msg: PlannedMessage, token: pj.SipHeader) -> None:
        prm = pj.SendInstantMessageParam()
        prm.content = msg.body
        prm.contentType = "text/plain"
        prm.txOption.headers.append(token)
        prm.userData = token
        self._target(msg.to_uri).sendInstantMessage(prm)

    def _target(self, uri: str) -> pj.Buddy:
        if uri in self.buddies:
            return self.buddies[uri]
        if uri in self.targets:
            self.targets.move_to_end(uri)
            return self.targets[uri]
        if len(self.targets) >= TARGET_CACHE // 2:
            self.targets.popitem(last=False)  # pjsua_buddy_del via the destructor
        buddy = pj.Buddy()
        config = pj.BuddyConfig()
        config.uri, config.subscribe = uri, False
        buddy.create(self, config)
        self.targets[uri] = buddy
        return buddy

    # callbacks (on the polling thread) ---------------------------------------------
    def onRegState(self, prm: Any) -> None:  # noqa: N802 (pjsua2's name)
        if prm.code < 200:
            return
        self.registered = prm.code == 200 and prm.expiration > 0
        if self.registered or prm.code != 200:
            self.reg_code = prm.code
        self.recorder.write("register", user=self.ident.user, domain=self.ident.domain,
                            code=prm.code, reason=prm.reason, expires=prm.expiration)

    def onInstantMessageStatus(self, prm: Any) -> None:  # noqa: N802
        self.on_status(prm)

    def onInstantMessage(self, prm: Any) -> None:  # noqa: N802
        now = time.time()
        whole = prm.rdata.wholeMsg
        found = _MSG_ID.search(whole)
        self.recorder.write("received", wall=now, msg_id=found.group(1) if found else None,
                            **{"from": user_of(prm.fromUri)}, to=self.ident.user,
                            domain=self.ident.domain, length=len(prm.msgBody.encode()),
                            delivered_at=now, delivered_t=self.recorder.scenario_t(now))


class Watched(pj.Buddy):
    """A subscribed buddy: every NOTIFY-driven state change becomes a presence record."""

    def __init__(self, owner: Softphone, user: str, uri: str) -> None:
        super().__init__()
        self.owner, self.user = owner, user
        self.last: tuple[str, str] | None = None
        config = pj.BuddyConfig()
        config.uri, config.subscribe = uri, True
        self.create(owner, config)

    def onBuddyState(self) -> None:  # noqa: N802
        info = self.getInfo()
        state = (PRESENCE.get(info.presStatus.status, "unknown"), info.subStateName)
        if state == self.last:
            return
        self.last = state
        self.owner.recorder.write("presence", watcher=self.owner.ident.user,
                                  domain=self.owner.ident.domain, buddy=self.user,
                                  status=state[0], text=info.presStatus.statusText,
                                  sub_state=state[1])

    def onBuddyEvSubState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()
        if info.subState == pj.PJSIP_EVSUB_STATE_TERMINATED and info.subTermCode >= 300:
            self.owner.recorder.write("subscription", watcher=self.owner.ident.user,
                                      domain=self.owner.ident.domain, buddy=self.user,
                                      code=info.subTermCode, reason=info.subTermReason)


def _status(status: int) -> pj.PresenceStatus:
    presence = pj.PresenceStatus()
    presence.status = status
    presence.activity = pj.PJRPID_ACTIVITY_UNKNOWN
    presence.statusText = "Online" if status == pj.PJSUA_BUDDY_STATUS_ONLINE else "Offline"
    return presence


def describe(exc: BaseException) -> str:
    """pj.Error's text (its repr is a SWIG pointer)."""
    info = getattr(exc, "info", None)
    return info() if callable(info) else repr(exc)


def header(message: str, name: str, compact: str | None = None) -> str | None:
    """A header's value in a whole SIP message (long or compact name); None if absent."""
    names = re.escape(name) + (f"|{re.escape(compact)}" if compact else "")
    found = re.search(rf"^(?:{names})[ \t]*:[ \t]*(.*?)[ \t]*\r?$", message or "",
                      re.I | re.M)
    return found.group(1) if found else None


def msg_id_header(msg_id: str) -> pj.SipHeader:
    header = pj.SipHeader()
    header.hName, header.hValue = MSG_ID_HEADER, msg_id
    return header
