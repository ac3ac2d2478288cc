"""torch tensor <-> numpy array without losing bf16 (numpy has no bf16; ml_dtypes' bfloat16 shares its bits)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes


def torch_to_numpy(t: Any) -> np.ndarray:
    """A numpy view/copy of a CPU torch tensor's values, bf16 kept as ml_dtypes.bfloat16."""
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(dtypes.bfloat16)
    return t.numpy()


def numpy_to_torch(a: np.ndarray) -> Any:
    """A torch tensor sharing `a`'s values (a contiguous copy when needed), bf16 kept as torch.bfloat16."""
    import torch

    a = np.ascontiguousarray(a)
    if a.dtype == dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)
