"""Compiling never changes the model, and every compiled call updates its state exactly as an eager call does.

Constant folding used to evaluate in-place buffer updates at compile time: a step counter counted one call too
many per compile and BatchNorm in training mode tracked one batch too many.
"""

import copy

import pytest
import torch

import trnsim


class StepCounter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps.add_(1)
        return self.lin(x) * 2


def test_compiling_does_not_run_in_place_updates() -> None:
    model = StepCounter()
    trnsim.compile(model, (torch.randn(4, 8),))
    assert int(model.steps) == 0


@pytest.mark.parametrize("calls", [1, 4])
def test_aot_compiled_counter_counts_each_call_once(calls: int) -> None:
    model = StepCounter()
    exe = trnsim.compile(model, (torch.randn(4, 8),))
    for _ in range(calls):
        exe(torch.randn(4, 8))
    assert int(model.steps) == calls


def test_torch_compile_counter_counts_each_call_once() -> None:
    model = StepCounter()
    compiled = torch.compile(model, backend="trnsim")
    for _ in range(4):
        compiled(torch.randn(4, 8))
    assert int(model.steps) == 4


def test_batchnorm_training_matches_eager_state_and_outputs() -> None:
    model = torch.nn.BatchNorm1d(8).train()
    reference = copy.deepcopy(model)
    batches = [torch.randn(16, 8) for _ in range(3)]
    exe = trnsim.compile(model, (batches[0],))
    for x in batches:
        torch.testing.assert_close(exe(x), reference(x), rtol=1e-4, atol=1e-4)
    assert int(model.num_batches_tracked) == int(reference.num_batches_tracked) == len(batches)
    torch.testing.assert_close(model.running_mean, reference.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.running_var, reference.running_var, rtol=1e-5, atol=1e-6)


def test_torch_compile_batchnorm_training_tracks_each_batch_once() -> None:
    model = torch.nn.BatchNorm1d(8).train()
    reference = copy.deepcopy(model)
    compiled = torch.compile(model, backend="trnsim")
    for _ in range(3):
        x = torch.randn(16, 8)
        torch.testing.assert_close(compiled(x), reference(x), rtol=1e-4, atol=1e-4)
    assert int(model.num_batches_tracked) == 3
    torch.testing.assert_close(model.running_var, reference.running_var, rtol=1e-5, atol=1e-6)
