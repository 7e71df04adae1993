"""`imsim.model.generate`: every generated document passes the scenario loader, the same seed
gives the same YAML, and together the examples cover the dimensions issue 15 lists."""

import datetime as dt
import json
import subprocess
import sys

from imsim.model import generate, scenario
from tests.helpers import ROOT

SEEDS = range(80)


def test_same_seed_same_yaml_and_it_loads_back(tmp_path):
    out = tmp_path / "g.yaml"
    argv = [sys.executable, "-m", "imsim.model.generate", "--seed", "7", "--out", str(out)]
    assert subprocess.run(argv, cwd=ROOT, timeout=60).returncode == 0
    assert out.read_text() == generate.dump(generate.example(7))
    assert scenario.load(out).name == "generated"
    assert generate.dump(generate.example(8)) != out.read_text()


def test_the_examples_cover_the_dimensions():
    seen: set[str] = set()
    for seed in SEEDS:
        document = generate.example(seed)
        generate.load(document)   # valid: the loader's door
        seen |= features(document)
    assert seen >= {
        "3 environments", "pattern %", "pattern _", "pattern exact", "alias policy",
        "unit size", "no translation", "outgoing_aaa off", "local_lookup off",
        "no wildcard vendor rate", "missing connection", "forbidden rate",
        "effective during the run", "effective in the future", "effective in the past",
        "off-peak over midnight", "credit customer", "blocked account", "bundle",
        "incoming charge", "product without messaging", "shared number", "buddies",
        "to an alias domain", "to another environment", "to an unknown domain",
        "'+' with spaces", "national form", "unknown number", "wrong password",
        "messaging disabled"}


def features(document: dict) -> set[str]:
    text = json.dumps(document)
    envs = document["environments"]
    found = {f"{len(envs)} environments"}
    for env in envs:
        found |= _environment(env, document["start"])
    for line in document["traffic"]["script"]:
        found |= _message(line, envs)
    numbers = [a["id"] for e in envs for c in e["customers"] for a in c["accounts"]]
    if len(numbers) != len(set(numbers)):
        found.add("shared number")
    if '"buddies"' in text:
        found.add("buddies")
    return found


def _environment(env: dict, start: str) -> set[str]:
    found = set()
    for policy in env["service_policies"]:
        pattern = policy["recipient_domain_pattern"]
        found.add("pattern %" if pattern == "%" else "pattern _" if "_" in pattern
                  else "pattern exact" if "%" not in pattern else "pattern prefix")
        found |= {"alias policy"} if policy["name"].startswith("alias") else set()
        found |= {"unit size"} if "billing_unit_size" in policy else set()
        found |= {"no translation"} if not policy["userpart_e164_translation"] else set()
        found |= {"outgoing_aaa off"} if not policy["outgoing_aaa"] else set()
        found |= {"local_lookup off"} if not policy["local_lookup"] else set()
    vendor, customer = env["tariffs"]
    if vendor["rates"][0]["rate_codes"] != ["|"]:
        found.add("no wildcard vendor rate")
    if len(env["vendors"][0]["connections"]) < len(env["service_policies"]):
        found.add("missing connection")
    for rate in customer["rates"]:
        found |= {"forbidden rate"} if rate.get("status") == "forbidden" else set()
        when = rate.get("effective_from")
        if when is not None:
            minutes = _minutes(when, start)
            found.add("effective in the past" if minutes < 0 else
                      "effective during the run" if minutes <= generate.SPAN_MINUTES else
                      "effective in the future")
    for period in customer.get("off_peak", ()):
        if period["start"] > period["end"]:
            found.add("off-peak over midnight")
    for customer_ in env["customers"]:
        found |= {"credit customer"} if customer_["balance_model"] == "credit" else set()
        for account in customer_["accounts"]:
            found |= {"blocked account"} if account.get("blocked") else set()
            found |= {{"Bundle": "bundle", "Incoming": "incoming charge",
                       "Voice only": "product without messaging"}.get(account["product"], "")}
    if "messaging" not in env["config_server"]["service_types"]:
        found.add("messaging disabled")
    return found - {""}


def _minutes(when: str, start: str) -> float:
    moment, begin = dt.datetime.fromisoformat(when), dt.datetime.fromisoformat(start)
    return (moment - begin).total_seconds() / 60


def _message(line: dict, envs: list[dict]) -> set[str]:
    user, _, domain = line["to"].partition("@")
    sender_domain = line["from"].split("@")[1]
    found = set()
    if domain.endswith(".alias.test"):
        found.add("to an alias domain")
    elif domain and domain != sender_domain and domain in {e["domain"] for e in envs}:
        found.add("to another environment")
    elif domain == "nowhere.example":
        found.add("to an unknown domain")
    if user.startswith("+") and " " in user:
        found.add("'+' with spaces")
    if user.startswith("5") or user.startswith("0"):
        found.add("national form")
    if user in ("15559990000", "+44 20 7946 0999", "4401234567", "15551239999", "alice"):
        found.add("unknown number")
    if "password" in line:
        found.add("wrong password")
    return found
