"""The HBM memory plan against a brute-force reference: on random ATen DAGs (writers, views, multi-output
ops, weights) the planned activation peak equals the largest live total found by checking every step and
every buffer directly, and the greedy reuse never puts two buffers that are live at once in one slot."""

import operator
import random

import pytest
import torch
import torch.fx

from trnsim.compiler.capture import capture
from trnsim.compiler.executor import GraphRunner
from trnsim.compiler.memory_plan import plan_memory, value_bytes
from trnsim.hw.presets import get_spec

aten = torch.ops.aten
# the ops of the generator whose result reads its first argument's storage (the reference's own list)
VIEWS = {aten.view.default, aten.slice.Tensor, aten.unsqueeze.default, aten.split.Tensor, operator.getitem}


def _random_graph(rng: random.Random) -> tuple[torch.fx.Graph, dict[torch.fx.Node, torch.Tensor], set[torch.fx.Node]]:
    """A random DAG over 2-D meta tensors of a few widths, with its nodes' values and its weight inputs."""
    g = torch.fx.Graph()
    vals: dict[torch.fx.Node, torch.Tensor] = {}
    weights: set[torch.fx.Node] = set()
    widths = [rng.choice([4, 8, 16, 32]) for _ in range(3)]
    for i in range(rng.randint(2, 4)):
        n = g.placeholder(f"in{i}")
        vals[n] = torch.empty(rng.randint(1, 16), rng.choice(widths), device="meta")
        if rng.random() < 0.4:
            weights.add(n)
    for _ in range(rng.randint(5, 40)):
        tensors = [n for n, v in vals.items() if isinstance(v, torch.Tensor) and v.dim() == 2]
        a = rng.choice(tensors)
        va = vals[a]
        kind = rng.choice(["add", "add_scalar", "cat", "view", "slice", "unsqueeze", "split", "var_mean", "clone"])
        if kind == "add":
            same = [n for n in tensors if vals[n].shape == va.shape]
            node = g.call_function(aten.add.Tensor, (a, rng.choice(same)))
        elif kind == "add_scalar":
            node = g.call_function(aten.add.Tensor, (a, 1.5))
        elif kind == "cat":
            same_cols = [n for n in tensors if vals[n].shape[1] == va.shape[1]]
            node = g.call_function(aten.cat.default, ([a, rng.choice(same_cols)], 0))
        elif kind == "view":
            node = g.call_function(aten.view.default, (a, [va.shape[1], va.shape[0]]))
        elif kind == "slice":
            node = g.call_function(aten.slice.Tensor, (a, 0, 0, max(1, va.shape[0] // 2)))
        elif kind == "unsqueeze":
            node = g.call_function(aten.view.default, (g.call_function(aten.unsqueeze.default, (a, 0)), list(va.shape)))
            vals[node.args[0]] = va.unsqueeze(0)  # type: ignore[index]
        elif kind == "split":
            parts = g.call_function(aten.split.Tensor, (a, max(1, va.shape[0] // 2)))
            vals[parts] = aten.split.Tensor(va, max(1, va.shape[0] // 2))
            node = g.call_function(operator.getitem, (parts, 0))
        elif kind == "var_mean":
            both = g.call_function(aten.var_mean.correction, (a, [1]), {"keepdim": True})
            vals[both] = aten.var_mean.correction(va, [1], keepdim=True)
            node = g.call_function(operator.getitem, (both, rng.randint(0, 1)))
        else:
            node = g.call_function(aten.clone.default, (a,))
        args = torch.fx.node.map_arg(node.args, lambda n: vals[n])
        vals[node] = node.target(*args, **node.kwargs)  # type: ignore[operator]
    candidates = [n for n in vals if n.op == "call_function" and isinstance(vals[n], torch.Tensor)]
    g.output(tuple(rng.sample(candidates, rng.randint(1, min(3, len(candidates))))))
    return g, vals, weights


def _reference_peak(g: torch.fx.Graph, vals: dict, weights: set) -> tuple[int, int]:
    """Brute force: at each step, every non-view node (not a weight) whose value or a view of it is read at or
    after that step, or is written at that step, is live; returns (max live bytes, weight bytes)."""
    nodes = list(g.nodes)

    def root(n):
        while n.op == "call_function" and n.target in VIEWS:
            n = n.args[0]
        return n

    writers = [n for n in nodes if n.op != "output" and root(n) is n and n not in weights]
    peak = 0
    for t, _ in enumerate(nodes):
        live = 0
        for w in writers:
            written = nodes.index(w)
            if written > t:
                continue
            read_later = any(root(inp) is w for u in nodes[t:] for inp in u.all_input_nodes)
            if written == t or read_later:
                live += value_bytes(vals[w])
        peak = max(peak, live)
    return peak, sum(value_bytes(vals[w]) for w in weights)


@pytest.mark.parametrize("trial", range(40))
def test_random_dag_peak_equals_brute_force_and_slots_never_overlap(trial):
    rng = random.Random()
    g, vals, weights = _random_graph(rng)
    plan = plan_memory(g, {n: value_bytes(v) for n, v in vals.items()}, weights)

    peak, weight_bytes = _reference_peak(g, vals, weights)
    assert plan.activation_peak_bytes == peak
    assert plan.weight_bytes == weight_bytes
    assert plan.arena_bytes >= plan.activation_peak_bytes
    assert plan.peak_hbm_bytes == weight_bytes + plan.arena_bytes
    assert plan.reused_buffers == len(plan.buffers) - len(plan.slot_sizes) >= 0

    by_slot: dict[int, list] = {}
    for b in plan.buffers:
        slot = plan.slot_of[b.name]
        assert plan.slot_sizes[slot] >= b.nbytes  # every buffer fits the slot it was given
        by_slot.setdefault(slot, []).append(b)
    for bufs in by_slot.values():
        for i, x in enumerate(bufs):
            for y in bufs[i + 1 :]:
                assert x.end < y.start or y.end < x.start, f"{x} and {y} share a slot while both live"


def test_reuse_takes_the_best_fitting_free_slot():
    # a (64 B) and b (16 B) die before c (16 B) is written: c reuses b's slot, not a's
    g = torch.fx.Graph()
    x = g.placeholder("x")
    a = g.call_function(aten.clone.default, (x,))
    b = g.call_function(aten.clone.default, (g.call_function(aten.slice.Tensor, (x, 0, 0, 1)),))
    sa = g.call_function(aten.sum.default, (a,))
    sb = g.call_function(aten.sum.default, (b,))
    c = g.call_function(aten.clone.default, (g.call_function(aten.slice.Tensor, (x, 0, 1, 2)),))
    g.output((c, sa, sb))
    vals = {x: torch.empty(4, 4, device="meta")}
    for n in list(g.nodes)[1:-1]:
        vals[n] = n.target(*torch.fx.node.map_arg(n.args, lambda m: vals[m]))  # type: ignore[operator]
    plan = plan_memory(g, {n: value_bytes(v) for n, v in vals.items()}, set())
    assert plan.slot_of[c.name] == plan.slot_of[b.name] != plan.slot_of[a.name]
    assert plan.slot_sizes[plan.slot_of[b.name]] == 16 and plan.reused_buffers >= 1


def test_runner_reports_the_plan_of_the_graph_it_ran():
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    x = torch.randn(rng_rows := random.randint(4, 40), 32)
    captured = capture(model, (x,))
    runner = GraphRunner(captured.gm, get_spec("trn2"), functional=True)
    _, profile = runner.run(*captured.flat_inputs((x,), {}))

    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert profile.weight_bytes == params
    # largest live set: the input, the hidden activation and its relu (x is read until the first matmul)
    hidden = rng_rows * 64 * 4
    assert profile.activation_peak_bytes >= 2 * hidden
    assert runner.memory_plan is not None
    assert profile.activation_peak_bytes == runner.memory_plan.activation_peak_bytes
    assert profile.peak_hbm_bytes == params + runner.memory_plan.arena_bytes
    assert profile.fits_hbm and profile.to_dict()["fits_hbm"] is True
    assert profile.hbm_capacity_bytes == 24 * 2**30  # trn2: 96 GiB shared by 4 logical cores


def test_profile_flags_a_footprint_over_the_rank_hbm():
    from trnsim.runtime.graph_profile import GraphProfile

    spec = get_spec("trn2")
    profile = GraphProfile(target="trn2", mode="timing", spec=spec)
    profile.weight_bytes = profile.hbm_capacity_bytes
    assert profile.fits_hbm
    profile.activation_arena_bytes = 1
    assert not profile.fits_hbm and profile.to_dict()["fits_hbm"] is False
