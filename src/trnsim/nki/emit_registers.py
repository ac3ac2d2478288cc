"""Builders of register_load and register_store: the sequencer instructions that move one scalar between
memory and a virtual register (nki/isa_registers.py holds the registers)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.isa.instructions import register_load as load_rec
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import read_stored, require_tensor


def register_load(src: Any, location: str | None = None) -> int | None:
    """Issue the load of one-element `src`; its value in functional runs, None in timing runs."""
    ctx = current()
    loc = location or user_location()
    t = require_tensor(src, "register_load src", loc)
    ins = issue(Opcode.REGISTER_LOAD, t, {}, None, loc, label="register_load")
    ins.reads, ins.writes = ins.writes, ()  # it reads the tensor (passed as the call's tile) and writes none
    if not ctx.machine.functional:
        return None
    return int(load_rec.semantics(read_stored(ctx, t, None, loc)))


def register_store(dst: Any, value: int | None, location: str | None = None) -> None:
    """Issue the store of a register's value into one-element `dst` (written in functional runs)."""
    loc = location or user_location()
    t = require_tensor(dst, "register_store dst", loc)
    compute = None if value is None else (lambda: np.full(t.shape, value, np.int64))
    issue(Opcode.REGISTER_STORE, t, {}, None, loc, compute=compute, label="register_store")
