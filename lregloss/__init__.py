"""lregloss: the classic regularizers and losses of deep learning, pluggable into Lightning."""

from lregloss.tasks import Task, TaskKind

__all__ = ["Task", "TaskKind"]
__version__ = "0.1.0"
