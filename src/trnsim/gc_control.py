"""The cyclic garbage collector around trnsim's bursts of long-lived objects.

A cold model estimate imports torch, transformers and torch.export's stack, builds a model on the meta device and
captures its graph: about a million objects, nearly all of which live as long as the process (modules, classes,
functions, the model). CPython's generational collector (3.11-3.13) runs a full collection each time the objects
that reached its oldest generation have grown by a quarter, and a full collection walks every object: in a cold
Llama-3.1-405B estimate nine of them cost 1.3 CPU s of 8 and freed some 4,000 objects. Here collections wait
until a burst of such objects has been made (gc.disable), and then skip them (gc.freeze) while the work runs.

A collection only frees objects that nothing reachable refers to, so when it runs changes no value. The one place
the simulator sees when an object dies is a tile's bytes coming free (sim/memory.py frees them when its last
reference goes, and collects by itself before it reports a capacity error); no tile exists while collections are
paused here (imports, model builds), and only objects that existed before an estimate began are frozen, so the
tiles an estimate makes are collected as before (and library kernels leave no tile in a cycle:
tests/kernels/test_no_tile_cycles.py). tests/test_gc_control.py checks estimates are unchanged.
FrontEnd and older_objects_frozen leave the collector as they found it, and do nothing where collections are off,
the caller has frozen objects itself (a caller's frozen objects are never unfrozen here), or off the main thread.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from types import TracebackType

# Whether objects frozen here are frozen now. gc.get_freeze_count() walks every frozen object (40 ms for the 600k
# a CLI estimate freezes), so it is asked only when this says no.
_frozen_here = False


def _ours() -> bool:
    """Whether the collector is in its default state (on, nothing frozen) and this is the main thread: a freeze
    made on a worker thread (the serving step grid's thread pool) would also freeze what the other threads' estimates
    are making at that moment."""
    return (
        threading.current_thread() is threading.main_thread()
        and gc.isenabled()
        and not _frozen_here
        and not gc.get_freeze_count()
    )


def _freeze() -> None:
    global _frozen_here
    gc.freeze()
    _frozen_here = True


def _unfreeze() -> None:
    global _frozen_here
    gc.unfreeze()
    _frozen_here = False


class FrontEnd:
    """`with FrontEnd() as front: <imports, model build>; front.settle(); <the work>`: no automatic collections
    until settle(), which freezes every object there is then (the imports, the model: later collections skip them)
    and resumes collections; on leaving, the frozen objects are unfrozen. For a command whose process keeps what
    its front end made (the CLI's estimate)."""

    def __init__(self) -> None:
        self._active = False
        self._settled = False

    def __enter__(self) -> FrontEnd:
        self._active = _ours()
        if self._active:
            gc.disable()
        return self

    def settle(self) -> None:
        if self._active and not self._settled:
            self._settled = True
            _freeze()
            gc.enable()

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if not self._active:
            return
        if self._settled:
            _unfreeze()
        else:
            gc.enable()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collections inside (a burst of objects that stay: importing a model family's code and building
    the model); collections resume on leaving, where the next full one walks them once instead of every full
    collection the burst would have set off on the way. Nothing happens if collections are off already."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextlib.contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Inside, automatic collections skip the objects that existed on entry (gc.freeze; gc.unfreeze on leaving),
    so a full collection walks only the objects made inside; those are collected as usual."""
    if not _ours():
        yield
        return
    _freeze()
    try:
        yield
    finally:
        _unfreeze()
