"""The compiled scheduler's memory regions (numba): interned boxes and the per-allocation lists of live ones.

Each region is an interned box (one id per distinct (allocation, box): `intern_rows`); each allocation keeps two
doubly linked lists of live boxes (last writes, reads since), each box with the latest completion time of the
accesses recorded on it. Lists of more than GRID_MIN boxes only count boxes that share a grid cell (scheduler.py's
ROW_BLOCK x COL_BLOCK x REST_BLOCK elements, computed there into `cell`) with the query, as a bucketed index would:
for boxes that are not empty the two agree, and keeping the rule exactly keeps the results identical for the odd
empty box.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GRID_MIN = 8  # above this many live boxes, only boxes sharing a grid cell with the query are candidates


@njit(cache=True, nogil=True)
def _latest(
    head: np.ndarray,
    count: np.ndarray,
    nxt: np.ndarray,
    tim: np.ndarray,
    a: int,
    q: int,
    box: np.ndarray,
    cell: np.ndarray,
) -> float:
    """Latest completion time among the live boxes of allocation `a`'s list that overlap box q."""
    n = count[a]
    if n == 1 and head[a] == q:
        return tim[q]
    r0, r1, c0, c1, e0, e1 = box[q, 0], box[q, 1], box[q, 2], box[q, 3], box[q, 4], box[q, 5]
    latest = 0.0
    grid = n > GRID_MIN
    k = head[a]
    while k >= 0:
        t = tim[k]
        if (
            t > latest
            and box[k, 0] < r1
            and r0 < box[k, 1]
            and box[k, 2] < c1
            and c0 < box[k, 3]
            and box[k, 4] < e1
            and e0 < box[k, 5]
            and (not grid or _share_cell(cell, k, q))
        ):
            latest = t
        k = nxt[k]
    return latest


@njit(cache=True, nogil=True)
def _share_cell(cell: np.ndarray, k: int, q: int) -> bool:
    """Whether boxes k and q have a grid cell in common (cell[b] = lo, hi per dimension, inclusive)."""
    for d in range(3):
        lo_k, hi_k, lo_q, hi_q = cell[k, 2 * d], cell[k, 2 * d + 1], cell[q, 2 * d], cell[q, 2 * d + 1]
        if lo_k > hi_k or lo_q > hi_q or lo_k > hi_q or lo_q > hi_k:
            return False
    return True


@njit(cache=True, nogil=True)
def _unlink(
    head: np.ndarray, count: np.ndarray, nxt: np.ndarray, prv: np.ndarray, live: np.ndarray, a: int, k: int
) -> None:
    p, x = prv[k], nxt[k]
    if p >= 0:
        nxt[p] = x
    else:
        head[a] = x
    if x >= 0:
        prv[x] = p
    live[k] = False
    count[a] -= 1


@njit(cache=True, nogil=True)
def _record(
    head: np.ndarray,
    count: np.ndarray,
    nxt: np.ndarray,
    prv: np.ndarray,
    live: np.ndarray,
    tim: np.ndarray,
    a: int,
    q: int,
    t: float,
) -> None:
    if not live[q]:
        live[q] = True
        tim[q] = t
        # new boxes go to the front; the order of a list does not change a maximum
        h = head[a]
        nxt[q] = h
        prv[q] = -1
        if h >= 0:
            prv[h] = q
        head[a] = q
        count[a] += 1
    elif tim[q] < t:
        tim[q] = t


@njit(cache=True, nogil=True)
def _drop_covered(
    head: np.ndarray,
    count: np.ndarray,
    nxt: np.ndarray,
    prv: np.ndarray,
    live: np.ndarray,
    a: int,
    q: int,
    box: np.ndarray,
    cell: np.ndarray,
) -> None:
    """Forget the live boxes of allocation a's list inside box q (a new write to q waited for them)."""
    grid = count[a] > GRID_MIN
    r0, r1, c0, c1, e0, e1 = box[q, 0], box[q, 1], box[q, 2], box[q, 3], box[q, 4], box[q, 5]
    k = head[a]
    while k >= 0:
        x = nxt[k]
        if (
            r0 <= box[k, 0]
            and box[k, 1] <= r1
            and c0 <= box[k, 2]
            and box[k, 3] <= c1
            and e0 <= box[k, 4]
            and box[k, 5] <= e1
            and (not grid or _share_cell(cell, k, q))
        ):
            _unlink(head, count, nxt, prv, live, a, k)
        k = x


@njit(cache=True, nogil=True)
def intern_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An id per distinct row of `rows` (ids in order of first appearance) and each id's first row."""
    n, w = rows.shape
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    slot = np.full(size, -1, np.int64)  # hash slot -> id
    ids = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    n_ids = 0
    for i in range(n):
        h = np.uint64(1469598103934665603)
        for k in range(w):
            h = (h ^ np.uint64(rows[i, k])) * np.uint64(1099511628211)
        h ^= h >> np.uint64(33)  # murmur3's finaliser: every input bit reaches the low bits
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        s = np.int64(h & np.uint64(mask))
        while True:
            d = slot[s]
            if d < 0:
                slot[s] = n_ids
                first[n_ids] = i
                ids[i] = n_ids
                n_ids += 1
                break
            r = first[d]
            same = True
            for k in range(w):
                if rows[r, k] != rows[i, k]:
                    same = False
                    break
            if same:
                ids[i] = d
                break
            s = (s + 1) & mask
    return ids, first[:n_ids]
