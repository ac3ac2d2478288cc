"""The scheduler's core compiled with numba (imported only for streams long enough to pay for it: scheduler.py).

The functions are schedule_core.py's and schedule_regions.py's own code objects, compiled (nopython, cached on disk
next to those files in __pycache__, or numba's per-user cache directory where the source folder is read-only;
NUMBA_CACHE_DIR overrides both). Importing numba costs ~1 CPU s per process, loading the cached machine code
~0.2 s more; the first compile on a fresh machine ~13 CPU s (docs/machine_model.md, "How the simulator keeps up").
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from trnsim.sim import schedule_core, schedule_regions

_jit = numba.njit(cache=True, nogil=True)

run: Callable[..., tuple[int, int]] = schedule_core.build(_jit, {})["run"]
intern_rows: Callable[..., tuple[np.ndarray, np.ndarray]] = _jit(schedule_regions.intern_rows)
