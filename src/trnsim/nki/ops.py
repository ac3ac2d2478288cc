"""Named ops of nki.language: callable as functions (legacy style) and passable as `op=` to nki.isa.

`nl.exp(x)` issues an activation into a new tile; `nisa.activation(dst, op=nl.exp, data=x)` reads the
op's `nki_name`. numpy ufuncs (np.add, np.exp, ...) are accepted as ops too.
"""

from __future__ import annotations

from typing import Any

from trnsim import dtypes
from trnsim.isa.alu import ACTIVATIONS, BINARY_OPS
from trnsim.nki import language_impl as impl


class NkiOp:
    """An ALU op or activation function of the NKI language."""

    def __init__(self, name: str, kind: str, default_dtype: Any = None) -> None:
        self.nki_name = name
        self.__name__ = name
        self.kind = kind
        self.default_dtype = default_dtype

    def __repr__(self) -> str:
        return f"nl.{self.nki_name}"

    def __call__(self, x: Any, y: Any = None, *, dtype: Any = None, mask: Any = None, **_: Any) -> Any:
        dt = dtype if dtype is not None else self.default_dtype
        if self.kind == "unary":
            return impl.unary(self.nki_name, x, dtype=dt, mask=mask)
        return impl.elementwise_binary(self.nki_name, x, y, dtype=dt, mask=mask)


UNARY = {name: NkiOp(name, "unary") for name in ACTIVATIONS}
_COMPARISONS = {
    "equal",
    "not_equal",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
}
BINARY = {name: NkiOp(name, "binary", dtypes.bool_ if name in _COMPARISONS else None) for name in BINARY_OPS}
