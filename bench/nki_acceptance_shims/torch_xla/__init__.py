"""Stand-in for torch_xla: the "XLA device" is the host CPU, where trnsim reads torch tensors."""

import torch


def device(index=None):
    """torch_xla.device(): the CPU here."""
    return torch.device("cpu")


def sync(wait=False):
    """torch_xla.sync() (torch_xla 2.x's step barrier, the newer name of xm.mark_step): nothing is deferred here."""
