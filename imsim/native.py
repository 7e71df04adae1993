"""Compile the simulator's hot path with mypyc, or say whether it is compiled.

    python -m imsim.native build     # compile in place (needs mypy and a C compiler)
    python -m imsim.native build --if-needed   # only when not compiled or stale
    python -m imsim.native status    # compiled, stale, or pure Python
    python -m imsim.native clean     # remove the compiled files

What is compiled, and how a stale build is passed over: `imsim._hotpath`.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from imsim._hotpath import GROUP, ROOT, SOURCES, compiled_files, shared_libraries, status


def build() -> None:
    """Compile `SOURCES` in place (mypyc, through setuptools' build_ext --inplace)."""
    from mypyc.build import mypycify
    from setuptools import setup

    clean()
    here = Path.cwd()
    os.chdir(ROOT)
    try:
        with warnings.catch_warnings():   # setuptools' notes on pyproject.toml
            warnings.simplefilter("ignore")
            setup(name="imsim-native", ext_modules=mypycify(list(SOURCES), group_name=GROUP),
                  script_args=["--quiet", "build_ext", "--inplace", "--build-temp",
                               "build/native"])
    finally:
        os.chdir(here)
    for path in shared_libraries():   # built now (the copy kept the build's time)
        os.utime(path)


def clean() -> None:
    for source in SOURCES:
        for path in compiled_files(source):
            path.unlink()
    for path in shared_libraries():
        path.unlink()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    if command == "build":
        if "--if-needed" not in args or not status().startswith("compiled"):
            build()
    elif command == "clean":
        clean()
    elif command != "status":
        print(f"usage: python -m imsim.native [build [--if-needed]|status|clean], "
              f"not {command!r}",
              file=sys.stderr)
        return 2
    print(f"imsim hot path: {status()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
