"""Penalties over selected parameters, one idea per file; each ``reg(module) -> Tensor``."""

from lregloss.regularizers.base import Regularizer
from lregloss.regularizers.elastic import ElasticNet
from lregloss.regularizers.l1 import L1
from lregloss.regularizers.l2 import L2
from lregloss.regularizers.max_norm import MaxNormPenalty
from lregloss.regularizers.none import NoRegularizer
from lregloss.regularizers.selection import select_parameters

__all__ = [
    "L1",
    "L2",
    "ElasticNet",
    "MaxNormPenalty",
    "NoRegularizer",
    "Regularizer",
    "select_parameters",
]
