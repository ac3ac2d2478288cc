"""Stand-in for torch_xla.core.xla_model: tensors stay on the CPU; trnsim runs the kernels."""

import torch


def xla_device(n=None, devkind=None):
    return torch.device("cpu")


def mark_step(wait=False):
    return None
