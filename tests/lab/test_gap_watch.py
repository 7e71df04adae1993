"""The run's gap (lab.gap) and the clients' proxy watch (lab.sip.ProxyWatch), no stack."""

from __future__ import annotations

import socket
import threading

from lab import gap, sip


def message(msg_id: str, t: float, code, reason: str = "") -> list[dict]:
    return [{"kind": "sent", "msg_id": msg_id, "from": "a", "to": "b", "domain": "d",
             "sent_at": 100 + t, "sent_t": t, "wall": 100 + t},
            {"kind": "message", "msg_id": msg_id, "from": "a", "to": "b", "domain": "d",
             "sent_at": 100 + t, "sent_t": t, "code": code, "reason": reason,
             "answered_at": 100.5 + t, "wall": 100.5 + t}]


def test_no_outage_no_gap():
    records = message("m1", 1, 200) + message("m2", 2, 403)
    assert gap.find(records, {"m1": 200, "m2": 403}) is None


def test_outage_codes_and_failures_while_the_proxy_was_away():
    records = (message("ok", 1, 200) + message("t", 2, 408, "Request Timeout")
               + message("b", 2.5, 503, "Billing unavailable")
               + message("lost-reg", 3.2, 480, "not registered")
               + message("late-480", 9, 480, "not registered")
               + message("model-408", 9.5, 408)
               + [{"kind": "proxy", "event": "restarted", "t": 3.0, "silent_since_t": 1.8},
                  {"kind": "register", "code": 200, "t": 3.4, "expires": 3600}])
    models = {m: 200 for m in ("ok", "t", "b", "lost-reg", "late-480")} | {"model-408": 408}
    found = gap.find(records, models)
    assert [g["msg_id"] for g in found["failed"]] == ["t", "b", "lost-reg"]
    assert found["codes"] == {"408": 1, "503": 1, "480": 1}
    assert (found["from_t"], found["to_t"]) == (2, 3.2)
    assert gap.describe(found) == ("gap: 3 messages failed during an outage (408 x1, 480 x1, "
                                   "503 x1), sent from t=2 s to t=3.2 s; proxy restarted at "
                                   "t=3 s")


def test_a_proxy_still_away_at_the_end_keeps_the_window_open():
    assert gap.proxy_away([{"kind": "proxy", "event": "down", "t": 5.0,
                            "silent_since_t": 4.0}]) == [(4.0, float("inf"))]


class FakeProxy:
    """Answers OPTIONS with a boot id (changeable), or stays silent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.boot: str | None = "1"
        self.silent = False
        self.running = True
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                continue
            request = sip.parse(data)
            if self.silent or not isinstance(request, sip.Request):
                continue
            boot = f"X-Imsim-Boot: {self.boot}\r\n" if self.boot else ""
            self.sock.sendto((f"SIP/2.0 200 OK\r\nVia: {request.header('via')}\r\n{boot}"
                              "Content-Length: 0\r\n\r\n").encode(), peer)


def test_proxy_watch_sees_down_restarted_and_up():
    clock = [0.0]
    proxy = FakeProxy()
    watch = sip.ProxyWatch("127.0.0.1", proxy.port, interval=1.0, clock=lambda: clock[0])

    def step(seconds: float) -> list[str]:
        """Advance the fake clock, let the ping's answer arrive, collect the events."""
        clock[0] += seconds
        events = watch.poll()
        threading.Event().wait(0.1)
        return events + watch.poll()

    try:
        assert step(0) == [] and watch.boot == "1"
        proxy.silent = True
        assert step(1) + step(1) + step(1) == ["down"]
        proxy.silent, proxy.boot = False, "2"
        assert step(1) == ["restarted"] and watch.boot == "2"
        assert watch.silent_since == 0.0
        proxy.silent = True
        step(1), step(1), step(1)
        proxy.silent = False
        assert step(1) == ["up"]
    finally:
        proxy.running = False
        watch.close()
        proxy.sock.close()


def test_the_report_shows_the_gap():
    import pandas as pd

    from imsim import compare

    found = gap.find(message("t", 2, 408, "Request Timeout") + message("ok", 3, 200),
                     {"t": 200, "ok": 200})
    found["line"] = gap.describe(found)
    result = compare.Comparison(pd.DataFrame(columns=["msg_id", "match"]),
                                {"matched": 1, "messages": 2, "agreement": 50.0,
                                 "model_amount": "0", "lab_amount": "0", "mismatched": 1},
                                gap=found)
    assert "gap: 1 messages failed during an outage (408 x1)" in compare.summary_lines(result)[1]
    assert "| t | 2 | 408 | Request Timeout |" in compare.markdown(result)
