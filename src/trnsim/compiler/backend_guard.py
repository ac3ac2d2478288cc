"""Notice when Dynamo stops compiling a function (its recompile limit) and runs it eagerly from then on.

Dynamo only logs that (`torch._dynamo hit config.recompile_limit (8)`) and then runs the function on the host,
so trnsim's profiles would silently miss that work. A filter on Dynamo's logger turns each hit into one
TrnsimWarning per function, saying the limit and how to raise it, and every profile trnsim records while such a
function stays uncompiled (until torch._dynamo.reset()) lists it in `GraphProfile.eager_fallback`."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trnsim.errors import TrnsimWarning
from trnsim.runtime.graph_profile import GraphProfile
from trnsim.runtime.last_profile import add_profile_annotator, last_profile

_DYNAMO_LOGGER = "torch._dynamo.convert_frame"
_HIT_PREFIX = "torch._dynamo hit config."


@dataclass
class EagerFallback:
    function: str  # "'forward' (file.py:123)", as Dynamo names it
    limit_name: str  # recompile_limit or accumulated_recompile_limit
    limit: int
    # a no-op compile-start callback registered at the hit: torch._dynamo.reset() (which forgets the skipped
    # function, so Dynamo compiles it afresh) clears Dynamo's callbacks, and with it this marker
    marker: Callable[[Any], None]

    def live(self) -> bool:
        """Still run eagerly: no torch._dynamo.reset() since Dynamo gave up on the function."""
        from torch._dynamo.callback import callback_handler

        return any(c is self.marker for c in callback_handler.start_callbacks)

    def note(self) -> str:
        return (
            f"{self.function} runs eagerly on the host, not on the simulated chip: Dynamo hit "
            f"torch._dynamo.config.{self.limit_name} ({self.limit}); its work is missing from this profile"
        )


_fallbacks: list[EagerFallback] = []


def eager_fallbacks() -> list[EagerFallback]:
    """Functions Dynamo gave up compiling (its recompile limit) that still run eagerly."""
    return [f for f in _fallbacks if f.live()]


def _record_hit(limit_name: str, limit: int, function: str) -> None:
    _fallbacks[:] = [f for f in _fallbacks if f.live()]  # forget those a torch._dynamo.reset() ended
    if any(f.function == function for f in _fallbacks):
        return
    from torch._dynamo.callback import callback_handler

    def marker(_: Any) -> None:
        return None

    callback_handler.register_start_callback(marker)
    hit = EagerFallback(function, limit_name, limit, marker)
    _fallbacks.append(hit)
    warnings.warn(
        f"trnsim: Dynamo stopped compiling {function} after hitting torch._dynamo.config.{limit_name} ({limit}) "
        f"and runs it eagerly on the host from now on, so trnsim's profiles (trnsim.last_profile()) miss its "
        f"work. Raise the limit before compiling, e.g. torch._dynamo.config.{limit_name} = {max(2 * limit, 64)}, "
        "or mark the changing sizes dynamic (torch._dynamo.mark_dynamic) to recompile less",
        TrnsimWarning,
        stacklevel=2,
    )
    latest = last_profile()
    if latest is not None:  # the calls from now on leave the latest profile in place: it must say so
        _annotate(latest)


def _annotate(profile: GraphProfile) -> None:
    for f in eager_fallbacks():
        if f.note() not in profile.eager_fallback:
            profile.eager_fallback.append(f.note())


class _RecompileLimitFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_HIT_PREFIX):
            args: Any = record.args
            if isinstance(args, tuple) and len(args) >= 3:
                _record_hit(str(args[0]), int(args[1]), str(args[2]))
        return True  # Dynamo's own message still goes wherever its logging sends it


_FILTER = _RecompileLimitFilter()


def install() -> None:
    """Watch Dynamo's recompile-limit message (idempotent; the backend's registration calls this)."""
    logger = logging.getLogger(_DYNAMO_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
        add_profile_annotator(_annotate)
