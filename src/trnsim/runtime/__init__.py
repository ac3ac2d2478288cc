"""What users see: the Profile of a run.

`Profile` is loaded on first use (PEP 562), so importing a light submodule such as trnsim.runtime.units (the CLI
does, to format times) does not load the instruction set, ml_dtypes and the simulator behind Profile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trnsim.runtime.profile import Profile

__all__ = ["Profile"]


def __getattr__(name: str) -> Any:
    if name == "Profile":
        from trnsim.runtime.profile import Profile

        return Profile
    raise AttributeError(f"module 'trnsim.runtime' has no attribute {name!r}")
