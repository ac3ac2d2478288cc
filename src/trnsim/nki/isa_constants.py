"""`nki.isa.constants`: the enums of nki.isa under the module name nki-library imports them from."""

from trnsim.nki.isa_enums import dge_mode, engine, matmul_perf_mode, nc_version, oob_mode, reduce_cmd

__all__ = ["dge_mode", "engine", "matmul_perf_mode", "nc_version", "oob_mode", "reduce_cmd"]
