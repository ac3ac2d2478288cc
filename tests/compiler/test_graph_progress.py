"""Graph-run progress (what `trnsim estimate` draws as its bar): one report per operation, counting up to the
graph's operation count, and the estimate's result unchanged by watching it."""

from __future__ import annotations

import torch

import trnsim
from trnsim.compiler.graph_progress import graph_progress


class Mlp(torch.nn.Module):
    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x)) + x
        return x.sum(dim=-1)


def test_progress_counts_every_operation_of_each_graph(rng) -> None:
    width, layers = int(rng.integers(2, 5)) * 64, int(rng.integers(1, 4))
    net = Mlp(width, layers).to("meta")
    x = torch.zeros(int(rng.integers(1, 4)) * 128, width, device="meta")
    calls: list[tuple[int, int]] = []
    with graph_progress(lambda done, total: calls.append((done, total))):
        watched = trnsim.estimate(net, (x,), target="trn2")
    assert calls, "no progress reported"
    # Split into graph runs (done restarts at 1); in each, done counts 1, 2, ..., total.
    runs: list[list[tuple[int, int]]] = []
    for done, total in calls:
        if done == 1:
            runs.append([])
        runs[-1].append((done, total))
    for run in runs:
        total = run[0][1]
        assert [d for d, _ in run] == list(range(1, total + 1))
        assert all(t == total for _, t in run)
    assert trnsim.estimate(net, (x,), target="trn2").device_time_us == watched.device_time_us
