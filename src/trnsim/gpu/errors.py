"""The GPU model's own exception: bad arguments to an op or a measurement that cannot run."""

from __future__ import annotations

from trnsim.errors import TrnsimError


class GpuError(TrnsimError):
    """A GPU-model call got impossible arguments, or a real-GPU measurement cannot run here."""
