"""The simulator's hot path compiled with mypyc: same source, same results, faster.

The modules in `SOURCES` (the clock, random draws, worker pools, the message path,
arrivals, registrar and presence, softphones, sites, records, the billing engine, its
ledger and rating, and the SimPy engine's platform, whose generator processes mypyc
compiles too) are plain typed Python. ``make native`` (part of
``make venv``) compiles them in place with mypyc, the compiler that ships with mypy:
a ``.so`` beside each ``.py``, and one shared library, ``imsim/native__mypyc*.so``.
Python then imports the compiled modules; without them (no compiler, or
``IMSIM_PURE=1``) it imports the sources and gives the same results, only slower
(tests/test_native.py runs a scenario both ways and compares).

A compiled module older than its source would run old code: when any is, all of
them are passed over for the sources (they are compiled as one group, so it is all
or none), with a warning that says how to rebuild.

`imsim.native` builds them: ``python -m imsim.native build|status|clean``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SOURCES: tuple[str, ...] = (
    "imsim/rules/rating.py",
    "imsim/rules/ledger.py",
    "imsim/rules/message.py",
    "imsim/rules/settle.py",
    "imsim/rules/decide.py",
    "imsim/sim/core.py",
    "imsim/sim/draws.py",
    "imsim/sim/pools.py",
    "imsim/sim/records.py",
    "imsim/sim/site.py",
    "imsim/sim/messaging.py",
    "imsim/sim/arrivals.py",
    "imsim/sim/signalling.py",
    "imsim/sim/agents.py",
    "imsim/sim/reference.py",
)
GROUP = "imsim.native"
PURE = "IMSIM_PURE"


def module_name(source: str) -> str:
    return source.removesuffix(".py").replace("/", ".")


def compiled_files(source: str) -> list[Path]:
    """The compiled module(s) of ``source`` in the tree (one, or none)."""
    path = ROOT / source
    return [path.with_name(path.stem + suffix)
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if path.with_name(path.stem + suffix).exists()]


def shared_libraries() -> list[Path]:
    return sorted((ROOT / "imsim").glob("native__mypyc*"))


def stale() -> list[str]:
    """Sources newer than the compiled code (the shared library holds it; each module's
    own ``.so`` only points there), or with no compiled module while others have one."""
    libraries = shared_libraries()
    if not libraries and not any(compiled_files(s) for s in SOURCES):
        return []
    built = min((p.stat().st_mtime for p in libraries), default=float("-inf"))
    return [s for s in SOURCES
            if not compiled_files(s) or (ROOT / s).stat().st_mtime > built]


def status() -> str:
    if not any(compiled_files(s) for s in SOURCES):
        return "pure Python (not compiled: `make native` compiles the hot path)"
    if os.environ.get(PURE):
        return f"pure Python ({PURE} is set; the compiled modules are passed over)"
    old = stale()
    if old:
        return f"pure Python (compiled modules older than {', '.join(old)}: `make native`)"
    return "compiled (mypyc)"


class _Sources:
    """A meta path finder that loads the hot-path modules from their sources."""

    names = frozenset(module_name(s) for s in SOURCES)

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.names:
            return None
        return importlib.util.spec_from_file_location(name, ROOT / (name.replace(".", "/")
                                                                    + ".py"))


def guard() -> None:
    """Called when `imsim` is imported: pass over compiled modules that are stale (or
    all of them, with ``IMSIM_PURE=1``)."""
    if not any(compiled_files(s) for s in SOURCES):
        return
    old = stale()
    if old:
        warnings.warn(f"imsim: {', '.join(old)} changed after the hot path was compiled; "
                      "running pure Python (same results, slower). `make native` "
                      "recompiles it.", RuntimeWarning, stacklevel=3)
    if (old or os.environ.get(PURE)) and not any(isinstance(f, _Sources)
                                                 for f in sys.meta_path):
        sys.meta_path.insert(0, _Sources())


