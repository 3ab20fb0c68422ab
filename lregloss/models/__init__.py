"""Backbones: each maps a data module's inputs to ``num_outputs`` values per sample."""

from lregloss.models.cifar import AirbenchNet, ResNet18
from lregloss.models.mlp import MLP
from lregloss.models.text import BagOfNgrams, LinearBagOfNgrams

__all__ = ["MLP", "AirbenchNet", "BagOfNgrams", "LinearBagOfNgrams", "ResNet18"]
