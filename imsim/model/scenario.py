"""Scenario files: YAML in the handbook's words -> a validated `Scenario`.

Every problem ends in one `ScenarioError` naming the file, the YAML path and line,
the handbook step the block belongs to, and what to write instead. Past this door
the model trusts its data.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import io
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from imsim.model import references
from imsim.model.config import Environment, Frozen
from imsim.model.memory import paused_gc
from imsim.model.population import Generate
from imsim.model.problems import Path_, ScenarioError, lc_line, line_of
from imsim.model.replay import replay
from imsim.model.settings import SimSettings
from imsim.model.setup import SetupAction
from imsim.model.traffic import Traffic
from imsim.model.units import Seconds

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
DEFAULT_START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


class Expectation(Frozen):
    """What a scripted test message should get: its final code, step and billing."""

    code: int = Field(ge=100, le=699)
    step: int | None = Field(None, ge=1, le=9)
    billed: bool | None = None


class Scenario(Frozen):
    """A whole scenario: environments (the nine steps each), traffic, timing."""

    name: str = Field(min_length=1)
    description: str = ""
    start: dt.datetime = DEFAULT_START
    propagation_delay: Seconds = 300.0
    environments: tuple[Environment, ...] = Field(min_length=1)
    traffic: Traffic = Traffic()
    sim: SimSettings = SimSettings()
    setup: tuple[SetupAction, ...] = ()
    expected: dict[str, Expectation] = {}
    initial: tuple[Environment, ...] | None = Field(None, exclude=True)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2026-01-05T09:00:00+00:00")
        return value

    def environment(self, name: str) -> Environment:
        return next(e for e in self.environments if e.name == name)

    def home_of(self, account_id: str, domain: str | None = None) -> Environment | None:
        """The environment an account belongs to (by domain when given)."""
        for env in self.environments:
            if (domain is None or env.domain == domain) and any(
                    a.id == account_id for c in env.customers for a in c.accounts):
                return env
        return None

    def counts(self) -> dict[str, int]:
        envs = self.environments
        return {
            "environments": len(envs),
            "service_policies": sum(len(e.service_policies) for e in envs),
            "tariffs": sum(len(e.tariffs) for e in envs),
            "rates": sum(len(t.rates) for e in envs for t in e.tariffs),
            "vendor_connections": sum(len(v.connections) for e in envs for v in e.vendors),
            "products": sum(len(e.products) for e in envs),
            "customers": sum(len(e.customers) for e in envs),
            "accounts": sum(len(c.accounts) for e in envs for c in e.customers),
            "scripted_messages": len(self.traffic.script),
        }


# -- loading --------------------------------------------------------------------------

def load(source: str | Path) -> Scenario:
    """Load and validate a scenario file."""
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(f"file is {size} bytes, more than the {MAX_FILE_BYTES} allowed",
                                source=str(path), fix="split the scenario or generate accounts")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError("no such file", source=str(path),
                            fix="give the path of a scenario YAML file") from None
    except IsADirectoryError:
        raise ScenarioError("is a folder", source=str(path),
                            fix="give the path of a scenario YAML file in it") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                            source=str(path), fix="save the file as UTF-8") from None
    except OSError as exc:
        raise ScenarioError(f"cannot read the file ({exc})", source=str(path)) from None
    return loads(text, source=str(path))


def loads(text: str, source: str = "<scenario>") -> Scenario:
    """Validate a scenario given as YAML text."""
    document = parse_yaml(text, source)
    return from_document(document, source)


def parse_yaml(text: str, source: str = "<scenario>") -> Any:
    if len(text) > MAX_FILE_BYTES:
        raise ScenarioError("document too large", source=source)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(io.StringIO(text))
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"not valid YAML: {problem}", source=source, line=line,
                            fix="check indentation, colons and quotes on that line") from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise ScenarioError(f"not valid YAML: {exc}", source=source) from None
    if not isinstance(document, dict):
        raise ScenarioError("a scenario is a mapping with name, environments and traffic",
                            source=source, line=1, fix="start the file with 'name: ...'")
    _check_aliases(document, source)
    return document


def _check_aliases(document: Any, source: str, budget: int = 1_000_000) -> None:
    """Refuse documents whose aliases expand beyond ``budget`` nodes (billion laughs) or
    that nest deeper than any scenario does."""
    stack, seen = [(document, 0)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > budget:
            raise ScenarioError(f"the document expands to more than {budget} nodes "
                                "(aliases referring to aliases?)", source=source,
                                fix="write the values out instead of nesting aliases")
        if depth > MAX_DEPTH:
            raise ScenarioError(f"the document nests deeper than {MAX_DEPTH} levels",
                                source=source, line=lc_line(node),
                                fix="a scenario needs only a few levels of nesting")
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)


def from_document(document: Any, source: str = "<scenario>") -> Scenario:
    with paused_gc():   # generated populations: millions of objects, no cycles
        return _from_document(document, source)


def _from_document(document: Any, source: str) -> Scenario:
    plain = _plain(document)
    generated = _generate_blocks(plain, document, source)
    try:
        scenario = Scenario.model_validate(plain)
    except ValidationError as exc:
        raise _from_validation(exc, document, source) from None
    scenario = _with_generated(scenario, generated)
    if "initial" in document:
        raise ScenarioError("unknown key 'initial'", source=source, path=("initial",),
                            line=line_of(document, ("initial",)), fix="remove it")
    if scenario.setup:
        scenario = _after_setup(scenario, document, source)
    references.check(scenario, document, source)
    return scenario


def _after_setup(scenario: Scenario, document: Any, source: str) -> Scenario:
    """The scenario with ``environments`` as the journal leaves them; ``initial`` keeps
    the state before it (for `imsim.model.replay.timeline`)."""
    references.check_journal(scenario, document, source)
    done = replay(scenario.environments, scenario.setup)
    return scenario.model_copy(update={"environments": done.final(),
                                       "initial": scenario.environments})


# -- generated populations (imsim.model.population) ------------------------------------------

Generated = list[tuple[int, int, Generate]]


def _generate_blocks(plain: Any, document: Any, source: str) -> Generated:
    """Take every customer's ``generate:`` block out of ``plain`` and validate it."""
    found: Generated = []
    envs = plain.get("environments") if isinstance(plain, dict) else None
    for e, env in enumerate(envs if isinstance(envs, list) else []):
        customers = env.get("customers") if isinstance(env, dict) else None
        for c, customer in enumerate(customers if isinstance(customers, list) else []):
            if isinstance(customer, dict) and "generate" in customer:
                where: Path_ = ("environments", e, "customers", c, "generate")
                found.append((e, c, _generate(customer.pop("generate"), where, document,
                                              source)))
    return found


def _generate(block: Any, where: Path_, document: Any, source: str) -> Generate:
    try:
        return Generate.model_validate(block)
    except ValidationError as exc:
        error: dict[str, Any] = dict(exc.errors(include_url=False)[0])
        path = (*where, *resolve_path(block, error["loc"]))
        raise ScenarioError(_problem(error), source=source, path=path,
                            line=line_of(document, path), step=9,
                            fix=_fix(error, path)) from None


def _with_generated(scenario: Scenario, generated: Generated) -> Scenario:
    if not generated:
        return scenario
    envs = list(scenario.environments)
    for e, c, block in generated:
        customers = list(envs[e].customers)
        customers[c] = customers[c].model_copy(
            update={"accounts": (*customers[c].accounts, *block.accounts())})
        envs[e] = envs[e].model_copy(update={"customers": tuple(customers)})
    return scenario.model_copy(update={"environments": tuple(envs)})


def _plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts/lists (pydantic wants those)."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, dt.datetime):  # ruamel's TimeStamp -> a plain datetime
        return dt.datetime.fromisoformat(node.isoformat())
    return node


# -- error reporting ------------------------------------------------------------------

def _from_validation(exc: ValidationError, document: Any, source: str) -> ScenarioError:
    error: dict[str, Any] = dict(exc.errors(include_url=False)[0])
    path = resolve_path(document, error["loc"])
    return ScenarioError(_problem(error), source=source, path=path,
                         line=line_of(document, path), step=step_of(document, path),
                         fix=_fix(error, path))


def resolve_path(document: Any, loc: tuple[Any, ...]) -> Path_:
    """Keep the parts of a pydantic ``loc`` that are real keys/indexes of the document."""
    node, path = document, []
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("action") == part:
            continue   # the journal's union tag (the entry's action), not a key
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif isinstance(part, str) and not isinstance(node, dict | list) or part == "from_":
            path.append("from" if part == "from_" else part)
            break
        elif isinstance(part, str) and isinstance(node, dict) and "[" not in part:
            path.append(part)
            break
    return tuple(path)


_SECTION_STEPS = {"config_server": 1, "service_policies": 2, "vendors": 5, "products": 8,
                  "customers": 9, "traffic": 9, "generate": 9}


def step_of(document: Any, path: Path_) -> int | None:
    """The handbook step a YAML path belongs to."""
    for index, part in enumerate(path):
        if part == "tariffs":
            return _tariff_step(document, path[: index + 2], "rates" in path[index:])
        if part in _SECTION_STEPS:
            return _SECTION_STEPS[str(part)]
    return None


def _tariff_step(document: Any, tariff_path: Path_, in_rates: bool) -> int:
    node = document
    for part in tariff_path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    vendor = isinstance(node, dict) and node.get("applied_to") == "vendor"
    if vendor:
        return 4 if in_rates else 3
    return 7 if in_rates else 6


def _problem(error: dict[str, Any]) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if kind == "missing":
        return "required but missing"
    if kind == "value_error":
        return _said(msg)[0]
    return msg[0].lower() + msg[1:] if msg else kind


def _said(msg: str) -> tuple[str, str | None]:
    """A validator's message as (problem, fix): "X is wrong: write Y" says both."""
    text = msg.removeprefix("Value error, ")
    problem, _, fix = text.partition(": write ")
    return problem, f"write {fix}" if fix else None


_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false",
          "decimal": "a number", "string": "a text", "list": "a list", "dict": "a mapping",
          "model": "a mapping", "tuple": "a list", "datetime": "an ISO date-time with zone",
          "time": "a time such as '19:00'"}


_PATTERNS = {
    "id": "write the account's E.164 number, digits only, e.g. 15551230001",
    "currency": "write the ISO 4217 code in three capital letters, e.g. USD",
    "country": "write the ISO 3166 region in two capital letters, e.g. US",
}


def _near(key: str) -> str | None:
    """The field name of the scenario's objects a misspelt key is close to, if any."""
    found = difflib.get_close_matches(key, _field_names(), n=1, cutoff=0.8)
    return found[0] if found else None


@functools.cache
def _field_names() -> list[str]:
    """Every key a scenario's objects take (aliases as written, e.g. 'from')."""
    names: set[str] = set()
    models: list[type[Frozen]] = [Frozen]
    while models:
        model = models.pop()
        models += model.__subclasses__()
        names.update(info.alias or name for name, info in model.model_fields.items())
    return sorted(names)


def _fix(error: dict[str, Any], path: Path_) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        near = _near(str(error["loc"][-1]))
        return (f"did you mean '{near}'? Else remove it" if near else
                "remove it or check its spelling against the handbook field names")
    if kind == "missing":
        return f"add '{path[-1] if path else error['loc'][-1]}:' here"
    if kind == "literal_error" or kind == "enum":
        return f"write one of {ctx.get('expected', 'the allowed values')}"
    if kind == "value_error" and _said(error["msg"])[1]:
        return str(_said(error["msg"])[1])
    if kind == "string_pattern_mismatch" and path and path[-1] in _PATTERNS:
        return _PATTERNS[str(path[-1])]
    if kind == "decimal_max_places":
        return f"write at most {ctx.get('decimal_places')} decimal places"
    if kind == "decimal_max_digits":
        return f"write at most {ctx.get('max_digits')} digits in all"
    if kind == "too_short":
        return f"write at least one entry ({ctx.get('min_length', 1)} or more)"
    if "ge" in ctx:
        return f"write a value of {ctx['ge']} or more"
    if "gt" in ctx:
        return f"write a value greater than {ctx['gt']}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"write {_KINDS.get(kind.split('_')[0], 'a ' + kind.split('_')[0])} here"
    return "correct the value"

