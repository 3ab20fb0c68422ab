"""LightningDataModules, one per recipe; each declares its `Task` and `input_size`."""

from lregloss.data.protocol import TaskDataModule

__all__ = ["TaskDataModule"]
