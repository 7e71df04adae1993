"""The cyclic garbage collector and large populations.

imsim's models make no reference cycles, and a million accounts are tens of millions
of objects: each full collection walks them all again, for nothing. Loading, building
a world and running it pause the collector (`paused_gc`); what a pause made is handed
back as long-lived (the oldest generation), so the first young collection after it
does not walk it all; the command line lets the interpreter end without its last
collection (`no_collection_at_exit`).
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager

_registered = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside. Objects made before are frozen out of it
    (`gc.freeze`) until the pause ends (unless someone froze some before); the pause
    nests. When it ends, what it made joins the oldest generation with them: left
    young, the first collection after the pause (any allocation may start it) would
    walk every object of a million-account world, and the next would again."""
    collecting, freezing = gc.isenabled(), gc.get_freeze_count() == 0
    gc.disable()
    if freezing:
        gc.freeze()
    try:
        yield
    finally:
        if freezing:
            gc.freeze()     # the young ones too ...
            gc.unfreeze()   # ... back as the oldest generation
        if collecting:
            gc.enable()


def no_collection_at_exit() -> None:
    """At exit, before the interpreter's last collection, freeze every object out of it
    (a million-account run spends half a minute there otherwise). Objects are still
    released as the interpreter tears down; only cycles are left to the OS."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
