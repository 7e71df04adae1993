"""Exact (time, who, what) timelines of the handbook scenario, SimPy style."""

from __future__ import annotations

import pandas as pd

from imsim import sim
from imsim.model import scenario
from tests.helpers import HANDBOOK

ALICE, BOB, CAROL = "15551230001", "15551230002", "15551230003"


def handbook_trace() -> list[tuple[float, str, str]]:
    trace = sim.run(scenario.load(HANDBOOK), trace=True).trace
    assert trace is not None
    return trace


def test_registration_and_presence_timeline() -> None:
    start = [e for e in handbook_trace() if e[0] < 1]
    assert start == [
        (0.0, ALICE, "REGISTER"),
        (0.0, BOB, "REGISTER"),
        (0.0, CAROL, "REGISTER"),
        (0.011, "registrar", f"200 REGISTER {ALICE} expires 3600"),
        (0.011, "registrar", f"200 REGISTER {BOB} expires 3600"),
        (0.011, "registrar", f"200 REGISTER {CAROL} expires 3600"),
        (0.031, ALICE, "PUBLISH open"),
        (0.031, ALICE, f"SUBSCRIBE {BOB}"),
        (0.031, ALICE, f"SUBSCRIBE {CAROL}"),
        (0.031, BOB, "PUBLISH open"),
        (0.031, BOB, f"SUBSCRIBE {ALICE}"),
        (0.031, CAROL, "PUBLISH open"),
        (0.031, CAROL, f"SUBSCRIBE {ALICE}"),
        # seven jobs at once on four proxy workers: the last three wait 1 ms
        (0.032, "presence", f"PUBLISH {ALICE} open"),
        (0.032, "presence", f"200 SUBSCRIBE {ALICE} -> {BOB}"),
        (0.032, "presence", f"200 SUBSCRIBE {ALICE} -> {CAROL}"),
        (0.032, "presence", f"PUBLISH {BOB} open"),
        (0.0325, "presence", f"NOTIFY {ALICE}: {BOB} closed"),        # initial
        (0.033, "presence", f"NOTIFY {ALICE}: {CAROL} closed"),       # initial
        (0.033, "presence", f"200 SUBSCRIBE {BOB} -> {ALICE}"),
        (0.033, "presence", f"PUBLISH {CAROL} open"),
        (0.033, "presence", f"200 SUBSCRIBE {CAROL} -> {ALICE}"),
        (0.0335, "presence", f"NOTIFY {ALICE}: {BOB} open"),          # Bob's change
        (0.0335, "presence", f"NOTIFY {BOB}: {ALICE} open"),          # initial
        (0.0335, "presence", f"NOTIFY {ALICE}: {CAROL} open"),        # Carol's change
        (0.0335, "presence", f"NOTIFY {CAROL}: {ALICE} open"),        # initial
    ]


def test_delivered_message_timeline() -> None:
    m1 = [e for e in handbook_trace() if 10 <= e[0] < 20]
    assert m1 == [
        (10.0, ALICE, f"MESSAGE m1 to {BOB}"),
        (10.011, "proxy", "407 Proxy Authentication Required m1"),
        (10.021, ALICE, "MESSAGE m1 with credentials"),
        (10.032, "proxy", "AAA request m1"),
        (10.035, "billing", "authorize m1: 200 OK"),
        (10.047, BOB, "MESSAGE m1 received, 200"),
        (10.057, "billing", f"xDR m1 outgoing {ALICE} 1555 1 x 0.01 = 0.01 USD"),
        (10.057, "billing", "xDR m1 vendor internal | 1 x 0 = 0 USD"),
        (10.067, ALICE, "200 OK (m1)"),
    ]


def test_refused_message_timeline_has_no_delivery_and_no_xdr() -> None:
    m4 = [e for e in handbook_trace() if 40 <= e[0] < 50]
    refusal = "403 Forbidden (product Voice only does not include Messaging)"
    assert m4 == [
        (40.0, CAROL, f"MESSAGE m4 to {ALICE}"),
        (40.011, "proxy", "407 Proxy Authentication Required m4"),
        (40.021, CAROL, "MESSAGE m4 with credentials"),
        (40.032, "proxy", "AAA request m4"),
        (40.035, "billing", f"authorize m4: {refusal}"),
        (40.047, CAROL, f"{refusal} (m4)"),
    ]


def test_messages_frame_of_the_handbook() -> None:
    result = sim.run(scenario.load(HANDBOOK))
    frame = result.messages
    steps = [None if pd.isna(step) else int(step) for step in frame["step"]]
    assert list(zip(frame["msg_id"], frame["code"], steps, strict=True)) == [
        ("m1", 200, None), ("m2", 200, None), ("m3", 200, None), ("m4", 403, 8),
        ("m5", 404, None)]
    assert result.xdrs["msg_id"].tolist() == ["m1", "m1", "m2", "m2", "m3", "m3"]
    assert result.sip.set_index(["method", "code"])["count"].to_dict()[("MESSAGE", 407)] == 5
