"""The hot path compiled with mypyc (`imsim.native`) gives the results of its sources.

A run in this process (compiled, when ``make native`` compiled it) and the same run
in a child process with ``IMSIM_PURE=1`` (the sources) must give the same summary
and the same frames. And a stale build is passed over, never run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imsim import _hotpath, sim
from imsim.model import scenario

ROOT = Path(__file__).resolve().parent.parent
FAST_LANE = ("records: {messages: all, xdrs: true}", "records: {messages: failed, xdrs: false}")


def digest(name: str, fast_lane: bool = False, engine: str | None = None) -> dict[str, object]:
    """The summary (without wall-clock time) and a hash of every frame of a run (on
    ``engine``, default the scenario's)."""
    text = (ROOT / "scenarios" / name).read_text()
    if fast_lane:
        text = text.replace(*FAST_LANE)
    result = sim.run(scenario.loads(text), engine=engine)
    summary = {k: v for k, v in result.summary.items() if k != "runtime_s"}
    frames = {f: hashlib.sha256(getattr(result, f).to_csv(index=False).encode()).hexdigest()
              for f in ("xdrs", "messages", "presence", "sip", "utilization")}
    return {"summary": summary, "frames": frames}


def pure(name: str, fast_lane: bool = False, engine: str | None = None) -> dict[str, object]:
    code = ("import json, imsim.sim.messaging as m, imsim.sim.reference as r\n"
            "assert m.__file__.endswith('.py') and r.__file__.endswith('.py')\n"
            "from tests.test_native import digest\n"
            f"print(json.dumps(digest({name!r}, {fast_lane!r}, {engine!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, _hotpath.PURE: "1"}, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


compiled = pytest.mark.skipif(not _hotpath.status().startswith("compiled"),
                              reason=f"hot path: {_hotpath.status()}")


@compiled
@pytest.mark.parametrize("name, fast_lane", [("handbook.yaml", False),
                                             ("planning.yaml", False),
                                             ("planning.yaml", True),
                                             ("planning/bundle.yaml", False)])
def test_compiled_runs_give_the_results_of_the_sources(name: str, fast_lane: bool) -> None:
    import imsim.sim.messaging as m

    assert not m.__file__.endswith(".py")   # this process runs the compiled module
    assert digest(name, fast_lane) == pure(name, fast_lane)


@compiled
@pytest.mark.parametrize("name", ["handbook.yaml", "planning.yaml"])
def test_the_compiled_simpy_engine_gives_the_results_of_its_sources(name: str) -> None:
    import imsim.sim.reference as r

    assert not r.__file__.endswith(".py")   # this process runs the compiled module
    assert digest(name, engine="simpy") == pure(name, engine="simpy")


def fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: list[str],
              library: bool = True) -> None:
    """Sources under ``tmp_path``, compiled modules for ``built``, all a second old."""
    monkeypatch.setattr(_hotpath, "ROOT", tmp_path)
    suffix = _hotpath.importlib.machinery.EXTENSION_SUFFIXES[0]
    old = time.time() - 10
    for source in _hotpath.SOURCES:
        path = tmp_path / source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        os.utime(path, (old, old))
        if source in built:
            path.with_name(path.stem + suffix).write_text("")
    if library:
        (tmp_path / "imsim" / f"native__mypyc{suffix}").write_text("")


def test_a_fresh_build_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_hotpath.PURE, raising=False)
    fake_tree(tmp_path, monkeypatch, list(_hotpath.SOURCES))
    assert _hotpath.stale() == []
    assert _hotpath.status() == "compiled (mypyc)"


def test_a_source_edited_after_the_build_makes_it_stale(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tree(tmp_path, monkeypatch, list(_hotpath.SOURCES))
    (tmp_path / "imsim/sim/site.py").write_text("# edited\n")
    assert _hotpath.stale() == ["imsim/sim/site.py"]
    assert "make native" in _hotpath.status()


def test_a_module_missing_from_the_build_makes_it_stale(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tree(tmp_path, monkeypatch, list(_hotpath.SOURCES[1:]))
    assert _hotpath.stale() == [_hotpath.SOURCES[0]]
    fake_tree(tmp_path / "other", monkeypatch, list(_hotpath.SOURCES), library=False)
    assert _hotpath.stale() == list(_hotpath.SOURCES)


def test_no_build_is_pure_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tree(tmp_path, monkeypatch, [], library=False)
    assert _hotpath.stale() == []
    assert _hotpath.status().startswith("pure Python (not compiled")


def test_a_stale_build_is_passed_over_in_a_new_process(tmp_path: Path) -> None:
    """The finder `guard` installs loads every hot-path module from its source."""
    code = ("import sys, warnings\n"
            "from imsim import _hotpath\n"
            "_hotpath.stale = lambda: ['imsim/sim/site.py']\n"
            "_hotpath.compiled_files = lambda source: ['x.so']\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            "    _hotpath.guard()\n"
            "import imsim.sim.site, imsim.rules.decide\n"
            "print(imsim.sim.site.__file__, imsim.rules.decide.__file__, len(seen))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != _hotpath.PURE})
    assert out.returncode == 0, out.stderr
    site, billing, warned = out.stdout.split()
    assert site.endswith("imsim/sim/site.py") and billing.endswith("imsim/rules/decide.py")
    assert warned == "1"
