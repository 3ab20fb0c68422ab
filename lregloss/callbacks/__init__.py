"""Things that act between training steps."""

from lregloss.callbacks.max_norm import MaxNormConstraint, project_max_norm_
from lregloss.callbacks.reg_monitor import RegularizationMonitor, weight_statistics

__all__ = ["MaxNormConstraint", "RegularizationMonitor", "project_max_norm_", "weight_statistics"]
