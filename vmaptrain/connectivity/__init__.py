"""Between runs: interpolation barriers, neuron alignment, REPAIR and instability analysis.

from vmaptrain import connectivity as cx
result = cx.compare(model, vars_a, vars_b, train_batches, test_batches, alphas=9)
result["barriers"]["aligned"]["test_acc"]["midpoint"]   # one value per pair
"""

from vmaptrain.connectivity.compare import CONDITIONS, DEFAULT_CONDITIONS, METHODS, compare, curve_barriers, reductions
from vmaptrain.connectivity.errors import ConnectivityError
from vmaptrain.connectivity.interpolate import BARRIER_VARIANTS, alpha_grid, barriers, lerp, lerp_grid
from vmaptrain.connectivity.pairs import all_pairs, check_pairs, gather_pairs, make_batches, run_variables
from vmaptrain.connectivity.spec import PermSpec, permute, register_spec, spec_for

__all__ = [
    "BARRIER_VARIANTS",
    "CONDITIONS",
    "DEFAULT_CONDITIONS",
    "METHODS",
    "ConnectivityError",
    "PermSpec",
    "all_pairs",
    "alpha_grid",
    "barriers",
    "check_pairs",
    "compare",
    "curve_barriers",
    "gather_pairs",
    "lerp",
    "lerp_grid",
    "make_batches",
    "permute",
    "reductions",
    "register_spec",
    "run_variables",
    "spec_for",
]
