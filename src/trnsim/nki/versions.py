"""Calls written for earlier NKI releases: they run, and warn once naming the release that changed them.

Kernels in the wild target several NKI versions (NKI release notes, release-notes/components/nki.rst):
Beta (Neuron 2.20-2.26, `neuronxcc.nki`), 0.1.0 (2.27), 0.2.0 (2.28), 0.3.0 (2.29) ... 0.6.0 (2.32).
Where an older call means something the current API cannot express, the current meaning wins and the
call is an error that says so. `set_api_version("beta")` declares that a kernel was written for an older
release: its calls then run without the warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from trnsim import dtypes
from trnsim.errors import DtypeError, TrnsimWarning, UsageError
from trnsim.nki.context import user_location

VERSIONS = ("beta", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6")
CURRENT = "0.6"


class NkiVersionWarning(TrnsimWarning):
    """A kernel used a call from an earlier NKI release; it ran with that release's meaning."""


@dataclass(frozen=True)
class Change:
    until: str  # the last release where the old form was current
    changed_in: str  # the release (and Neuron SDK) that changed it
    now: str  # what to write today


# (function, parameter) -> the change; one line per documented change, with where the notes say it.
CHANGES: dict[tuple[str, str], Change] = {
    # NKI 0.1.0 notes: "all nki.isa APIs removed dtype and mask support"; dst decides the output dtype.
    ("nki.isa.tensor_copy", "dtype"): Change("beta", "NKI 0.1.0 (Neuron 2.27)", "drop dtype=: dst's dtype decides"),
    # NKI migration guide: `platform_target` is deprecated, "raises an error in NKI 0.3.0".
    ("nki.jit", "platform_target"): Change(
        "0.2", "NKI 0.3.0 (Neuron 2.29)", "set NEURON_PLATFORM_TARGET_OVERRIDE or pass target= to the launch"
    ),
}

_declared = CURRENT
_warned: set[tuple[str, str]] = set()


def set_api_version(version: str) -> None:
    """Declare the NKI release kernels were written for (one of VERSIONS); older-call warnings stop for it."""
    global _declared
    if version not in VERSIONS:
        raise UsageError(f"unknown NKI version {version!r}; known: {', '.join(VERSIONS)}")
    _declared = version


def older_call(function: str, parameter: str) -> None:
    """Warn once per (function, parameter) that the call belongs to an earlier release."""
    change = CHANGES[(function, parameter)]
    if VERSIONS.index(_declared) <= VERSIONS.index(change.until) or (function, parameter) in _warned:
        return
    _warned.add((function, parameter))
    warnings.warn(
        NkiVersionWarning(
            f"{user_location()}: {function}({parameter}=...) is NKI {change.until} API, changed in "
            f"{change.changed_in}; ran it with its {change.until} meaning. Today: {change.now}. "
            f"(trnsim.nki.versions.set_api_version({change.until!r}) silences this.)"
        ),
        stacklevel=3,
    )


def removed_dtype(function: str, dst: Any, dtype: Any) -> None:
    """`dtype=` on an explicit-destination call (NKI Beta): the current meaning wins, dst's dtype decides.

    Where the two agree nothing changes; where they differ the value is written in dst's dtype (as NKI 0.1.0
    and later define it), and the warning says so.
    """
    if dtype is None:
        return
    loc = user_location()
    try:
        want = dtypes.resolve(dtype)
    except DtypeError as err:
        raise DtypeError(err.bare_message, loc, rule="dtype") from None
    older_call(function, "dtype")
    if want != dst.dtype:
        warnings.warn(
            NkiVersionWarning(
                f"{loc}: {function}(dtype={dtypes.name(want)}) differs from dst's {dtypes.name(dst.dtype)}; "
                "the output is written as dst's dtype (NKI 0.1.0 and later)"
            ),
            stacklevel=3,
        )


def declared_before(version: str) -> bool:
    """True if kernels are declared (set_api_version) for a release older than `version`: where a call's meaning
    changed in `version`, they get the older meaning; by default (CURRENT) the current meaning wins."""
    return VERSIONS.index(_declared) < VERSIONS.index(version)
