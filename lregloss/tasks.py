"""What a data set asks a model to predict, declared by every data module."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TaskKind(str, Enum):
    """The four kinds of target this plugin compares losses on."""

    MULTICLASS = "multiclass"  # one class index in 0..C-1 per sample
    MULTILABEL = "multilabel"  # A binary attributes per sample, {0,1} or {-1,+1}
    ORDINAL = "ordinal"  # one of K ordered levels 0..K-1 (star ratings 1..5 -> 0..4)
    REGRESSION = "regression"  # K real values per sample


@dataclass(frozen=True)
class Task:
    """The task description a data module declares.

    Args:
        kind: what is predicted (a `TaskKind` or its string value).
        size: number of classes (multiclass), attributes (multilabel), ordered levels
            (ordinal) or real-valued targets (regression).
        names: optional display names of the classes, attributes or levels.
        class_counts: optional training-set frequency of each class or level (used, for
            example, to build a Huffman tree for hierarchical softmax).

    Raises:
        ValueError: unknown kind, size < 1 (< 2 for classes and levels), or names and
            class_counts whose length differs from size.
    """

    kind: TaskKind
    size: int
    names: tuple[str, ...] | None = None
    class_counts: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", TaskKind(self.kind))
        except ValueError:
            allowed = ", ".join(k.value for k in TaskKind)
            raise ValueError(f"Task kind {self.kind!r} is unknown; use one of: {allowed}") from None
        smallest = 2 if self.kind in (TaskKind.MULTICLASS, TaskKind.ORDINAL) else 1
        if int(self.size) != self.size or self.size < smallest:
            raise ValueError(f"Task size must be an integer >= {smallest} for a {self.kind.value} task, got {self.size}")
        for field in ("names", "class_counts"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, tuple(value))
                if len(value) != self.size:
                    raise ValueError(f"Task {field} has {len(value)} entries but size is {self.size}")

    @property
    def is_categorical(self) -> bool:
        """True where targets are class indices (multiclass or ordered levels)."""
        return self.kind in (TaskKind.MULTICLASS, TaskKind.ORDINAL)
