"""`nl.NKIObject`: the base class of configuration objects that kernels pass around (NKI 0.6).

Kernels subclass it, usually as a `@dataclass`, to carry tile sizes, dtypes and flags between helper
functions; nki-library's utility classes all do. Its own constructor takes keyword arguments only and sets
each as an attribute.
"""

from __future__ import annotations

from typing import Any

from trnsim.errors import UsageError


class NKIObject:
    """Base class for NKI kernel dataclasses and configuration objects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            from trnsim.nki.context import user_location

            raise UsageError(
                f"{type(self).__name__}(...) takes keyword arguments only (field=value), got {len(args)} positional",
                user_location(),
            )
        for key, value in kwargs.items():
            if key.startswith("__"):
                from trnsim.nki.context import user_location

                raise UsageError(f"{type(self).__name__}: field name {key!r} is reserved", user_location())
            setattr(self, key, value)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"
