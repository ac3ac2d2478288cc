"""Errors of the serving simulator. Each says what was wrong, what is allowed, and what to change."""

from __future__ import annotations

from trnsim.errors import TrnsimError


class ServeError(TrnsimError):
    """A serving configuration or input the simulator cannot run (bad value, impossible setup)."""


class ModelDoesNotFitError(ServeError):
    """The model's weights (or its longest request's KV cache) do not fit the replica's memory."""


class TraceError(ServeError):
    """A request trace file is malformed; the message names the file and line."""


class SloUnreachableError(ServeError):
    """No arrival rate meets the SLO, not even one with no queueing at all."""


class ServeInternalError(TrnsimError):
    """The simulator broke one of its own invariants (a request lost, KV over capacity): a trnsim bug."""

    def __init__(self, message: str) -> None:
        super().__init__(f"internal error in the serving simulator (a trnsim bug, please report it): {message}")
