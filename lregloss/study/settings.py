"""What every study is given, and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Smoke size: one epoch, two validation and test batches, every step logged.
TINY_TRAINING = (
    "trainer.max_epochs=1",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
)


@dataclass(frozen=True)
class StudySettings:
    """Where a study reads its configs, trains and writes, and at what size.

    Args:
        conf_dir: the ``conf/`` folder the runs are composed from.
        work_dir: the runs' folders go below ``<work_dir>/<study>/``.
        output: where the study's Markdown page and plots go (``results/``).
        tiny: smoke size: fewer settings and seeds, `TINY_TRAINING`, toy timings.
        reviews_overrides: added to every run on the reviews data (``data.path=<csv>``).
    """

    conf_dir: Path
    work_dir: Path
    output: Path
    tiny: bool = False
    reviews_overrides: tuple[str, ...] = ()

    @property
    def training(self) -> tuple[str, ...]:
        """Overrides added to every training run: `TINY_TRAINING` at smoke size, else none."""
        return TINY_TRAINING if self.tiny else ()

    @property
    def seeds(self) -> tuple[int, ...]:
        """Model seeds of the runs whose spread is reported: 0, 1, 2 (0, 1 at smoke size)."""
        return (0, 1) if self.tiny else (0, 1, 2)


@dataclass(frozen=True)
class StudyOutcome:
    """A study's Markdown (without the page header the runner adds), the plots it wrote, one-line findings."""

    name: str
    title: str
    markdown: str
    plots: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)
