"""The values tensor-parallel ranks exchange, moved by NKI collectives on the simulated instance.

A compiled tp run hands each all-reduce (row-parallel partial sums) and the final all-gather (vocabulary
slices of the logits) to `trnsim.nki.run_ranks` as a one-collective kernel, so the values really travel
between the ranks' memories through `nki.collectives`. The time the profile reports for them is priced by
sim/collectives.py, as for trnsim.estimate (TPPlan), so a compiled run and an estimate of the same model
agree on collective time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.nki import collectives as ncc
from trnsim.nki import isa as nisa
from trnsim.nki import language as nl
from trnsim.nki import run_ranks
from trnsim.nki.collectives import ReplicaGroup
from trnsim.nki.kernel import jit


@jit
def all_reduce_kernel(part: Any, replica_group: Any) -> Any:
    """Sum `part` over the replica group (collectives read and write kernel-allocated HBM)."""
    src = nl.ndarray(part.shape, dtype=part.dtype, buffer=nl.shared_hbm, name="tp_src")
    dst = nl.ndarray(part.shape, dtype=part.dtype, buffer=nl.shared_hbm, name="tp_dst")
    out = nl.ndarray(part.shape, dtype=part.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=src, src=part)
    ncc.all_reduce(srcs=[src], dsts=[dst], replica_group=replica_group, op=nl.add)
    nisa.dma_copy(dst=out, src=dst)
    return out


@jit
def all_gather_kernel(part: Any, replica_group: Any) -> Any:
    """Concatenate every rank's `part` along its last dimension, in rank order."""
    rows, cols = part.shape
    ranks = len(replica_group.replica_groups[0])
    src = nl.ndarray(part.shape, dtype=part.dtype, buffer=nl.shared_hbm, name="tp_src")
    dst = nl.ndarray((rows, cols * ranks), dtype=part.dtype, buffer=nl.shared_hbm, name="tp_dst")
    out = nl.ndarray((rows, cols * ranks), dtype=part.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=src, src=part)
    ncc.all_gather(srcs=[src], dsts=[dst], replica_group=replica_group, collective_dim=1)
    nisa.dma_copy(dst=out, src=dst)
    return out


def _run(kernel: Any, parts: list[np.ndarray], target: Any, instance: str | None) -> list[np.ndarray]:
    group = ReplicaGroup([list(range(len(parts)))])
    flat = [np.ascontiguousarray(p.reshape(-1, p.shape[-1])) for p in parts]
    prof = run_ranks(kernel, [(p, group) for p in flat], target=target, instance=instance)
    return [np.asarray(o) for o in prof.outputs]


def all_reduce(parts: list[np.ndarray], target: Any, instance: str | None) -> list[np.ndarray]:
    """Each rank's copy of the sum of `parts` (one array per rank, same shape)."""
    shape = parts[0].shape
    return [o.reshape(shape) for o in _run(all_reduce_kernel, parts, target, instance)]


def all_gather(parts: list[np.ndarray], target: Any, instance: str | None) -> list[np.ndarray]:
    """Each rank's copy of `parts` concatenated along the last dimension."""
    shape = parts[0].shape
    return [o.reshape(*shape[:-1], -1) for o in _run(all_gather_kernel, parts, target, instance)]
