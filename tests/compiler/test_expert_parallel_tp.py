"""Expert parallelism with tensor-parallel groups (tp x ep ranks): the all-to-all of concurrent ep groups and the
tp all-gather against closed forms from the presets, bytes per rank under a known routing, FLOPs per rank against
tp = 1 x ep and tp x ep = 1 of the same small MoE config, resident weights, the rank count and bad values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import transformers

import trnsim
from trnsim.compiler import expert_parallel as ep_mod
from trnsim.compiler.dtype_mx import grouped_dims
from trnsim.compiler.expert_parallel import ep_estimate
from trnsim.compiler.expert_parallel_comm import ep_layout
from trnsim.compiler.expert_parallel_routing import routing_of
from trnsim.errors import CompileError, SpecError
from trnsim.hw.presets import get_spec
from trnsim.models import build_model
from trnsim.runtime.graph_profile import GraphProfile

HIDDEN, WIDTH, EXPERTS, TOP_K, LAYERS, TOKENS = 256, 128, 8, 2, 2, 128


@pytest.mark.parametrize(("tp", "ep"), [(4, 16), (2, 16), (2, 4)])
def test_concurrent_ep_groups_all_to_all_on_the_trn3_switch_is_the_closed_form(
    rng: np.random.Generator, tp: int, ep: int
) -> None:
    spec = get_spec("trn3")
    inst = spec.instance("trn3-ultraserver")
    nbytes = float(rng.integers(1, 64)) * 2**20
    per_chip = 4  # trn3: 8 physical cores at LNC 2
    peers = max(1, per_chip // tp)  # ep peers (stride tp) sharing a chip
    groups_on_chip = min(tp, per_chip)  # ep groups with a rank on each chip, all sending at once
    chips = math.ceil(ep / peers)
    intra_ns = 2 * groups_on_chip * (peers - 1) * nbytes / spec.chip.hbm_bytes_per_ns
    # switch: the chip's ranks' buffers, (c-1)/c of them leave over its links, one hop
    inter_ns = (chips - 1) / chips * per_chip * nbytes / inst.link_bytes_per_ns + inst.hop_latency_ns
    layout = ep_layout(spec, tp, ep, "trn3-ultraserver")
    assert layout.ranks == tp * ep and layout.ep_chips == chips
    assert layout.dispatch_us(nbytes) == pytest.approx((intra_ns + inter_ns) / 1000, rel=1e-12)


def test_tp_all_gather_inside_one_chip_goes_through_hbm(rng: np.random.Generator) -> None:
    spec = get_spec("trn2")
    nbytes = float(rng.integers(1, 64)) * 2**20
    # 4 ranks of one trn2 chip: each byte read and written, (r-1)/r of the gathered total
    want_ns = 3 / 4 * 2 * nbytes / spec.chip.hbm_bytes_per_ns
    assert ep_layout(spec, 4, 8).gather_us(nbytes) == pytest.approx(want_ns / 1000, rel=1e-12)
    assert ep_layout(spec, 1, 8).gather_us(nbytes) == 0.0


def test_tp_times_ep_ranks_must_fit_the_instance() -> None:
    spec = get_spec("trn2")
    assert ep_layout(spec, 8, 8).placement.chips == 16  # 64 ranks: a whole trn2.48xlarge
    with pytest.raises(SpecError, match=r"trn2\.48xlarge has 16"):
        ep_layout(spec, 8, 16, "trn2.48xlarge")


@pytest.fixture(scope="module")
def moe_net() -> torch.nn.Module:
    cfg = transformers.Qwen3MoeConfig(  # type: ignore[call-arg]
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        vocab_size=1024,
        intermediate_size=512,
        moe_intermediate_size=WIDTH,
        num_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        use_cache=False,
    )
    return build_model(cfg, device="meta")


def _ids() -> torch.Tensor:
    return torch.zeros(1, TOKENS, dtype=torch.long, device="meta")


def _run(net: torch.nn.Module, tp: int, ep: int) -> GraphProfile:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ep == 1:
            return trnsim.estimate(net, (_ids(),), target="trn2", tp=tp)
        return ep_estimate(net, (_ids(),), ep=ep, tp=tp, target="trn2").profile


@pytest.fixture(scope="module")
def profiles(moe_net: torch.nn.Module) -> dict[tuple[int, int], GraphProfile]:
    return {(tp, ep): _run(moe_net, tp, ep) for tp, ep in [(1, 4), (2, 4), (2, 1)]}


def _grouped(p: GraphProfile) -> list:
    return [r for r in p.records if r.kernel.startswith("grouped_matmul")]


def test_a_ranks_expert_flops_are_its_groups_rows_over_tp(profiles: dict[tuple[int, int], GraphProfile]) -> None:
    def expert_flops(p: GraphProfile) -> int:
        return sum(r.flops * r.count for r in _grouped(p))

    tp_ep, ep_only = profiles[2, 4], profiles[1, 4]
    rows = grouped_dims(_grouped(tp_ep)[0])[0]  # the busiest group's rows, the same routing at tp = 1
    assert rows == grouped_dims(_grouped(ep_only)[0])[0]
    # gate + up [H -> 2 W / tp] and down [W / tp -> H], 2 FLOPs per multiply-add, every MoE layer
    assert expert_flops(tp_ep) == LAYERS * 2 * rows * 3 * HIDDEN * WIDTH // 2
    assert expert_flops(tp_ep) * 2 == expert_flops(ep_only)


def test_a_ranks_other_flops_are_those_of_its_tensor_parallel_group(
    profiles: dict[tuple[int, int], GraphProfile],
) -> None:
    def other_flops(p: GraphProfile) -> int:
        return sum(r.flops * r.count for r in p.records if r.kind == "kernel" and r not in _grouped(p))

    assert other_flops(profiles[2, 4]) == other_flops(profiles[2, 1])
    assert other_flops(profiles[2, 4]) < other_flops(profiles[1, 4])


def test_the_collectives_of_a_moe_layer_follow_a_known_routing(
    moe_net: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    tp, ep = 2, 4
    group_tokens = ep * TOKENS
    # every 4th token to experts 0 and 5, the others to 2 and 3 (both in group 1's block)
    chosen = np.array([[2, 3] if t % 4 else [0, 5] for t in range(group_tokens)])
    known = routing_of(chosen, EXPERTS, ep)
    monkeypatch.setattr(ep_mod, "sampled_routing", lambda *a, **k: known)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ep_estimate(moe_net, (_ids(),), ep=ep, tp=tp, target="trn2")
    busiest = 2 * (group_tokens - group_tokens // 4)
    assert result.busiest_rows == busiest and result.ranks == tp * ep
    # a rank sends its 1/tp of the group's tokens x k rows; the busiest group's ranks receive 1/tp of its rows
    assert result.dispatch_bytes == math.ceil(max(TOKENS * TOP_K, busiest) / tp) * HIDDEN * 2
    assert result.gather_bytes == busiest * HIDDEN * 2
    layout = ep_layout(get_spec("trn2"), tp, ep)
    by_node = {r.node: r for r in result.profile.records if r.node.startswith("ep_")}
    assert sorted(by_node) == ["ep_combine", "ep_dispatch", "ep_rows_gather", "ep_rows_scatter"]
    assert all(r.count == LAYERS for r in by_node.values())
    assert by_node["ep_dispatch"].device_us == pytest.approx(layout.dispatch_us(result.dispatch_bytes))
    assert by_node["ep_rows_gather"].device_us == pytest.approx(layout.gather_us(result.gather_bytes))
    # the tensor-parallel group still all-reduces after attention and after each MoE block
    reduces = [r for r in result.profile.records if r.kernel == "all_reduce"]
    assert sum(r.count for r in reduces) == 2 * LAYERS


def test_a_rank_holds_its_groups_experts_over_tp(profiles: dict[tuple[int, int], GraphProfile]) -> None:
    expert_bytes = LAYERS * EXPERTS * 3 * HIDDEN * WIDTH * 2  # gate, up, down in bf16
    # tp = 2 holds every expert's half; at ep = 4 only a quarter of the experts
    assert profiles[2, 1].weight_bytes - profiles[2, 4].weight_bytes == expert_bytes // 2 * 3 // 4


def test_bad_tp_is_a_clear_error(moe_net: torch.nn.Module) -> None:
    with pytest.raises(CompileError, match=r"tp .* must be an integer >= 1"):
        ep_estimate(moe_net, (_ids(),), ep=2, tp=0)
