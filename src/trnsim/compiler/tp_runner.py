"""Run one captured graph per tensor-parallel rank, together, exchanging values through NKI collectives.

Every rank's graph is the same program on its own slice of the weights (tp_shard.py). The ranks run in
threads that take turns (sim/cooperative.py: one at a time, deterministic): a rank that finishes a
row-parallel projection hands its partial sums over and waits until every rank has; the last one to arrive
all-reduces them on the simulated instance (tp_exchange.py) and each rank continues with the sum, written
into its own output in place (so a residual the lowering adds next is added once, after the reduction). The
logits' vocabulary slices are all-gathered at the end. Each collective is priced like trnsim.estimate
prices it (sim/collectives.py on the instance placement), as a record of the rank's GraphProfile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.fx

from trnsim.compiler.executor import GraphRunner, _NodePlan
from trnsim.compiler.logical_core import spread_over_logical_core
from trnsim.compiler.lowering.context import LowerContext
from trnsim.compiler.tensor_parallel import TPPlan, WeightRoles
from trnsim.compiler.tp_exchange import all_gather, all_reduce
from trnsim.compiler.tp_shard import ROW, VOCAB, ShardRoles
from trnsim.errors import CompileError
from trnsim.hw.spec import HardwareSpec
from trnsim.runtime.graph_profile import GraphProfile
from trnsim.sim.collectives import Placement
from trnsim.sim.cooperative import Cooperative
from trnsim.torch_arrays import numpy_to_torch, torch_to_numpy

# lowerings whose host fallback is the plain product (so its partial sums can still be all-reduced after it)
_PLAIN_PRODUCTS = ("aten.linear.default", "aten.addmm.default", "aten.mm.default")


def rank_plan(spec: HardwareSpec, placement: Placement, hidden: int, roles: ShardRoles) -> TPPlan:
    """One rank's TPPlan: the estimate's pricing, with the collective after a linear following its weight."""
    return TPPlan(spec, placement, hidden, roles.vocab_local, WeightRoles(dict(roles.collective)))


class _RankContext(LowerContext):
    exchange: Callable[[torch.Tensor], None] | None = None

    def after_linear(self, k: int, n: int, out: torch.Tensor) -> None:
        super().after_linear(k, n, out)
        if self.exchange is not None and self.tp_plan.roles.current == ROW:
            self.exchange(out)


class RankRunner(GraphRunner):
    """One rank's GraphRunner: sets the role of each node before lowering it and exchanges partial sums."""

    def __init__(self, gm: torch.fx.GraphModule, spec: HardwareSpec, functional: bool, strict: bool, label: str,
                 plan: TPPlan, roles: ShardRoles) -> None:  # fmt: skip
        super().__init__(gm, spec, functional, strict=strict, label=label, tp=plan.tp, tp_plan=plan)
        found = sorted(self.weight_roles.values())
        want = sorted(roles.collective.values())
        if found != want:
            raise CompileError(
                f"the captured graph of {label or 'the model'} reads {found.count(ROW)} row-parallel weights and "
                f"{found.count(VOCAB)} LM heads through linears, but {want.count(ROW)} and {want.count(VOCAB)} were "
                "split: a sharded weight is used by an op trnsim cannot pair with its collective"
            )
        self.exchange: Callable[[torch.Tensor], None] | None = None
        self._exchanged = False

    def _context(self, node: torch.fx.Node, plan: _NodePlan, profile: GraphProfile) -> LowerContext:
        ctx = _RankContext(self.spec, self.functional, self.cache, node.name, plan.op, plan.source, profile.records)
        if self.functional and self.exchange is not None:
            ctx.exchange = self._exchange_once
        return ctx

    def _exchange_once(self, out: torch.Tensor) -> None:
        assert self.exchange is not None
        self.exchange(out)
        self._exchanged = True

    def _call(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any], profile: GraphProfile) -> Any:
        role = self.weight_roles.get(node)
        self._exchanged = False
        out = super()._call(node, env, profile)
        if role == ROW and self.functional and not self._exchanged:
            # the op ran on the host (no lowering took it): its result is the plain partial product
            if self.plans[node].op not in _PLAIN_PRODUCTS or not isinstance(out, torch.Tensor):
                raise CompileError(
                    f"{self.plans[node].op} ({node.name}) reads a row-parallel weight but ran on the host as a fused "
                    "op: its partial sums cannot be all-reduced before what it fuses"
                )
            self._exchange_once(out)
        return out


class TPRunner:
    """Runs `tp` RankRunners in lockstep; `run(rank_inputs)` returns each rank's outputs and the profiles."""

    def __init__(self, runners: list[RankRunner], roles: ShardRoles, target: Any, instance: str | None) -> None:
        self.runners = runners
        self.roles = roles
        self.target = target
        self.instance = instance
        self.vocab_outputs = _vocab_outputs(runners[0])  # outputs that are the LM head's vocabulary slices
        if not self.vocab_outputs:
            raise CompileError(
                f"tp={self.tp}: no output of {runners[0].label or 'the model'} is its LM head's logits (a loss or "
                "a sampled token computed from them would see one rank's slice of the vocabulary); return the "
                "logits and compute the rest from them"
            )

    @property
    def tp(self) -> int:
        return len(self.runners)

    def run(self, rank_inputs: list[list[Any]]) -> tuple[list[Any], GraphProfile]:
        coop = Cooperative([f"rank {r}" for r in range(self.tp)])
        parts: dict[int, dict[int, np.ndarray]] = {}
        sums: dict[int, list[np.ndarray]] = {}
        counts = [0] * self.tp

        def exchanger(rank: int) -> Callable[[torch.Tensor], None]:
            def exchange(out: torch.Tensor) -> None:
                k = counts[rank]
                counts[rank] += 1
                parts.setdefault(k, {})[rank] = torch_to_numpy(out.detach().contiguous())
                if len(parts[k]) == self.tp:  # the last rank to arrive moves the values
                    sums[k] = all_reduce([parts[k][r] for r in range(self.tp)], self.target, self.instance)
                    del parts[k]
                coop.wait_until(lambda: k in sums, f"all-reduce #{k + 1}")
                out.copy_(numpy_to_torch(sums[k][rank]).to(out.dtype).reshape(out.shape))

            return exchange

        for r, runner in enumerate(self.runners):
            runner.exchange = exchanger(r) if self.tp > 1 else None
        tasks = [
            (lambda runner=runner, args=args: runner.run(*args)) for runner, args in zip(self.runners, rank_inputs)
        ]
        results = coop.run(tasks)
        outputs = [out for out, _ in results]
        profiles = [prof for _, prof in results]
        for prof, runner in zip(profiles, self.runners):
            spread_over_logical_core(prof, runner.spec)  # a rank is a logical core, as the estimate counts it
        profile = profiles[0]
        profile.rank_device_us = [p.device_time_us for p in profiles]
        return outputs, profile

    def gather_logits(self, rank_outputs: list[list[Any]]) -> list[Any]:
        """The full outputs from every rank's: vocabulary slices all-gathered (and cut to the vocabulary);
        anything else is the same on every rank, taken from rank 0."""
        full = []
        for i, first in enumerate(rank_outputs[0]):
            if i in self.vocab_outputs:
                if first.device.type == "meta":
                    shape = (*first.shape[:-1], self.roles.vocab)
                    full.append(torch.empty(shape, dtype=first.dtype, device="meta"))
                    continue
                parts = [torch_to_numpy(outs[i].detach().contiguous()) for outs in rank_outputs]
                got = all_gather(parts, self.target, self.instance)[0] if self.tp > 1 else parts[0]
                full.append(numpy_to_torch(got)[..., : self.roles.vocab].to(first.dtype))
            else:
                full.append(first)
        return full


# what may come between the LM head and an output, elementwise or a view: applied to a slice of the vocabulary
# it gives that slice of the result (a softmax, a loss or an argmax would not)
_PER_LOGIT = (
    "aten.view.default",
    "aten._unsafe_view.default",
    "aten.reshape.default",
    "aten.alias.default",
    "aten.clone.default",
    "aten._to_copy.default",
    "aten.tanh.default",
    "aten.mul.Tensor",
    "aten.div.Tensor",
    "elementwise_chains.elementwise_chain",
)


def _vocab_outputs(runner: RankRunner) -> set[int]:
    """Indices of the graph outputs computed from the LM head by per-logit ops only; anything else that
    reads the logits (a loss, a softmax) is an error, as one rank holds only a slice of the vocabulary."""
    out_node = runner.gm.graph.output_node()
    outs = out_node.args[0]
    outs = list(outs) if isinstance(outs, list | tuple) else [outs]
    found: set[int] = set()
    todo = [n for n, role in runner.weight_roles.items() if role == VOCAB]
    while todo:
        node = todo.pop()
        for user in node.users:
            if user is out_node:
                found |= {i for i, o in enumerate(outs) if o is node}
            elif runner.plans[user].op in _PER_LOGIT and user.all_input_nodes == [node]:
                todo.append(user)
            else:
                raise CompileError(
                    f"tp={runner.tp}: {runner.plans[user].op} ({runner.plans[user].source or user.name}) reads the "
                    "logits, of which a rank holds one slice of the vocabulary: return the logits (no labels) and "
                    "compute losses or sampling from them"
                )
    return found
