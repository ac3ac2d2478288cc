"""Built-in lowerings: importing this package fills the lowering table."""

from trnsim.compiler.lowering import attention, backward, conv, elementwise, embedding, layout, matmul, moe, norms, rope  # noqa: F401
from trnsim.compiler.lowering.table import LOWERINGS, register_lowering

__all__ = ["LOWERINGS", "register_lowering"]
