"""A cheap guard for any data module: its first batches must fit the task it declares.

Data modules check their own files at setup, naming file and row (see ``TextDataModule``);
this guard catches the same mistakes in a user's data module before training starts, from
one batch of each loader: targets outside the task's range, inputs holding NaN or inf. It
is not repeated per step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from lregloss.lightning import fabric
from lregloss.tasks import Task, TaskKind


class BatchError(ValueError):
    """A batch that does not fit the data module's task; the message names the loader and the sample."""


def _first_bad(mask: Tensor) -> str:
    """``sample i`` (and ``column j``) of the first True entry of a (B,) or (B, K) mask."""
    index = mask.nonzero()[0].tolist()
    return f"sample {index[0]}" + (f", column {index[1]}" if len(index) > 1 else "")


def check_target(target: Tensor, task: Task, where: str) -> None:
    """Raise a BatchError unless ``target`` is a batch of targets for ``task``.

    Multiclass and ordinal: integer indices in 0..size-1. Multilabel: a (B, size) matrix of
    {0, 1} or of {-1, +1}. Regression: finite values, size per sample.
    """
    if not isinstance(target, Tensor):
        raise BatchError(f"{where}: the target is a {type(target).__name__}, not a tensor")
    if task.is_categorical:
        noun, nouns = ("class index", "classes") if task.kind is TaskKind.MULTICLASS else ("level", "levels")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise BatchError(
                f"{where}: targets must be integer indices in 0..{task.size - 1}, got dtype {target.dtype}"
            )
        outside = (target < 0) | (target >= task.size)
        if outside.any():
            raise BatchError(
                f"{where}, {_first_bad(outside)}: {noun} {int(target[outside][0])} is outside "
                f"0..{task.size - 1} for a {task.kind.value} task with {task.size} {nouns}"
            )
    elif task.kind is TaskKind.MULTILABEL:
        if target.ndim != 2 or target.shape[1] != task.size:
            raise BatchError(
                f"{where}: attribute targets must be (batch, {task.size}), got shape {tuple(target.shape)}"
            )
        values = set(target.unique().tolist())
        if not (values <= {0, 1} or values <= {-1, 1}):
            allowed = (-1, 1) if -1 in values else (0, 1)
            bad = ~torch.isin(target, torch.tensor(allowed, dtype=target.dtype))
            raise BatchError(
                f"{where}, {_first_bad(bad)}: attribute target {target[bad][0].item()} breaks the rule that "
                f"attribute targets are all in {{0, 1}} or all in {{-1, +1}} (values seen: {sorted(values)[:6]})"
            )
    elif target.is_floating_point():
        bad = ~torch.isfinite(target)
        if bad.any():
            raise BatchError(f"{where}, {_first_bad(bad)}: regression target {target[bad][0].item()} is not finite")


def check_inputs(inputs: Any, where: str) -> None:
    """Raise a BatchError where a floating-point input tensor holds NaN or inf."""
    for index, tensor in enumerate(_tensors(inputs)):
        if tensor.is_floating_point():
            bad = ~torch.isfinite(tensor)
            if bad.any():
                position = bad.nonzero()[0].tolist()
                part = f"input {index}, " if index else ""
                if len(position) == 1:
                    element = ""
                elif len(position) == 2:
                    element = f", feature {position[1]}"
                else:
                    element = f", element {tuple(position[1:])}"
                raise BatchError(
                    f"{where}, {part}sample {position[0]}{element}: the input is {tensor[bad][0].item()}; "
                    "inputs must be finite (no NaN or inf)"
                )


def _tensors(value: Any) -> Iterable[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def check_batch(batch: Any, task: Task, where: str) -> None:
    """Check one ``(inputs, target)`` batch against ``task`` (see `check_target`, `check_inputs`)."""
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        raise BatchError(f"{where}: batches must be (inputs, target) pairs, got {type(batch).__name__}")
    inputs, target = batch
    check_inputs(inputs, where)
    check_target(target, task, where)


def check_first_batches(datamodule: Any, task: Task) -> None:
    """Check the first batch of the training and validation loaders of ``datamodule``.

    Drawing the batches leaves the global random generators as they were (``fork_rng``), so
    a run with the check trains exactly as one without it.
    """
    for name in ("train_dataloader", "val_dataloader"):
        with torch.random.fork_rng(devices=[]):
            try:
                loader = getattr(datamodule, name)()
            except (NotImplementedError, fabric.utilities.exceptions.MisconfigurationException):  # Lightning's default: no such loader
                continue
            for index, loader_item in enumerate(loader if isinstance(loader, (list, tuple)) else [loader]):
                batch = next(iter(loader_item), None)
                where = f"first batch of {name}" + (f" #{index}" if isinstance(loader, (list, tuple)) else "")
                if batch is None:
                    raise BatchError(f"{where}: the loader is empty")
                check_batch(batch, task, where)
