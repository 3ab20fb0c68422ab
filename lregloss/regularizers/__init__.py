"""Penalties over selected parameters, one idea per file; each ``reg(module) -> Tensor``."""

from lregloss.regularizers.base import Regularizer
from lregloss.regularizers.elastic import ElasticNet
from lregloss.regularizers.l1 import L1
from lregloss.regularizers.l2 import L2
from lregloss.regularizers.max_norm import MaxNormPenalty
from lregloss.regularizers.none import NoRegularizer
from lregloss.regularizers.selection import select_parameters
from lregloss.regularizers.step_sizes import UnsupportedOptimizerError, check_proximal_support

__all__ = [
    "L1",
    "L2",
    "ElasticNet",
    "MaxNormPenalty",
    "NoRegularizer",
    "Regularizer",
    "UnsupportedOptimizerError",
    "check_proximal_support",
    "select_parameters",
]
