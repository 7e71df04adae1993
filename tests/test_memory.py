"""The cyclic garbage collector: paused while loading, building and running (and the
pause nests); no last collection at the command line's exit."""

from __future__ import annotations

import gc
import subprocess
import sys

from imsim.model import scenario
from imsim.model.memory import paused_gc


def test_gc_is_paused_inside_and_restored_after() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_what_a_pause_made_leaves_it_long_lived() -> None:
    # young, the first collection after the pause would walk all of it (a whole world)
    with paused_gc():
        made = [[n] for n in range(1000)]
    young = {id(o) for o in gc.get_objects(generation=0)}
    old = {id(o) for o in gc.get_objects(generation=2)}
    assert id(made) not in young and id(made[0]) not in young
    assert id(made) in old and id(made[-1]) in old


def test_loading_leaves_the_collector_as_it_found_it() -> None:
    frozen = gc.get_freeze_count()
    scenario.load("scenarios/handbook.yaml")
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_the_command_line_skips_the_last_collection() -> None:
    # atexit runs handlers last-registered first: this one runs after imsim's
    code = ("import atexit, gc\n"
            "atexit.register(lambda: print('frozen' if gc.get_freeze_count() else 'not'))\n"
            "from imsim.cli import main\n"
            "main(['validate', 'scenarios/handbook.yaml'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[-1] == "frozen"
