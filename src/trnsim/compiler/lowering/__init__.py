"""Built-in lowerings: importing this package fills the lowering table."""

from trnsim.compiler.lowering import (  # noqa: F401
    attention,
    backward,
    clamp_select,
    conv,
    elementwise,
    embedding,
    layout,
    matmul,
    moe,
    moe_select,
    norms,
    rope,
)
from trnsim.compiler.lowering.table import LOWERINGS, register_lowering

__all__ = ["LOWERINGS", "register_lowering"]
