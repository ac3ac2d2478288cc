"""Which earlier accesses a new access conflicts with: boxes of one allocation, bucketed on a grid.

A box is (d0 start, d0 stop, d1 start, d1 stop, rest start, rest stop) in the allocation's 3-D view
[dim 0, dim 1, remaining dims flattened]. Each box remembers the time its access completes. Kernels touch
big HBM tensors tile by tile, so boxes are bucketed on a grid and a query only looks at the buckets it
covers, not at every tile so far.
"""

from __future__ import annotations

Box = tuple[int, int, int, int, int, int]

ROW_BLOCK = 128  # one partition-tile of rows
COL_BLOCK = 2048  # elements of dim 1; a few free-dim tiles wide
REST_BLOCK = 16384  # elements of the flattened inner dims
_SMALL = 8  # below this many boxes a plain scan beats the grid


class RegionIndex:
    __slots__ = ("boxes", "grid")

    def __init__(self) -> None:
        self.boxes: dict[Box, float] = {}
        self.grid: dict[tuple[int, int, int], set[Box]] = {}

    @staticmethod
    def _cells(b: Box) -> list[tuple[int, int, int]]:
        rows = range(b[0] // ROW_BLOCK, (b[1] - 1) // ROW_BLOCK + 1)
        cols = range(b[2] // COL_BLOCK, (b[3] - 1) // COL_BLOCK + 1)
        rest = range(b[4] // REST_BLOCK, (b[5] - 1) // REST_BLOCK + 1)
        return [(r, c, e) for r in rows for c in cols for e in rest]

    def _candidates(self, b: Box) -> list[Box] | dict[Box, float]:
        if len(self.boxes) <= _SMALL:
            return self.boxes
        if not self.grid:  # grow the grid only once there are enough boxes to need it
            for k in self.boxes:
                for cell in self._cells(k):
                    self.grid.setdefault(cell, set()).add(k)
        seen: set[Box] = set()
        grid = self.grid
        for cell in self._cells(b):
            found = grid.get(cell)
            if found:
                seen |= found
        return list(seen)

    def latest_overlap(self, b: Box) -> float:
        """Completion time of the latest recorded access overlapping box b (0 if none)."""
        boxes = self.boxes
        exact = boxes.get(b)
        if exact is not None and len(boxes) == 1:
            return exact
        r0, r1, c0, c1, e0, e1 = b
        latest = 0.0
        for k in self._candidates(b):
            t = boxes[k]
            if t > latest and k[0] < r1 and r0 < k[1] and k[2] < c1 and c0 < k[3] and k[4] < e1 and e0 < k[5]:
                latest = t
        return latest

    def record(self, b: Box, t: float) -> None:
        old = self.boxes.get(b)
        if old is None:
            self.boxes[b] = t
            if self.grid:
                for cell in self._cells(b):
                    self.grid.setdefault(cell, set()).add(b)
        elif old < t:
            self.boxes[b] = t

    def drop_covered(self, b: Box) -> None:
        """Forget accesses inside box b: a new write to b already waited for them."""
        boxes = self.boxes
        if not boxes:
            return
        r0, r1, c0, c1, e0, e1 = b
        covered = [
            k
            for k in self._candidates(b)
            if r0 <= k[0] and k[1] <= r1 and c0 <= k[2] and k[3] <= c1 and e0 <= k[4] and k[5] <= e1
        ]
        for k in covered:
            del boxes[k]
            if self.grid:
                for cell in self._cells(k):
                    cell_set = self.grid.get(cell)
                    if cell_set is not None:
                        cell_set.discard(k)
        if len(boxes) <= _SMALL:
            self.grid.clear()
