"""HBM memory plan of an executed graph: buffer liveness, greedy best-fit buffer reuse, peak footprint.

Every call_function node that writes a new tensor owns one HBM buffer (a node with several tensor outputs
owns one buffer of their total size). Views (ops whose schema says the result aliases an input) and
getitem write nothing: they extend the lifetime of the buffer they read. A buffer is live from the step
that writes it to the last step that reads it or any alias of it; graph outputs stay live to the end.
Weights (parameters and constants) are resident for the whole graph and counted apart.

Steps are node positions in graph order; at step t the node's inputs and its output are live together.
"""

from __future__ import annotations

import bisect
import heapq
import operator
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx


@dataclass(frozen=True)
class Buffer:
    """One activation buffer: `nbytes` live over steps [start, end] (inclusive)."""

    name: str
    nbytes: int
    start: int
    end: int


@dataclass
class MemoryPlan:
    """Liveness and buffer-reuse result of one graph.

    activation_peak_bytes: the largest total of simultaneously live activation bytes (a lower bound for any
    allocator). arena_bytes: HBM the greedy best-fit reuse needs (sum of its slot sizes, >= the peak).
    """

    weight_bytes: int = 0
    activation_peak_bytes: int = 0
    arena_bytes: int = 0
    buffers: list[Buffer] = field(default_factory=list)
    slot_sizes: list[int] = field(default_factory=list)
    slot_of: dict[str, int] = field(default_factory=dict)

    @property
    def peak_hbm_bytes(self) -> int:
        """Weights plus the activation arena: what this graph needs resident in HBM at its peak."""
        return self.weight_bytes + self.arena_bytes

    @property
    def reused_buffers(self) -> int:
        """Buffers placed in a slot an earlier (dead) buffer used."""
        return len(self.buffers) - len(self.slot_sizes)


def value_bytes(value: Any) -> int:
    """Bytes of the tensors in a node's value (a tensor, or a tuple/list of them); other values are free."""
    if isinstance(value, torch.Tensor):
        return int(value.numel() * value.element_size())
    if isinstance(value, list | tuple):
        return sum(value_bytes(v) for v in value)
    return 0


def is_alias(node: torch.fx.Node) -> bool:
    """Whether the node's result reads another node's buffer instead of writing its own."""
    if node.op != "call_function":
        return False
    if node.target is operator.getitem:
        return True
    schema = getattr(node.target, "_schema", None)
    return schema is not None and any(r.alias_info is not None for r in schema.returns)


def _owner(node: torch.fx.Node, owners: dict[torch.fx.Node, torch.fx.Node | None]) -> torch.fx.Node | None:
    """The node whose buffer `node`'s value lives in (itself for a writer; None for weights)."""
    return owners.get(node, node)


def live_buffers(
    graph: torch.fx.Graph, nbytes: Mapping[torch.fx.Node, int], resident: Collection[torch.fx.Node]
) -> tuple[list[Buffer], int]:
    """The activation buffers of `graph` with their live ranges, and the resident weight bytes.

    nbytes: each node's output bytes (from its meta/fake or executed value). resident: placeholder or
    get_attr nodes holding weights (parameters, buffers, constants).
    """
    nodes = list(graph.nodes)
    step = {n: i for i, n in enumerate(nodes)}
    owners: dict[torch.fx.Node, torch.fx.Node | None] = {}
    weight_bytes = 0
    for n in nodes:
        if n in resident:
            owners[n] = None
            weight_bytes += nbytes.get(n, 0)
        elif is_alias(n):
            base = n.args[0] if isinstance(n.args[0], torch.fx.Node) else None
            owners[n] = _owner(base, owners) if base is not None else None
    last: dict[torch.fx.Node, int] = {}
    for n in nodes:
        for inp in n.all_input_nodes:
            own = _owner(inp, owners)
            if own is not None:
                last[own] = max(last.get(own, step[own]), step[n])
    buffers = []
    for n in nodes:
        if n.op in ("output",) or owners.get(n, n) is not n or not nbytes.get(n, 0):
            continue
        buffers.append(Buffer(n.name, int(nbytes[n]), step[n], last.get(n, step[n])))
    return buffers, weight_bytes


def peak_live_bytes(buffers: list[Buffer]) -> int:
    """Largest sum of bytes of buffers live at one step (a sweep over start/end events)."""
    events: list[tuple[int, int]] = []
    for b in buffers:
        events.append((b.start, b.nbytes))
        events.append((b.end + 1, -b.nbytes))
    events.sort(key=lambda e: (e[0], e[1]))  # frees (negative) before allocations at the same step
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def assign_slots(buffers: list[Buffer]) -> tuple[list[int], dict[str, int]]:
    """Greedy best-fit reuse: in order of start, each buffer takes the smallest free slot that holds it;
    if none is big enough it grows the largest free slot (or opens a new one when no slot is free).

    Returns the slot sizes and the slot index of each buffer.
    """
    sizes: list[int] = []
    slot_of: dict[str, int] = {}
    busy_until: list[tuple[int, int]] = []  # heap of (end step, slot)
    free: list[tuple[int, int]] = []  # (size, slot), sorted
    for b in sorted(buffers, key=lambda b: (b.start, -b.nbytes)):
        while busy_until and busy_until[0][0] < b.start:
            _, slot = heapq.heappop(busy_until)
            bisect.insort(free, (sizes[slot], slot))
        i = bisect.bisect_left(free, (b.nbytes, -1))
        if i < len(free):
            _, slot = free.pop(i)
        elif free:
            _, slot = free.pop()  # the largest free slot, grown to fit
            sizes[slot] = b.nbytes
        else:
            slot = len(sizes)
            sizes.append(b.nbytes)
        slot_of[b.name] = slot
        heapq.heappush(busy_until, (b.end, slot))
    return sizes, slot_of


def plan_memory(
    graph: torch.fx.Graph, nbytes: Mapping[torch.fx.Node, int], resident: Collection[torch.fx.Node]
) -> MemoryPlan:
    """Liveness analysis and greedy buffer reuse of one graph (see the module docstring)."""
    buffers, weight_bytes = live_buffers(graph, nbytes, resident)
    sizes, slot_of = assign_slots(buffers)
    return MemoryPlan(
        weight_bytes=weight_bytes,
        activation_peak_bytes=peak_live_bytes(buffers),
        arena_bytes=sum(sizes),
        buffers=buffers,
        slot_sizes=sizes,
        slot_of=slot_of,
    )
