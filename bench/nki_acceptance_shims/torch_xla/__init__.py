"""Stand-in for torch_xla: the "XLA device" is the host CPU, where trnsim reads torch tensors."""

import torch


def device(index=None):
    """torch_xla.device(): the CPU here."""
    return torch.device("cpu")
