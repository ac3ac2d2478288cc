"""How an exception raised while a kernel runs reaches the user: trnsim's own errors and the kernel's own bugs
unchanged, a write into a read-only input as InputWrittenError, `and`/`or` on mask predicates as a UsageError
that says how to combine them, anything else from inside the simulator as an InternalError naming the kernel line.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator

from trnsim.errors import InputWrittenError, InternalError, TrnsimError, UsageError
from trnsim.nki.context import is_machinery


@contextlib.contextmanager
def internal_errors_reported(read_only_inputs: bool = False) -> Iterator[None]:
    """A bare exception raised inside the simulator becomes an InternalError naming the kernel line.

    Exceptions from the kernel's own code (its own bugs) and trnsim's own errors pass through unchanged. With
    read-only inputs, numpy's refusal to write a write-protected array is the kernel writing an input.
    """
    try:
        yield
    except TrnsimError:
        raise
    except Exception as err:
        if isinstance(err.__cause__, TrnsimError):
            raise  # an exception NKI's simulator raises (e.g. IndexError), on purpose, from trnsim's own error
        frames = traceback.extract_tb(err.__traceback__)
        if read_only_inputs and isinstance(err, ValueError) and "read-only" in str(err):
            user = next((f for f in reversed(frames) if not is_machinery(f.filename)), None)
            raise InputWrittenError(
                "the kernel writes one of its input arguments, which this launch passed read-only (its HBM "
                "tensors share the argument arrays' memory); launch it without read_only_inputs",
                f"{user.filename}:{user.lineno}" if user else None,
                rule="read-only-input",
            ) from err
        if frames and not is_machinery(frames[-1].filename) and "truth value of an array" in str(err):
            raise truth_value_error(frames[-1]) from err
        if not frames or not is_machinery(frames[-1].filename):
            raise
        user = next((f for f in reversed(frames) if not is_machinery(f.filename)), None)
        where = f"{user.filename}:{user.lineno}" if user else None
        inner = frames[-1]
        raise InternalError(
            f"internal simulator error ({type(err).__name__}: {err}) in {inner.name} "
            f"({inner.filename.rsplit('/', 1)[-1]}:{inner.lineno}) while running this kernel line; "
            "please report it with the kernel",
            where,
            rule="internal",
        ) from err


def truth_value_error(frame: traceback.FrameSummary) -> UsageError:
    """numpy's "truth value of an array is ambiguous", raised on a kernel line: almost always `and`/`or`/`not` on
    mask predicates. NKI 0.1 evaluated kernels in Python too (NKI docs, migration guide), so `a and b` there is
    Python's: `b` alone when `a`'s predicate object is truthy. trnsim refuses rather than drop a condition."""
    return UsageError(
        "a comparison of index expressions (nl.arange/nl.mgrid) is an array of conditions with no single truth "
        "value, so Python's `and`, `or`, `not` and `if` cannot combine or test it: combine mask predicates with "
        "`&`, `|` and `~`, e.g. mask=(ix < n) & (iy < m), as NKI's masking docs write them",
        f"{frame.filename}:{frame.lineno}",
        rule="mask",
    )
