"""Random small PyTorch modules for compiled-vs-eager fuzzing: linears with activations, norms, residual adds,
reshapes around them, in-place buffer updates and training-mode BatchNorm (state the compiler must update
once per call, never at compile time)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

ACTIVATIONS = {
    "relu": torch.nn.ReLU,
    "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU,
    "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid,
}


KINDS = (
    "linear",
    "act",
    "layernorm",
    "residual_linear",
    "flat_residual",
    "view_residual",
    "counter",
    "batchnorm",
    "softmax",
    "rmsnorm",
    "gelu_tanh",
    "rope",
    "chain",
)


@dataclass(frozen=True)
class Layer:
    kind: str  # one of KINDS
    arg: str = ""
    width: int = 0


class RandomModule(torch.nn.Module):
    """Applies `layers` to x [batch, seq, width]; `steps` counts calls in place when a counter layer is present."""

    def __init__(self, layers: list[Layer], width: int) -> None:
        super().__init__()
        self.kinds = [layer.kind for layer in layers]
        self.mods = torch.nn.ModuleList()
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        for layer in layers:
            if layer.kind in ("linear", "residual_linear", "flat_residual", "view_residual"):
                self.mods.append(torch.nn.Linear(width, width, bias=layer.arg != "nobias"))
            elif layer.kind == "act":
                self.mods.append(ACTIVATIONS[layer.arg]())
            elif layer.kind == "layernorm":
                self.mods.append(torch.nn.LayerNorm(width))
            elif layer.kind == "batchnorm":
                self.mods.append(torch.nn.BatchNorm1d(width))
            else:
                self.mods.append(torch.nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, w = x.shape
        for kind, mod in zip(self.kinds, self.mods):
            if kind == "residual_linear":
                x = mod(x) + x
            elif kind == "flat_residual":  # HF-style: flattened tokens, residual added, reshaped back
                x = (mod(x.reshape(b * s, w)) + x.reshape(b * s, w)).view(b, s, w)
            elif kind == "counter":
                self.steps.add_(1)
                x = x * 0.5
            elif kind == "batchnorm":
                x = mod(x.reshape(b * s, w)).view(b, s, w)
            elif kind == "softmax":
                x = torch.softmax(x, dim=-1)
            elif kind == "view_residual":  # the residual added after the flat result is viewed back
                x = mod(x.reshape(b * s, w)).view(b, s, w) + x
            elif kind == "rmsnorm":  # transformers' LlamaRMSNorm, written out
                x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
            elif kind == "gelu_tanh":  # GPT-2's NewGELU, written out
                x = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
            elif kind == "rope":  # rotary embedding over the last dim, positions from arange (constant-folded)
                pos = torch.arange(s, dtype=torch.float32)[:, None]
                freq = 1.0 / (10000.0 ** (torch.arange(0, w, 2, dtype=torch.float32) / w))
                angles = torch.cat([pos * freq, pos * freq], dim=-1)
                rotated = torch.cat([-x[..., w // 2 :], x[..., : w // 2]], dim=-1)
                x = x * angles.cos() + rotated * angles.sin()
            elif kind == "chain":
                x = torch.sigmoid(x * 2.0 + 1.0) - x
            else:
                x = mod(x)
        return x


def random_module(rng: random.Random) -> tuple[RandomModule, tuple[int, int, int], bool]:
    """A module, its input shape and whether it runs in training mode."""
    width = rng.choice([8, 16, 32])
    kinds = list(KINDS)
    layers = []
    for _ in range(rng.randint(1, 5)):
        kind = rng.choice(kinds)
        arg = rng.choice(list(ACTIVATIONS)) if kind == "act" else rng.choice(["", "nobias"])
        layers.append(Layer(kind, arg, width))
    torch.manual_seed(rng.randrange(1 << 31))
    module = RandomModule(layers, width)
    training = rng.random() < 0.5
    module.train(training)
    return module, (rng.choice([1, 2]), rng.choice([3, 4, 8]), width), training
