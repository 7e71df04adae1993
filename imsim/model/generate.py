"""Generated scenarios: hypothesis strategies over the whole message path (issue 15).

    @given(generate.scenarios())            # validated `Scenario` objects
    def test_something(scenario): ...

    python -m imsim.model.generate --seed 3 --out generated.yaml

A strategy draws a scenario *document* (the YAML a user would write) and validates it
through the scenario loader, so every example is a scenario the door lets in and
`dump` writes it back as YAML. The dimensions are the handbook's (steps 1-9):

- 1-3 environments, each with its domain, a country (US, GB) and alias domains;
  service policies with ``%``, ``_`` and exact patterns, match priorities,
  outgoing_aaa, local_lookup, userpart E.164 translation on and off, unit sizes;
- a vendor tariff (``|`` or not, Routing on by mistake) and connections right, missing
  or without a tariff; a customer tariff with overlapping prefixes (1, 1555, 44, 440,
  4420, ``|``), forbidden rates, effective dates before, during and after the run,
  off-peak windows that may cross midnight in a customer's time zone;
- products with and without Messaging, usage charges right and wrong, a bundle, an
  incoming charge; debit accounts and credit customers with balances and limits close
  to a message's price, blocked accounts, numbers shared by two environments, buddy
  lists (presence);
- a script sent on-net, to other environments, to alias and unknown domains, to
  unknown numbers, in E.164, ``+``, ``+``-with-spaces and national forms, with wrong
  passwords, across effective dates, off-peak boundaries and month ends.

Timing (what makes a sequential replay of the script well defined, see
`tests/test_generated_replay.py`): messages are sent at least `SPACING` seconds apart;
every calendar boundary a decision depends on (effective dates, off-peak starts and
ends, month ends in any customer's zone) falls on a whole minute after a start on a
whole minute, and messages are sent only between seconds `EDGE` and 60 - `EDGE` of a
minute; no stochastic traffic, no setup journal, no softphone failures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from ruamel.yaml import YAML

from imsim.model import scenario as loader
from imsim.model.scenario import Scenario

SPACING = 5          # seconds between two messages, at least
EDGE = 10            # seconds between a message and a whole minute, at least
SPAN_MINUTES = 5     # a script lasts at most this many minutes
STARTS = (           # whole minutes near a boundary: month end, midnight, 07:00, 19:00
    "2026-01-31T23:56:00+00:00", "2026-02-28T04:57:00+00:00",
    "2026-01-05T06:57:00+00:00", "2026-01-09T18:57:00+00:00",
    "2026-03-29T00:57:00+00:00", "2026-06-30T23:58:00+00:00",
)
ZONES = ("UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Asia/Tokyo")
CODES = ("1", "1555", "44", "440", "4420", "|")
PRICES = ("0", "0.01", "0.02", "0.05", "0.1", "0.25")
BALANCES = ("0", "0.01", "0.02", "0.03", "0.05", "0.1") + ("10",) * 5
LIMITS = (None, "0", "0.02", "0.05", "1")
LENGTHS = (1, 5, 10, 11, 20, 33)
PRODUCTS = ("Softphone", "Voice only", "No usage charge", "Wrong node", "Bundle", "Incoming")
Draw = Callable[[st.SearchStrategy[Any]], Any]
Document = dict[str, Any]


def rarely(draw: Draw, one_in: int) -> bool:
    """True about once in ``one_in`` draws; shrinks to False (the right setting)."""
    return bool(draw(st.integers(0, one_in - 1)) == one_in - 1)


# -- environments ---------------------------------------------------------------------

def domain(e: int) -> str:
    return f"env{e}.imsim.test"


def aliases(e: int) -> tuple[str, str]:
    """The alias domains of environment ``e``: one billed by size, one translating."""
    return (f"units{e}.alias.test", f"e164-{e}.alias.test")


def number(country: str, e: int, k: int) -> str:
    """Account ``k`` of environment ``e``: a US number under 1555 or a London one (4420)."""
    return f"1555123{e}{k:03d}" if country == "US" else f"442079460{e}{k:02d}"


@st.composite
def policies(draw: Draw, e: int) -> list[Document]:
    """Policy A for the environment's own domain, then 0-2 alias-domain policies."""
    own = draw(st.sampled_from(["%", domain(e), f"env{e}.%", f"_nv{e}.imsim.test"]))
    found = [_policy(draw, "policy A", own, 1, main=True)]
    for k, alias in enumerate(aliases(e)):
        if not rarely(draw, 4):
            pattern = draw(st.sampled_from([alias, f"%{alias[alias.index('.'):]}"]))
            found.append(_policy(draw, f"alias {k}", pattern, draw(st.integers(1, 3)),
                                 units=k == 0, translate=k == 1))
    return found


def _policy(draw: Draw, name: str, pattern: str, priority: int, main: bool = False,
            units: bool = False, translate: bool = True) -> Document:
    likely = st.sampled_from([True, False] if not main else [True] * 5 + [False])
    either = likely if translate else st.sampled_from([False, True])
    policy = {"name": name, "id": name.replace(" ", "-"), "match_priority": priority,
              "recipient_domain_pattern": pattern, "outgoing_aaa": draw(likely),
              "local_lookup": draw(likely),
              "userpart_e164_translation": draw(either)}
    if units or rarely(draw, 6):
        policy["billing_unit_size"] = draw(st.sampled_from([1, 5, 10, 160]))
    return policy


@st.composite
def vendor(draw: Draw, names: list[str]) -> tuple[Document, Document]:
    """Tariff A (``|``, or only 1 by mistake; Routing on by mistake) and the internal
    vendor with a connection per policy (right, missing or without a tariff)."""
    wildcard = "1" if rarely(draw, 4) else "|"
    tariff = {"name": "tariff A", "applied_to": "vendor",
              "routing": rarely(draw, 10),
              "rates": [{"rate_codes": [wildcard], "price": draw(st.sampled_from(["0", "0.001"]))}]}
    connections = []
    for name in names:
        kind = draw(st.sampled_from(["right"] * 6 + ["missing", "no tariff"]))
        if kind != "missing":
            connections.append({"description": f"IM to SIP-UA for {name}",
                                "tariff": "tariff A" if kind == "right" else None,
                                "service_policy": name})
    return tariff, {"name": "internal", "connections": connections}


def _at(start: dt.datetime, minute: int) -> str:
    return (start + dt.timedelta(minutes=minute)).isoformat()


@st.composite
def customer_tariff(draw: Draw, start: dt.datetime) -> Document:
    """Tariff B: overlapping prefixes, forbidden rates, effective dates, off-peak."""
    rates = []
    codes = draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=5, unique=True))
    if "|" not in codes and not rarely(draw, 3):
        codes.append("|")
    for code in codes:
        rates.append(_rate(draw, code, start))
        if rarely(draw, 5):   # a new price from a minute within the run
            later = _rate(draw, code, start)
            later["effective_from"] = _at(start, draw(st.integers(1, SPAN_MINUTES)))
            rates.append(later)
    tariff: Document = {"name": "tariff B", "applied_to": "customer", "rates": rates}
    periods = draw(st.lists(off_peak(start), max_size=2))
    if periods:
        tariff["off_peak"] = periods
    return tariff


def _rate(draw: Draw, code: str, start: dt.datetime) -> Document:
    rate: Document = {"rate_codes": [code], "price": draw(st.sampled_from(PRICES))}
    if draw(st.booleans()):
        rate["off_peak_price"] = draw(st.sampled_from(PRICES))
    when = draw(st.sampled_from([None, None, -1440, 14400]))
    if when is not None:
        rate["effective_from"] = _at(start, when)
    if rarely(draw, 8):
        rate["status"] = "forbidden"
    return rate


@st.composite
def off_peak(draw: Draw, start: dt.datetime) -> Document:
    """A window whose ends fall in the run, read in one of the zones (may wrap midnight)."""
    local = start.astimezone(ZoneInfo(draw(st.sampled_from(ZONES))))
    first, last = (local + dt.timedelta(minutes=draw(st.integers(-2, SPAN_MINUTES)))
                   for _ in range(2))
    period: Document = {"start": first.strftime("%H:%M"), "end": last.strftime("%H:%M")}
    if draw(st.booleans()):
        period["days"] = draw(st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri",
                                                        "sat", "sun"]), min_size=1,
                                       unique=True))
    return period


def products() -> list[Document]:
    """Every product an account may have (`PRODUCTS`)."""
    charge = {"service": "messaging", "node": "PortaSIP", "tariff": "tariff B"}
    both = ["voice", "messaging"]
    return [{"name": "Softphone", "included_services": both, "usage_charges": [charge]},
            {"name": "Voice only", "included_services": ["voice"]},
            {"name": "No usage charge", "included_services": both},
            {"name": "Wrong node", "included_services": both,
             "usage_charges": [charge | {"node": "PortaSIP-2"}]},
            {"name": "Bundle", "included_services": both, "usage_charges": [charge],
             "included_messages": 2},
            {"name": "Incoming", "included_services": both,
             "usage_charges": [charge, charge | {"direction": "incoming"}]}]


@st.composite
def customers(draw: Draw, e: int, country: str, shared: str | None,
              accounts: int) -> list[Document]:
    """1-2 customers holding ``accounts`` accounts; ``shared``: a number of another
    environment that one account here has too."""
    numbers = [number(country, e, k) for k in range(accounts)]
    if shared is not None and draw(st.booleans()):
        numbers[-1] = shared
    split = draw(st.integers(1, accounts)) if accounts > 1 else accounts
    return [_customer(draw, f"customer {e}.{c}", part)
            for c, part in enumerate((numbers[:split], numbers[split:])) if part]


def _customer(draw: Draw, name: str, numbers: list[str]) -> Document:
    credit = draw(st.booleans())
    found: Document = {"name": name, "balance_model": "credit" if credit else "debit",
                       "time_zone": draw(st.sampled_from(ZONES)), "accounts": []}
    if credit:
        limit = draw(st.sampled_from(LIMITS))
        if limit is not None:
            found["credit_limit"] = limit
    for account_id in numbers:
        account: Document = {"id": account_id, "password": f"pw-{account_id}",
                             "product": draw(st.sampled_from(PRODUCTS[:1] * 8 + PRODUCTS)),
                             "balance": "0" if credit else draw(st.sampled_from(BALANCES))}
        if rarely(draw, 10):
            account["blocked"] = True
        found["accounts"].append(account)
    return found


@st.composite
def environment(draw: Draw, e: int, start: dt.datetime, shared: str | None,
                accounts: int) -> Document:
    """One virtual billing environment: the nine steps, each possibly done wrong."""
    country = draw(st.sampled_from(["US", "US", "GB"]))
    found_policies = draw(policies(e))
    tariff_a, internal = draw(vendor([p["name"] for p in found_policies]))
    services = ["voice"] if rarely(draw, 12) else ["voice", "messaging"]
    return {"name": f"env{e}", "domain": domain(e), "country": country,
            "config_server": {"service_types": services},
            "service_policies": found_policies,
            "tariffs": [tariff_a, draw(customer_tariff(start))],
            "vendors": [internal], "products": products(),
            "customers": draw(buddies(draw(customers(e, country, shared, accounts))))}


@st.composite
def buddies(draw: Draw, found: list[Document]) -> list[Document]:
    """In about one environment in three, accounts watch some of the others."""
    numbers = [a["id"] for c in found for a in c["accounts"]]
    if len(numbers) < 2 or not rarely(draw, 3):
        return found
    for account in (a for c in found for a in c["accounts"]):
        others = [n for n in numbers if n != account["id"]]
        picked = draw(st.lists(st.sampled_from(others), max_size=len(others), unique=True))
        if picked:
            account["buddies"] = picked
    return found


# -- the script -----------------------------------------------------------------------

def _accounts(envs: list[Document]) -> list[tuple[Document, Document]]:
    return [(env, account) for env in envs for customer in env["customers"]
            for account in customer["accounts"]]


def forms(account_id: str, country: str) -> list[str]:
    """The ways a user types ``account_id``: E.164, '+', '+' with spaces, national."""
    cc = 1 if account_id.startswith("1") else 2
    rest = account_id[cc:]
    spaced = f"+{account_id[:cc]} {rest[:3]} {rest[3:6]} {rest[6:]}"
    national = rest if account_id.startswith("1") else "0" + rest
    return [account_id, f"+{account_id}", spaced, national]


@st.composite
def recipient(draw: Draw, sender_env: Document, envs: list[Document]) -> str:
    """Who a message goes to: an account (any environment) in some form, an unknown
    number or a name; at the sender's domain, an alias, another environment or nowhere."""
    kind = draw(st.sampled_from(["account"] * 8 + ["unknown", "name"]))
    if kind == "account":
        near = draw(st.sampled_from([[sender_env]] * 3 + [envs]))
        env, account = draw(st.sampled_from(_accounts(near)))
        user = draw(st.sampled_from(forms(account["id"], sender_env["country"])))
    elif kind == "unknown":
        user = draw(st.sampled_from(["15559990000", "+44 20 7946 0999", "4401234567",
                                     "15551239999"]))
    else:
        user = "alice"
    e = int(sender_env["name"][3:])
    where = draw(st.sampled_from([None] * 8 + [*aliases(e), aliases(e)[0],
                                               *(env["domain"] for env in envs),
                                               "nowhere.example"]))
    return user if where is None else f"{user}@{where}"


@st.composite
def script(draw: Draw, envs: list[Document], most: int) -> list[Document]:
    """1-``most`` messages, `SPACING` s apart at least, away from whole minutes."""
    seconds = range(EDGE, 60 - EDGE + 1, SPACING)
    slots = draw(st.lists(st.tuples(st.integers(0, SPAN_MINUTES - 1), st.sampled_from(seconds)),
                          min_size=1, max_size=most, unique=True))
    lines = []
    for index, (minute, second) in enumerate(sorted(slots)):
        env, account = draw(st.sampled_from(_accounts(envs)))
        line = {"id": f"m{index + 1}", "at": minute * 60 + second,
                "from": f"{account['id']}@{env['domain']}",
                "to": draw(recipient(env, envs)), "length": draw(st.sampled_from(LENGTHS))}
        if rarely(draw, 15):
            line["password"] = "wrong-password"
        lines.append(line)
    return lines


# -- whole scenarios ------------------------------------------------------------------

@st.composite
def documents(draw: Draw, max_environments: int = 3, max_accounts: int = 6,
              max_messages: int = 12) -> Document:
    """A scenario document (plain dicts, as YAML would load): see the module docstring.
    ``max_accounts`` bounds all environments together (pjsua2 plays 8 per process)."""
    count = draw(st.integers(1, max_environments))
    start = dt.datetime.fromisoformat(draw(st.sampled_from(STARTS)))
    per_env = max(1, max_accounts // count)
    envs: list[Document] = []
    for e in range(count):
        shared = envs[0]["customers"][0]["accounts"][0]["id"] if envs else None
        envs.append(draw(environment(e, start, shared, draw(st.integers(1, per_env)))))
    return {"name": "generated", "description": "generated by imsim.model.generate",
            "start": start.isoformat(), "propagation_delay": 0, "environments": envs,
            "traffic": {"script": draw(script(envs, max_messages))}}


def scenarios(max_environments: int = 3, max_accounts: int = 6,
              max_messages: int = 12) -> st.SearchStrategy[Scenario]:
    """Validated `Scenario` objects (`documents` through the scenario loader)."""
    return documents(max_environments, max_accounts, max_messages).map(load)


def load(document: Document) -> Scenario:
    """A generated document through the scenario loader (the door every file passes)."""
    return loader.from_document(document, "<generated>")


def dump(document: Document) -> str:
    """A scenario document as YAML text that `imsim.model.scenario.loads` reads back."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.representer.ignore_aliases = lambda *_: True
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def example(seed: int, **bounds: int) -> Document:
    """One document, the same for the same seed: the last of a few that hypothesis
    draws from that seed (its first is always the simplest one)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seeded

    found: list[Document] = []

    @seeded(seed)
    @settings(max_examples=8, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(documents(**bounds))
    def take(document: Document) -> None:
        found.append(document)

    take()
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imsim.model.generate",
                                     description="write one generated scenario as YAML")
    parser.add_argument("--seed", type=int, default=0, help="the same seed, the same scenario")
    parser.add_argument("--out", help="YAML file to write (default: standard output)")
    args = parser.parse_args(argv)
    text = dump(example(args.seed))
    loader.loads(text, "<generated>")   # what is written loads back
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
