"""Design-space sweeps over hardware-spec fields and serving parameters, in local processes or on Ray.

from trnsim.sweep import Evaluator, ServingSetup, parse_sets, run_sweep, pareto_front, write_csv
space = parse_sets(["chip.hbm_bytes_per_ns=2900,4000,5800", "tp=4,8"])
rows = run_sweep(space, Evaluator(ServingSetup("llama-3.1-8b", rate=4.0)), backend="local")
best = pareto_front(rows, x="usd_per_mtok", y="throughput_tok_s")
"""

from trnsim.sweep.errors import SweepError
from trnsim.sweep.evaluate import METRIC_COLUMNS, Evaluator, ServingSetup
from trnsim.sweep.model_sizes import ModelSizes, model_sizes
from trnsim.sweep.plot import plot_pareto
from trnsim.sweep.results import (
    LOWER_IS_BETTER,
    pareto_front,
    parquet_available,
    read_csv,
    read_parquet,
    write_csv,
    write_parquet,
)
from trnsim.sweep.runners import run_sweep
from trnsim.sweep.space import SERVING_PARAMS, Axis, SweepSpace, make_space, parse_set, parse_sets
from trnsim.sweep.space_file import read_space_file
from trnsim.sweep.spec_override import override_spec, spec_field_paths
from trnsim.sweep.step_costs import EstimateFactory, RooflineFactory, StepCostFactory, step_cost_factory

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_COLUMNS",
    "SERVING_PARAMS",
    "Axis",
    "EstimateFactory",
    "Evaluator",
    "ModelSizes",
    "RooflineFactory",
    "ServingSetup",
    "StepCostFactory",
    "SweepError",
    "SweepSpace",
    "make_space",
    "model_sizes",
    "override_spec",
    "pareto_front",
    "parquet_available",
    "parse_set",
    "parse_sets",
    "plot_pareto",
    "read_csv",
    "read_parquet",
    "read_space_file",
    "run_sweep",
    "spec_field_paths",
    "step_cost_factory",
    "write_csv",
    "write_parquet",
]
