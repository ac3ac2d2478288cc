"""Run a captured ATen graph on the simulated chip, node by node, through the lowering table.

Lowered ops launch library kernels (values in functional mode, shapes only in timing mode); views cost
nothing; ops without a lowering run on the host CPU with a warning (an error with strict=True).
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch.utils._pytree import tree_map

from trnsim.compiler import lowering  # noqa: F401  (registers the built-in lowerings)
from trnsim.compiler.graph_progress import progress_callback
from trnsim.compiler.kernel_cache import KernelCache, default_cache
from trnsim.compiler.lowering.context import LowerContext, Unsupported
from trnsim.compiler.lowering.table import lowering_for, op_name
from trnsim.compiler.memory_plan import MemoryPlan, plan_memory, value_bytes
from trnsim.compiler.source_lines import source_of
from trnsim.compiler.tensor_parallel import weight_role
from trnsim.errors import CompileError, InternalError, KernelError, TrnsimWarning, UnsupportedOpError
from trnsim.hw.spec import HardwareSpec
from trnsim.runtime.graph_profile import GraphProfile

# Ops whose result depends on tensor values in a way no static schedule can know.
DATA_DEPENDENT = {
    "aten.nonzero.default",
    "aten._local_scalar_dense.default",
    "aten.item.default",
    "aten.masked_select.default",
    "aten.unique.default",
    "aten._unique2.default",
}


@dataclass
class _NodePlan:
    node: torch.fx.Node
    op: str
    lowering: Any
    source: str
    used_outputs: frozenset[int] | None


def _used_outputs(node: torch.fx.Node) -> frozenset[int] | None:
    users = list(node.users)
    if users and all(u.target is operator.getitem for u in users):
        return frozenset(int(u.args[1]) for u in users)  # type: ignore[arg-type]
    return None


class GraphRunner:
    """Executes one FX graph of ATen ops; `run(*args)` returns the outputs and a GraphProfile."""

    def __init__(
        self,
        gm: torch.fx.GraphModule,
        spec: HardwareSpec,
        functional: bool,
        strict: bool = False,
        label: str = "",
        cache: KernelCache | None = None,
        tp: int = 1,
        tp_plan: Any = None,
    ) -> None:
        self.tp_plan = tp_plan
        # a plan that knows which weights end in a collective: the role of each node reading one
        roles = getattr(tp_plan, "roles", None)
        self.weight_roles: dict[torch.fx.Node, str] = {}
        if roles is not None:
            for node in gm.graph.nodes:
                if node.op == "call_function" and (role := weight_role(node, roles)) is not None:
                    self.weight_roles[node] = role
        self.gm = gm
        self.tp = tp
        self.spec = spec
        self.functional = functional
        self.strict = strict
        self.label = label
        self.cache = cache or default_cache()
        self.plans: dict[torch.fx.Node, _NodePlan] = {}
        self.last_use: dict[torch.fx.Node, list[torch.fx.Node]] = {}
        seen: set[torch.fx.Node] = set()
        for node in reversed(list(gm.graph.nodes)):
            for inp in node.all_input_nodes:
                if inp not in seen:
                    seen.add(inp)
                    self.last_use.setdefault(node, []).append(inp)
            if node.op == "call_function" and node.target is not operator.getitem:
                name = op_name(node.target)
                self.plans[node] = _NodePlan(
                    node, name, lowering_for(node.target), source_of(node), _used_outputs(node)
                )
        self._warned: set[str] = set()
        self.memory_plan: MemoryPlan | None = None  # HBM plan of the latest run
        if strict:
            self._check_strict()

    def _check_strict(self) -> None:
        for plan in self.plans.values():
            if plan.lowering is None:
                self._unsupported(plan, "no lowering to the simulated chip")

    def _unsupported(self, plan: _NodePlan, reason: str) -> None:
        where = f" at {plan.source}" if plan.source else ""
        raise UnsupportedOpError(
            f"{plan.op} ({plan.node.name}){where} cannot run on the simulated chip: {reason}. "
            "With strict=False it runs on the host CPU instead (listed as host fallback in the profile); "
            "or add a lowering with trnsim.register_lowering()"
        )

    # -- execution -------------------------------------------------------------------------------------
    def run(self, *args: Any) -> tuple[Any, GraphProfile]:
        profile = GraphProfile(
            target=self.spec.name, mode="functional" if self.functional else "timing", spec=self.spec
        )
        profile.label = self.label
        profile.tp = self.tp
        hits0, misses0 = self.cache.hits, self.cache.misses
        env: dict[torch.fx.Node, Any] = {}
        nbytes: dict[torch.fx.Node, int] = {}
        resident: set[torch.fx.Node] = set()
        arg_iter = iter(args)
        result: Any = None
        report = progress_callback()
        total = sum(1 for n in self.gm.graph.nodes if n.op == "call_function") if report is not None else 0
        done = 0
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                env[node] = next(arg_iter)
                if _is_weight(env[node]):
                    resident.add(node)
            elif node.op == "get_attr":
                env[node] = self._attr(node.target)
                resident.add(node)
            elif node.op == "call_function":
                env[node] = self._call(node, env, profile)
                done += 1
                if report is not None:
                    report(done, total)
            elif node.op == "call_module" and node.target == "_guards_fn":
                pass  # torch.export's input guards: shapes are checked when the program is called
            elif node.op == "output":
                result = torch.fx.node.map_arg(node.args[0], lambda n: env[n])
            else:
                raise CompileError(f"unsupported graph node kind {node.op!r} ({node.name})")
            if node in env:
                nbytes[node] = value_bytes(env[node])
            for dead in self.last_use.get(node, ()):
                env.pop(dead, None)
        profile.cache_hits = self.cache.hits - hits0
        profile.cache_misses = self.cache.misses - misses0
        self.memory_plan = plan_memory(self.gm.graph, nbytes, resident)
        _record_memory(profile, self.memory_plan)
        return result, profile

    def _attr(self, target: str) -> Any:
        obj: Any = self.gm
        for part in target.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, torch.Tensor):
            if not self.functional and obj.device.type != "meta":
                obj = to_meta(obj)
            obj._trnsim_constant = True  # a parameter or buffer: laid out once at compile time
        return obj

    def _call(self, node: torch.fx.Node, env: dict[torch.fx.Node, Any], profile: GraphProfile) -> Any:
        args = torch.fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.target is operator.getitem:
            return operator.getitem(*args)
        if not self.functional:
            args, kwargs = tree_map(to_meta, (args, kwargs))
        plan = self.plans[node]
        ctx = self._context(node, plan, profile)
        ctx.used_outputs = plan.used_outputs
        ctx.tp_plan = self.tp_plan
        reason = "no lowering to the simulated chip"
        if plan.lowering is not None:
            roles = getattr(self.tp_plan, "roles", None)
            if roles is not None:
                roles.current = self.weight_roles.get(node)
            try:
                return plan.lowering(ctx, *args, **kwargs)
            except Unsupported as why:
                reason = f"its lowering does not handle these arguments ({why})"
            except InternalError:
                raise
            except KernelError as err:
                reason = f"the library kernel rejected it ({err})"
            finally:
                if roles is not None:
                    roles.current = None
        if self.strict:
            self._unsupported(plan, reason)
        return self._host(ctx, plan, node, args, kwargs, reason)

    def _context(self, node: torch.fx.Node, plan: _NodePlan, profile: GraphProfile) -> LowerContext:
        """The lowering context of one node (a tensor-parallel rank's runner adds its exchanges)."""
        return LowerContext(self.spec, self.functional, self.cache, node.name, plan.op, plan.source, profile.records)

    def _host(
        self, ctx: LowerContext, plan: _NodePlan, node: torch.fx.Node, args: Any, kwargs: Any, reason: str
    ) -> Any:
        if plan.op in DATA_DEPENDENT and not self.functional:
            raise CompileError(
                f"{plan.op} at {plan.source or node.name} depends on tensor values, which a shapes-only "
                "(timing/estimate) run does not have: estimate the model up to that point, or run it with "
                "mode='functional' on real inputs"
            )
        if plan.op not in self._warned:
            self._warned.add(plan.op)
            where = f" (first at {plan.source})" if plan.source else ""
            warnings.warn(
                f"trnsim: {plan.op} runs on the host CPU{where}: {reason}; its time is listed as host "
                "fallback and not counted as device time",
                TrnsimWarning,
                stacklevel=2,
            )
        if not self.functional and "device" in kwargs:
            # A shapes-only run keeps activations on the meta device: a host op that moves its result to a real
            # device (`mask.to(device=x.device, dtype=torch.bool)`) would have to copy data that does not exist.
            kwargs = {**kwargs, "device": torch.device("meta")}
        try:
            return ctx.host(node.target, *args, **kwargs)
        except Exception as err:  # the op itself failed on the host: the model's own error, with its line
            raise CompileError(f"{plan.op} at {plan.source or node.name} failed on the host CPU: {err}") from err


def _is_weight(x: Any) -> bool:
    """A graph input that is a model parameter (AOTAutograd passes parameters as inputs): resident in HBM."""
    return isinstance(x, torch.nn.Parameter) or bool(getattr(x, "_trnsim_constant", False))


def _record_memory(profile: GraphProfile, plan: MemoryPlan) -> None:
    profile.weight_bytes = plan.weight_bytes
    profile.activation_peak_bytes = plan.activation_peak_bytes
    profile.activation_arena_bytes = plan.arena_bytes
    profile.reused_buffers = plan.reused_buffers


def to_meta(x: Any) -> Any:
    """A tensor's shapes-only twin with its strides (other values unchanged). Strides, because a lowering
    prices the layout it reads: an expanded (stride-0) input needs a relayout that a contiguous twin would
    hide, and the timing run must match the functional one."""
    if isinstance(x, torch.Tensor) and x.device.type != "meta":
        twin = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
        if _is_weight(x):  # a parameter stays a compile-time constant (its layout is free), as in functional runs
            twin._trnsim_constant = True  # type: ignore[attr-defined]
        return twin
    return x
