"""What the training framework needs from a data module, yours included."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lregloss.tasks import Task


@runtime_checkable
class TaskDataModule(Protocol):
    """A ``LightningDataModule`` that also says what it asks the model to predict.

    Both attributes must be available after ``setup("fit")``. Batches are
    ``(inputs, target)`` pairs: ``inputs`` is whatever the model's ``forward`` takes,
    ``target`` is what the loss takes (class or level indices, attribute {0,1} matrix,
    real values).

    Attributes:
        task: the task description (kind, number of classes/levels/attributes/targets).
        input_size: the model's input width: number of features, vocabulary size, or
            image channels.
    """

    task: Task
    input_size: int
