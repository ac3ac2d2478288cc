"""User mistakes that used to surface as internal simulator errors are clear errors naming the user's line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
from trnsim.errors import InternalError, UsageError


def _line_of(fn, marker: str) -> str:
    path = fn.__code__.co_filename
    lines = Path(path).read_text().splitlines()
    return f"{path}:{next(i for i, s in enumerate(lines, 1) if s.endswith(f'# {marker}'))}"


@nki.jit
def reshape_kernel(x, shape):
    y = x.reshape(shape)  # RESHAPE
    return y


@pytest.mark.parametrize(
    ("shape", "says"),
    [((0, -1), "ambiguous"), ((-1, -1), "at most one -1"), ((-2, 8), "dims must be >= 0"), ((3, 5), "sizes differ")],
)
def test_bad_reshape_is_a_usage_error_at_the_line(shape: tuple[int, ...], says: str) -> None:
    with pytest.raises(UsageError) as err:
        nki.simulate(reshape_kernel)(np.ones((4, 4), np.float32), shape)
    assert not isinstance(err.value, InternalError)
    assert says in str(err.value) and err.value.location == _line_of(reshape_kernel.fn, "RESHAPE")


def test_good_reshapes_still_work(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 6)).astype(np.float32)

    @nki.jit
    def copy_reshaped(x):
        out = nl.ndarray((2, 12), x.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.load(x.reshape((2, -1))))
        return out

    np.testing.assert_array_equal(nki.simulate(copy_reshaped)(x), x.reshape(2, 12))


@nki.jit
def program_id_kernel(x, axis):
    p = nl.program_id(axis)  # PID
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.load(x))
    return out, p


@pytest.mark.parametrize("axis", [-5, -1, 2, 1.0, "0"])
def test_bad_program_id_axis_is_a_usage_error_at_the_line(axis: object) -> None:
    with pytest.raises(UsageError) as err:
        nki.simulate(program_id_kernel[2, 3])(np.ones((4, 4), np.float32), axis)
    assert not isinstance(err.value, InternalError)
    assert "axis must be an int in 0..1" in str(err.value)
    assert err.value.location == _line_of(program_id_kernel.fn, "PID")


KERNEL_FILE = """\
import neuronxcc.nki as nki
import neuronxcc.nki.language as nl
LIMIT = 3
@nki.jit
def double(x):
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.add(nl.load(x), nl.load(x)))
    return out
"""


@pytest.mark.parametrize(
    ("func", "says"), [("3", "no function '3'"), ("LIMIT", "is not a kernel function (it is int)")]
)
def test_cli_kernel_reference_to_a_non_function_is_a_clear_error(tmp_path: Path, func: str, says: str) -> None:
    path = tmp_path / "f.py"
    path.write_text(KERNEL_FILE)
    res = subprocess.run(
        [sys.executable, "-m", "trnsim", "kernel", f"{path}:{func}", "--arg", "128x4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert says in res.stderr and "internal" not in res.stderr and "Traceback" not in res.stderr


def test_non_callable_kernel_object_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="expected a kernel function"):
        nki.simulate(nki.Kernel(3))(np.ones((4, 4), np.float32))  # type: ignore[arg-type]
