"""Hostile and broken scenario files: every one ends in a ScenarioError (one line, with
where and why) or loads; nothing else escapes, nothing hangs.

IMSIM_FUZZ_EXAMPLES=300 runs a longer, randomised search (by hand)."""

import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from imsim.model import scenario
from imsim.model.scenario import ScenarioError
from tests.helpers import HANDBOOK, ROOT

SCENARIOS = sorted(p for p in (ROOT / "scenarios").rglob("*.yaml")
                   if p.stat().st_size < 200_000)
JUNK = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 7, 10**9, 2**63, -(2**63), 10**100,
                     float("nan"), float("inf"), -1e308, 0.1, "", " ", "%", "|", "+",
                     "1e999", "2026-13-45T99:99:99", "\u202e\u0000?", "🙂" * 50, "a" * 5000,
                     [], {}, [None], {"x": 1}, ["|"]]),
    st.text(max_size=40),
    st.integers(),
    st.lists(st.integers(-5, 5), max_size=4),
)
Path_ = tuple[Any, ...]
FUZZ_EXAMPLES = int(os.environ.get("IMSIM_FUZZ_EXAMPLES", "25"))


def paths(node: Any, here: Path_ = ()) -> list[Path_]:
    out = [here] if here else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += paths(value, (*here, index))
    return out


def parent(document: Any, path: Path_) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


def mutate(document: Any, path: Path_, kind: str, junk: Any) -> None:
    holder, last = parent(document, path), path[-1]
    if kind == "delete":
        del holder[last]
    elif kind == "replace":
        holder[last] = junk
    elif kind == "rename" and isinstance(holder, dict):
        holder[str(junk)[:20] or "?"] = holder.pop(last)
    elif kind == "duplicate" and isinstance(holder, list):
        holder.append(holder[last])
    elif kind == "extra" and isinstance(holder, dict):
        holder["unexpected_key"] = junk


def dump(document: Any) -> str:
    from io import StringIO

    out = StringIO()
    yaml = YAML(typ="safe")
    yaml.allow_unicode = True
    yaml.dump(document, out)
    return out.getvalue()


def assert_clean_failure(text: str) -> None:
    started = time.monotonic()
    try:
        scenario.loads(text, source="fuzz.yaml")
    except ScenarioError as err:
        rendered = str(err)
        assert rendered.startswith("fuzz.yaml")
        assert "\n" not in rendered
        assert err.problem
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT)))
@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          derandomize=not os.environ.get("IMSIM_FUZZ_EXAMPLES"),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_scenarios_fail_cleanly(path: Path, data: st.DataObject) -> None:
    document = YAML(typ="safe").load(path.read_text())
    where = data.draw(st.sampled_from(paths(document)))
    kind = data.draw(st.sampled_from(["delete", "replace", "rename", "duplicate", "extra"]))
    mutate(document, where, kind, data.draw(JUNK))
    try:
        text = dump(document)
    except Exception:  # values YAML itself cannot write (e.g. a NUL): nothing to load
        return
    assert_clean_failure(text)


def test_wrong_top_level_shapes():
    for text in ["", "42", "[]", "name: [", "\t", "name: x\nenvironments: 3",
                 "!!python/name:os.system"]:
        assert_clean_failure(text)


def test_aliases_for_sharing_are_fine():
    carol = '\n          - id: "15551230003"'
    text = HANDBOOK.read_text().replace('buddies: ["15551230001"]' + carol,
                                        'buddies: &pals ["15551230001"]' + carol)
    text = text.replace('buddies: ["15551230001"]\n\n', 'buddies: *pals\n\n')
    assert scenario.loads(text).counts()["accounts"] == 3


def test_ten_megabyte_file_is_refused_quickly(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(HANDBOOK.read_text() + "#" + "x" * 10_000_000 + "\n")
    started = time.monotonic()
    with pytest.raises(ScenarioError, match="more than"):
        scenario.load(big)
    assert time.monotonic() - started < 2


def test_deep_nesting_is_refused():
    with pytest.raises(ScenarioError):
        scenario.loads("name: x\nenvironments: " + "[" * 3000 + "]" * 3000)


def test_python_tags_are_not_executed():
    with pytest.raises(ScenarioError):
        scenario.loads("name: !!python/object/apply:os.system ['echo pwned']\n")
