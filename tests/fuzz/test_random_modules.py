"""Compiled random small modules match eager PyTorch: outputs on fresh inputs, and the module's state after
several calls (in-place buffer updates, BatchNorm running statistics in training mode) - see random_modules.py.
Each example goes through trnsim.compile (torch.export) or torch.compile(backend="trnsim") (Dynamo)."""

from __future__ import annotations

import copy
import random
import warnings

import torch
import torch._dynamo
from fuzz_settings import fuzz
from hypothesis import given
from hypothesis import strategies as st
from random_modules import random_module

import trnsim

CALLS = 2


@fuzz(8)
@given(rnd=st.randoms(use_true_random=False))
def test_compiled_random_module_matches_eager_outputs_and_state(rnd: random.Random) -> None:
    module, shape, training = random_module(rnd)
    eager = copy.deepcopy(module)
    dynamo = rnd.random() < 0.5
    described = f"layers {module.kinds}, input {shape}, training={training}, torch.compile={dynamo}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # host-fallback notices
        if dynamo:
            torch._dynamo.reset()
            exe = torch.compile(module, backend="trnsim")
        else:
            exe = trnsim.compile(module, (torch.randn(*shape),))
        for (name, got), (_, want) in zip(module.named_buffers(), eager.named_buffers(), strict=True):
            torch.testing.assert_close(got, want, msg=f"compiling changed {name}: {described}")
        for _ in range(CALLS):
            x = torch.randn(*shape)
            with torch.no_grad():
                want = eager(x)
            torch.testing.assert_close(exe(x), want, rtol=1e-4, atol=1e-4, msg=described)
    for (name, got), (_, want) in zip(module.named_buffers(), eager.named_buffers(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"{name} after {CALLS} calls: {described}")
