"""What users see: the Profile of a run."""

from trnsim.runtime.profile import Profile

__all__ = ["Profile"]
