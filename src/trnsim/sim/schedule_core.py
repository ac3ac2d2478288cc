"""The scheduler's event loop, compiled (numba): scheduler.py turns the stream into arrays and calls `run`.

State is struct-of-arrays. Memory regions are interned boxes, kept in per-allocation lists of live boxes
(schedule_regions.py). A new access waits for the latest live box it overlaps; a new write forgets the boxes it
covers.

Every time is computed with the same float operations in the same order as the model in scheduler.py's
docstring describes (isa/cost.py's formulas; scheduler.py passes the per-instruction constants), so the
timeline is the same to the last bit as the interpreted loop it replaced (tests/sim/test_scheduler_exact.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trnsim.sim.schedule_regions import _drop_covered, _latest, _record

HBM_PRUNE_MIN = 64  # the in-flight HBM list is pruned only when longer than this

# port kinds in `ports[engine, port]`
PORT_NONE = 0
PORT_SBUF = 1
PORT_PSUM = 2


@njit(cache=True, nogil=True)
def _floor(
    aid: int,
    floors: np.ndarray,
    has_floor: np.ndarray,
    reuse_ptr: np.ndarray,
    reuse_pred: np.ndarray,
    has_reuse: np.ndarray,
    last_done: np.ndarray,
    has_done: np.ndarray,
    stack: np.ndarray,
) -> float:
    """Earliest time an access to `aid` may happen: after every access to its bytes' previous owners
    (recursively through owners never accessed). Memoised at the first call, as the interpreted version."""
    if has_floor[aid]:
        return floors[aid]
    # depth-first, children before parents; the state does not change during one call
    top = 0
    stack[top] = aid
    top += 1
    while top > 0:
        a = stack[top - 1]
        pending = False
        for j in range(reuse_ptr[a], reuse_ptr[a + 1]):
            p = reuse_pred[j]
            if not has_done[p] and has_reuse[p] and not has_floor[p]:
                stack[top] = p
                top += 1
                pending = True
                break
        if pending:
            continue
        f = 0.0
        for j in range(reuse_ptr[a], reuse_ptr[a + 1]):
            p = reuse_pred[j]
            if has_done[p]:
                t = last_done[p]
            elif has_reuse[p]:
                t = floors[p]
            else:
                t = 0.0
            if t > f:
                f = t
        floors[a] = f
        has_floor[a] = True
        top -= 1
    return floors[aid]


@njit(cache=True, nogil=True)
def run(
    order: np.ndarray,  # positions -> instruction index (cores interleaved)
    core: np.ndarray,
    engine: np.ndarray,
    cycles: np.ndarray,
    chained: np.ndarray,  # accumulating TensorE instruction
    sbuf: np.ndarray,  # touches SBUF
    psum: np.ndarray,  # touches PSUM
    pieces: np.ndarray,  # DMA: queue pieces
    piece_bytes: np.ndarray,  # DMA: bytes per piece
    efficiency: np.ndarray,  # DMA: descriptor efficiency
    uses_hbm: np.ndarray,
    reg_ptr: np.ndarray,  # instruction i's regions: reg_box[reg_ptr[i]:reg_ptr[i+1]], reads then writes
    reg_box: np.ndarray,
    reg_write: np.ndarray,
    box: np.ndarray,  # interned box -> (d0 start, d0 stop, d1 start, d1 stop, rest start, rest stop)
    cell: np.ndarray,  # interned box -> its grid cell ranges (lo, hi per dimension)
    box_aid: np.ndarray,  # interned box -> dense allocation id
    n_aid: int,
    reuse_ptr: np.ndarray,  # dense allocation -> the freed ones whose bytes it took over (CSR)
    reuse_pred: np.ndarray,
    has_reuse: np.ndarray,
    is_pred: np.ndarray,
    n_cores: int,
    nq: int,
    ns_per_cycle: np.ndarray,
    latency: np.ndarray,
    ports: np.ndarray,  # [engine, port] -> PORT_NONE / PORT_SBUF / PORT_PSUM
    hbm_rate: float,
    queue_rate: float,
    transfer_overhead: float,
    horizon: float,
    n_engines: int,
    dma: int,
    tensor: int,
    instr_start: np.ndarray,
    instr_end: np.ndarray,
    s_instr: np.ndarray,
    s_core: np.ndarray,
    s_unit: np.ndarray,
    s_start: np.ndarray,
    s_end: np.ndarray,
    g_instr: np.ndarray,
    g_core: np.ndarray,
    g_start: np.ndarray,
    g_end: np.ndarray,
) -> tuple[int, int]:
    """Time the stream; fills the output arrays and returns (slices, all-queue groups) written."""
    n = order.shape[0]
    n_box = box.shape[0]
    n_ports = ports.shape[1]

    # Pre-pass: where each allocation is last written / last touched, whether it is ever read, and where
    # allocations that reuse bytes are first touched.
    last_write = np.full(n_aid, -1, np.int64)
    last_access = np.full(n_aid, -1, np.int64)
    ever_read = np.zeros(n_aid, np.bool_)
    first_pos = np.full(n_aid, -1, np.int64)
    for pos in range(n):
        i = order[pos]
        for j in range(reg_ptr[i], reg_ptr[i + 1]):
            a = box_aid[reg_box[j]]
            last_access[a] = pos
            if reg_write[j]:
                last_write[a] = pos
            else:
                ever_read[a] = True
            if has_reuse[a] and first_pos[a] < 0:
                first_pos[a] = pos

    # region lists: w* = last writes, r* = reads since; per allocation a head and a count, per box the links
    w_head = np.full(n_aid, -1, np.int64)
    w_count = np.zeros(n_aid, np.int64)
    w_exists = np.zeros(n_aid, np.bool_)
    w_next = np.full(n_box, -1, np.int64)
    w_prev = np.full(n_box, -1, np.int64)
    w_live = np.zeros(n_box, np.bool_)
    w_time = np.zeros(n_box, np.float64)
    r_head = np.full(n_aid, -1, np.int64)
    r_count = np.zeros(n_aid, np.int64)
    r_exists = np.zeros(n_aid, np.bool_)
    r_next = np.full(n_box, -1, np.int64)
    r_prev = np.full(n_box, -1, np.int64)
    r_live = np.zeros(n_box, np.bool_)
    r_time = np.zeros(n_box, np.float64)
    # last TensorE write per allocation: its box, result time and issue end (PSUM accumulation chains)
    chain_box = np.full(n_aid, -1, np.int64)
    chain_result = np.zeros(n_aid, np.float64)
    chain_issue = np.zeros(n_aid, np.float64)
    # memory reuse
    last_done = np.zeros(n_aid, np.float64)
    has_done = np.zeros(n_aid, np.bool_)
    floors = np.zeros(n_aid, np.float64)
    has_floor = np.zeros(n_aid, np.bool_)
    stack = np.zeros(n_aid + 1, np.int64)

    engine_free = np.zeros((n_cores, n_engines), np.float64)
    port_free = np.zeros((n_cores, max(n_ports, 1)), np.float64)
    queue_free = np.zeros((n_cores, nq), np.float64)
    level = np.zeros(n_cores, np.float64)  # all queues' common free time, where level_ok
    level_ok = np.ones(n_cores, np.bool_)
    # sorted ends of HBM transfers that may still be in flight, in hbm_end[h_lo:h_hi], with their pieces
    n_hbm = 0
    for i in range(n):
        if engine[i] == dma and uses_hbm[i]:
            n_hbm += 1
    hbm_end = np.zeros(n_hbm + 1, np.float64)
    hbm_pieces = np.zeros(n_hbm + 1, np.int64)
    h_lo = 0
    h_hi = 0
    newest_start = 0.0
    used = np.zeros(max(n_ports, 1), np.bool_)
    qf = np.zeros(nq, np.float64)
    idx = np.zeros(nq, np.int64)
    ns = 0
    ng = 0

    for pos in range(n):
        i = order[pos]
        c = core[i]
        e = engine[i]
        lo_r = reg_ptr[i]
        hi_r = reg_ptr[i + 1]
        ready = 0.0
        for j in range(lo_r, hi_r):
            a = box_aid[reg_box[j]]
            if first_pos[a] == pos:
                t = _floor(a, floors, has_floor, reuse_ptr, reuse_pred, has_reuse, last_done, has_done, stack)
                if t > ready:
                    ready = t
        ch = chained[i]
        for j in range(lo_r, hi_r):
            q = reg_box[j]
            a = box_aid[q]
            if w_exists[a]:  # read after write; write after write
                t = _latest(w_head, w_count, w_next, w_time, a, q, box, cell)
                if ch and chain_box[a] == q and t == chain_result[a]:
                    t = chain_issue[a]
                if t > ready:
                    ready = t
            if reg_write[j] and r_exists[a]:  # write after read
                t = _latest(r_head, r_count, r_next, r_time, a, q, box, cell)
                if t > ready:
                    ready = t

        if e != dma:
            t0 = engine_free[c, e]
            if ready > t0:
                t0 = ready
            for p in range(n_ports):
                k = ports[e, p]
                used[p] = (k == PORT_SBUF and sbuf[i]) or (k == PORT_PSUM and psum[i])
                if used[p] and port_free[c, p] > t0:
                    t0 = port_free[c, p]
            t1 = t0 + cycles[i] * ns_per_cycle[e]
            engine_free[c, e] = t1
            if e == tensor:
                for j in range(lo_r, hi_r):
                    if reg_write[j]:
                        a = box_aid[reg_box[j]]
                        chain_box[a] = reg_box[j]
                        chain_result[a] = t1 + latency[e]
                        chain_issue[a] = t1
            for p in range(n_ports):
                if used[p]:
                    port_free[c, p] = t1
            done = t1 + latency[e]
            s_instr[ns] = i
            s_core[ns] = c
            s_unit[ns] = e
            s_start[ns] = t0
            s_end[ns] = t1
            ns += 1
            instr_start[i] = t0
        else:
            # All pieces of one transfer are the same size, so they take the same time on any queue.
            npc = pieces[i]
            rate = queue_rate
            if uses_hbm[i]:
                if level_ok[c]:
                    first = level[c]
                else:
                    first = queue_free[c, 0]
                    for q2 in range(1, nq):
                        if queue_free[c, q2] < first:
                            first = queue_free[c, q2]
                if ready > first:
                    first = ready
                k = h_lo  # bisect_right: the first end after `first`
                hi = h_hi
                while k < hi:
                    mid = (k + hi) // 2
                    if first < hbm_end[mid]:
                        hi = mid
                    else:
                        k = mid + 1
                inflight = 0
                for h in range(k, h_hi):
                    inflight += hbm_pieces[h]
                share = hbm_rate / (inflight + npc)
                if share < rate:
                    rate = share
            # isa/cost_rules.py: dma_transfer_ns and dma_queue_occupancy_ns
            r_eff = (rate if rate < queue_rate else queue_rate) * efficiency[i]
            dur = piece_bytes[i] / r_eff
            occ = dur if dur >= transfer_overhead else transfer_overhead
            if npc == nq and level_ok[c]:
                # Fast path: every queue of the core frees at the same time (the common case), so the
                # transfer is one group of identical pieces on all queues.
                lv = level[c]
                first = lv if lv > ready else ready
                level[c] = first + occ
                data_end = first + dur
                g_instr[ng] = i
                g_core[ng] = c
                g_start[ng] = first
                g_end[ng] = first + occ
                ng += 1
            else:
                for q2 in range(nq):
                    qf[q2] = level[c] if level_ok[c] else queue_free[c, q2]
                first = np.inf
                latest_start = -np.inf
                # all queues in order, or, with fewer descriptors than queues, the earliest-free ones (stable order)
                for q2 in range(nq):
                    idx[q2] = q2
                if npc != nq:
                    for q2 in range(1, nq):
                        v = idx[q2]
                        m = q2
                        while m > 0 and qf[idx[m - 1]] > qf[v]:
                            idx[m] = idx[m - 1]
                            m -= 1
                        idx[m] = v
                for m in range(npc):
                    q2 = idx[m]
                    st = qf[q2] if qf[q2] > ready else ready
                    s_instr[ns] = i
                    s_core[ns] = c
                    s_unit[ns] = n_engines + q2
                    s_start[ns] = st
                    s_end[ns] = st + occ
                    ns += 1
                    qf[q2] = st + occ
                    if st < first:
                        first = st
                    if st > latest_start:
                        latest_start = st
                lo_q = qf[0]
                hi_q = qf[0]
                for q2 in range(nq):
                    queue_free[c, q2] = qf[q2]
                    if qf[q2] < lo_q:
                        lo_q = qf[q2]
                    if qf[q2] > hi_q:
                        hi_q = qf[q2]
                level_ok[c] = lo_q == hi_q
                level[c] = qf[0]
                data_end = latest_start + dur
            if uses_hbm[i]:  # HBM is in use while the data moves, not for the rest of the overhead
                k = h_lo
                hi = h_hi
                while k < hi:
                    mid = (k + hi) // 2
                    if data_end < hbm_end[mid]:
                        hi = mid
                    else:
                        k = mid + 1
                for h in range(h_hi, k, -1):
                    hbm_end[h] = hbm_end[h - 1]
                    hbm_pieces[h] = hbm_pieces[h - 1]
                hbm_end[k] = data_end
                hbm_pieces[k] = npc
                h_hi += 1
            done = data_end + latency[dma]
            instr_start[i] = first
            if first > newest_start:
                newest_start = first
                if h_hi - h_lo > HBM_PRUNE_MIN:
                    cut = newest_start - horizon
                    k = h_lo
                    hi = h_hi
                    while k < hi:
                        mid = (k + hi) // 2
                        if cut < hbm_end[mid]:
                            hi = mid
                        else:
                            k = mid + 1
                    h_lo = k
        instr_end[i] = done

        for j in range(lo_r, hi_r):
            a = box_aid[reg_box[j]]
            if is_pred[a] and (last_done[a] if has_done[a] else 0.0) < done:
                last_done[a] = done
                has_done[a] = True
        for j in range(lo_r, hi_r):
            q = reg_box[j]
            a = box_aid[q]
            if not reg_write[j]:
                if last_write[a] <= pos:
                    continue
                r_exists[a] = True
                _record(r_head, r_count, r_next, r_prev, r_live, r_time, a, q, done)
            else:
                # Nothing later can conflict with this write if nothing accesses the allocation again, or
                # if the allocation is write-only (a kernel output written tile by tile: the order of its
                # writes is not timed).
                if last_access[a] <= pos or not ever_read[a]:
                    continue
                if not w_exists[a]:
                    w_exists[a] = True
                elif w_count[a] > 0:
                    _drop_covered(w_head, w_count, w_next, w_prev, w_live, a, q, box, cell)
                if r_exists[a] and r_count[a] > 0:
                    _drop_covered(r_head, r_count, r_next, r_prev, r_live, a, q, box, cell)
                _record(w_head, w_count, w_next, w_prev, w_live, w_time, a, q, done)
    return ns, ng
