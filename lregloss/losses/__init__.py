"""Every loss of the lecture, one family per file; each an ``nn.Module`` with the `Loss` contract."""

from lregloss.losses.adaptive import AdaptiveSoftmax
from lregloss.losses.attributes import AttributeHinge, AttributeLogistic
from lregloss.losses.base import LEVEL_RULES, Loss, LossTaskMismatchError, loss_classes
from lregloss.losses.hierarchical import HierarchicalSoftmax
from lregloss.losses.multiclass import MulticlassHinge, MulticlassSquaredHinge, SoftmaxCrossEntropy
from lregloss.losses.ordinal import OrdinalLogistic
from lregloss.losses.regression import AbsoluteError, SquaredError

__all__ = [
    "LEVEL_RULES",
    "AbsoluteError",
    "AdaptiveSoftmax",
    "AttributeHinge",
    "AttributeLogistic",
    "HierarchicalSoftmax",
    "Loss",
    "LossTaskMismatchError",
    "MulticlassHinge",
    "MulticlassSquaredHinge",
    "OrdinalLogistic",
    "SoftmaxCrossEntropy",
    "SquaredError",
    "loss_classes",
]
