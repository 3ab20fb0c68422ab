"""Read back a job's TensorBoard events: its validation curve and the weights' final share of zeros."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ZERO_FRACTION = "weights/zero_fraction"  # logged by lregloss.callbacks.reg_monitor.RegularizationMonitor
EPOCH = "epoch"  # logged by Lightning with every metric, at the same step
# Keep every scalar (0 = no limit; TensorBoard samples 10,000 by default) and skip the rest.
SCALARS_ONLY = {"scalars": 0, "histograms": 1, "compressedHistograms": 1, "images": 1, "audio": 1, "tensors": 1}


@dataclass(frozen=True)
class JobEvents:
    """What a report takes from a job's events.

    Args:
        curve: (epochs completed, value) of the validation metric at each validation during fitting.
        zero_fraction: the last logged share of weights exactly 0; None where none was logged.
    """

    curve: list[tuple[int, float]]
    zero_fraction: float | None


def read_job_events(folder: Path, metric: str, fitted_epochs: int | None) -> JobEvents:
    """The validation curve of ``metric`` and the final zero fraction from ``folder/tensorboard``.

    Args:
        folder: the job's folder.
        metric: the validation metric to follow (``val/acc``).
        fitted_epochs: the job's ``epochs`` from results.json, None where it has none. After
            fitting, the best checkpoint is validated once more at epoch ``fitted_epochs``; that
            point repeats an earlier one and is left out.
    """
    events_dir = folder / "tensorboard"
    if not events_dir.is_dir():
        return JobEvents([], None)
    events = EventAccumulator(str(events_dir), size_guidance=SCALARS_ONLY)
    events.Reload()
    tags = set(events.Tags()["scalars"])
    zero_fraction = events.Scalars(ZERO_FRACTION)[-1].value if ZERO_FRACTION in tags else None
    if metric not in tags or EPOCH not in tags:
        return JobEvents([], zero_fraction)
    epoch_at_step = {event.step: int(event.value) for event in events.Scalars(EPOCH)}
    curve = []
    for event in events.Scalars(metric):
        epoch = epoch_at_step.get(event.step)
        if epoch is not None and (fitted_epochs is None or epoch < fitted_epochs):
            curve.append((epoch + 1, event.value))
    return JobEvents(curve, zero_fraction)
