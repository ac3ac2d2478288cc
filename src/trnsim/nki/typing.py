"""`nki.typing` (also `neuronxcc.nki.typing`): annotations for kernel parameters.

`nt.tensor` and `nt.mutable_tensor` annotate tensor arguments; `nt.tensor[128, 512]` or
`nt.tensor[[128, 512], nl.float32]` records an expected shape (and dtype) for readers. They are type
hints only: NKI does not check them at call time, and neither does trnsim.
"""

from __future__ import annotations

from typing import Any

from trnsim.nki.tensor import NkiTensor


class _TensorType:
    """A subscriptable annotation: `tensor`, `tensor[shape]`, `tensor[shape, dtype]`."""

    def __init__(self, name: str, mutable: bool, shape: tuple[Any, ...] | None = None, dtype: Any = None) -> None:
        self.name = name
        self.mutable = mutable
        self.shape = shape
        self.dtype = dtype

    def __getitem__(self, item: Any) -> _TensorType:
        parts = item if isinstance(item, tuple) else (item,)
        if parts and isinstance(parts[0], tuple | list):  # tensor[[128, 512], nl.float32]
            return _TensorType(self.name, self.mutable, tuple(parts[0]), parts[1] if len(parts) > 1 else None)
        return _TensorType(self.name, self.mutable, tuple(parts))

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, NkiTensor)

    def __repr__(self) -> str:
        return f"nki.typing.{self.name}" + ("" if self.shape is None else f"[{list(self.shape)}]")


tensor = _TensorType("tensor", mutable=False)
mutable_tensor = _TensorType("mutable_tensor", mutable=True)

__all__ = ["mutable_tensor", "tensor"]
