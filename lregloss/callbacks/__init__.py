"""Things that act between training steps."""

from lregloss.callbacks.last_checkpoint import LastCheckpoint
from lregloss.callbacks.max_norm import MaxNormConstraint, project_max_norm_
from lregloss.callbacks.random_state import RandomStateCheckpoint
from lregloss.callbacks.reg_monitor import RegularizationMonitor, weight_statistics
from lregloss.callbacks.regularization import Regularization
from lregloss.callbacks.temperature_scaling import TemperatureScaling
from lregloss.callbacks.throughput import TrainingThroughput
from lregloss.callbacks.whitening import WhiteningInit

__all__ = [
    "LastCheckpoint",
    "MaxNormConstraint",
    "RandomStateCheckpoint",
    "Regularization",
    "RegularizationMonitor",
    "TemperatureScaling",
    "TrainingThroughput",
    "WhiteningInit",
    "project_max_norm_",
    "weight_statistics",
]
