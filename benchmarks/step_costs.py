"""What a training step costs independently of the device: host syncs and dispatched operator calls.

On a GPU a small step is bound by kernel launches and by the waits for the device that every
host read of a tensor's value costs, not by arithmetic; the CPU cannot time that, but it can
count it. ``torch.profiler`` records every training step of a short fit, and per step this
counts:

- **host syncs**: operator calls that read a tensor's value on the host (``item``, ``bool``,
  ``float`` of a tensor: ``aten::_local_scalar_dense``) or whose output size depends on the
  data (``nonzero``, ``masked_select``, ``unique``), each a wait for the device on a GPU;
- **ops**: top-level operator calls (``aten::*`` not inside another), each at least one kernel
  launch on a GPU.

Everything runs inside `lregloss.code_paths.accelerator_code_paths`, so lregloss takes the
code paths a GPU takes (CPU-only shortcuts off). Steps on which Lightning logs are left out
(logging reads values by design); the median over the other steps is reported, against a bare
LightningModule with the same network and optimizer (fused AdamW, the recipes' default).
Targets: no host sync beyond the bare module's, and the module's ops within 10% of the bare
module's plus what each regularizer needs; "x3 layers" repeats a row with three times the
hidden layers, where an op count that grows shows a per-tensor loop.

    python -m benchmarks.step_costs [--tiny]
"""

from __future__ import annotations

import collections
import contextlib
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import DataLoader, TensorDataset

from pytorch_lightning.callbacks import LearningRateMonitor, RichProgressBar
from pytorch_lightning.loggers import TensorBoardLogger

from benchmarks.module_epoch import quiet_lightning
from benchmarks.report import run_standalone
from lregloss.callbacks import LastCheckpoint, MaxNormConstraint, RegularizationMonitor
from lregloss.code_paths import accelerator_code_paths
from lregloss.losses import SoftmaxCrossEntropy
from lregloss.models import MLP
from lregloss.models.cifar import AirbenchNet
from lregloss.module import RegularizedLossModule
from lregloss.private_names import is_logging_step
from lregloss.regularizers import L1, L2, ElasticNet, MaxNormPenalty, NoRegularizer, Regularizer
from lregloss.tasks import Task

SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::unique", "aten::_unique2")
STEP = "lregloss_benchmark_step"
FEATURES, CLASSES, BATCH = 64, 10, 64
HIDDEN = (256,)  # one hidden layer: two weights, two biases
DEEPER = (256, 256, 256)  # three hidden layers: the same row again, to show per-tensor loops
STEPS, TINY_STEPS = 24, 8
LOG_EVERY_N_STEPS = 10
OPTIMIZER = partial(torch.optim.AdamW, lr=1e-3, fused=True)
CIFAR_WIDTHS, CIFAR_BATCH = (32, 64, 128), 32  # experiment=cifar10_cpu's network; a small batch keeps the CPU time short
CIFAR_ROW = (
    f"CIFAR-10 recipe as run (AirbenchNet {'/'.join(map(str, CIFAR_WIDTHS))}, batch {CIFAR_BATCH}; against a bare module "
    "with the same net and SGD)"
)
OPS_TARGET = 1.10  # the module's ops within 10% of the bare LightningModule's
REGULARIZERS: dict[str, Callable[[], Regularizer]] = {
    "reg=l2": lambda: L2(1e-4),
    "reg=l1 (gradient)": lambda: L1(1e-4),
    "reg=l1 (proximal, after AdamW)": lambda: L1(1e-4, mode="proximal"),
    "reg=elastic": lambda: ElasticNet(1e-4, 1e-4),
    "reg=maxnorm (penalty)": lambda: MaxNormPenalty(1e-4),
}


@dataclass(frozen=True)
class StepCost:
    """One training step: top-level ops, host syncs (and which), and whether Lightning logged on it."""

    ops: int
    syncs: int
    sync_names: tuple[str, ...]
    logging: bool


@dataclass
class CostRow:
    """A variant's median step cost (non-logging steps) against the bare module's."""

    label: str
    ops: float
    syncs: float
    baseline_ops: float
    baseline_syncs: float
    deeper_extra_ops: float | None = None  # ops beyond the bare module's with `DEEPER` hidden layers
    ops_target: float | None = None  # the largest ops / baseline ops, where the row has one
    syncs_added: list[str] = field(default_factory=list)

    @property
    def extra_ops(self) -> float:
        return self.ops - self.baseline_ops

    @property
    def extra_syncs(self) -> float:
        return self.syncs - self.baseline_syncs

    @property
    def met(self) -> bool:
        """No sync beyond the baseline's, and the ops target where there is one."""
        ops_met = self.ops_target is None or self.ops <= self.ops_target * self.baseline_ops
        return self.extra_syncs <= 0 and ops_met


@dataclass
class CostTable:
    """Rows of step costs; ``markdown`` and ``summary_rows`` as `lregloss.benchmarking.timing.Table` has them."""

    title: str
    setup: str
    rows: list[CostRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [row.label for row in self.rows]

    def row(self, label: str) -> CostRow:
        return next(row for row in self.rows if row.label == label)

    def markdown(self) -> str:
        lines = [
            f"### {self.title}", "", self.setup, "",
            "| variant | ops / step | ops beyond the bare module | the same, x3 layers | host syncs / step "
            "| syncs beyond the bare module | target | met |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]  # fmt: skip
        for row in self.rows:
            target = "no added sync" + ("" if row.ops_target is None else f", ops <= {row.ops_target:.2f}x")
            deeper = "" if row.deeper_extra_ops is None else f"{row.deeper_extra_ops:+.0f}"
            lines.append(
                f"| {row.label} | {row.ops:.0f} | {row.extra_ops:+.0f} | {deeper} | {row.syncs:.0f} "
                f"| {row.extra_syncs:+.0f}{' (' + ', '.join(row.syncs_added) + ')' if row.syncs_added else ''} "
                f"| {target} | {'yes' if row.met else '**no**'} |"
            )
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines)

    def summary_rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """(variant, baseline, measured, second measure, target, met) per row, for RESULTS.md's target summary."""
        return [
            (row.label, "bare LightningModule", f"{row.extra_syncs:+.0f} syncs", f"{row.ops / row.baseline_ops:.2f}x ops",
             "no added sync" + ("" if row.ops_target is None else f", <= {row.ops_target:.2f}x ops"),
             "yes" if row.met else "**no**")
            for row in self.rows
        ]  # fmt: skip


class StepMarker(pl.Callback):
    """Wrap each training batch, from ``on_train_batch_start`` to ``on_train_batch_end``, in a profiler range."""

    def __init__(self) -> None:
        self.logging: list[bool] = []
        self._range: record_function | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        self.logging.append(is_logging_step(trainer))
        self._range = record_function(STEP)
        self._range.__enter__()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        self._range.__exit__(None, None, None)


def step_costs(prof: profile, logging: Sequence[bool]) -> list[StepCost]:
    """Per ``STEP`` range of the profile: its top-level ``aten::`` calls and its host syncs."""
    events = prof.events()
    costs = []
    steps = sorted((event for event in events if event.name == STEP), key=lambda event: event.time_range.start)
    for step, logged in zip(steps, logging):
        start, end = step.time_range.start, step.time_range.end
        inside = [e for e in events if e.name.startswith("aten::") and start <= e.time_range.start <= end]
        top = [e for e in inside if not _inside_an_op(e)]
        syncs = tuple(e.name for e in inside if e.name in SYNC_OPS)
        costs.append(StepCost(len(top), len(syncs), syncs, logged))
    return costs


def _inside_an_op(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def median_cost(costs: Sequence[StepCost]) -> tuple[float, float, collections.Counter]:
    """Median ops and syncs over the non-logging steps after the first two (set-up), and the syncs' names."""
    kept = [cost for cost in costs[2:] if not cost.logging]
    names = collections.Counter(name for cost in kept for name in cost.sync_names)
    return (statistics.median(c.ops for c in kept), statistics.median(c.syncs for c in kept),
            collections.Counter({name: count / len(kept) for name, count in names.items()}))  # fmt: skip


class BareModule(pl.LightningModule):
    """The least a LightningModule needs: the network, cross-entropy, the optimizer."""

    def __init__(self, model: nn.Module, optimizer: Callable = OPTIMIZER) -> None:
        super().__init__()
        self.model = model
        self.optimizer = optimizer

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, target = batch
        return F.cross_entropy(self.model(inputs), target)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(self.parameters())


def data(steps: int, shape: tuple[int, ...] = (FEATURES,), batch: int = BATCH) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(steps * batch, *shape, generator=generator)
    return DataLoader(TensorDataset(inputs, torch.randint(0, CLASSES, (steps * batch,), generator=generator)), batch_size=batch)


def profiled_fit(
    module: pl.LightningModule,
    steps: int,
    callbacks: Sequence[pl.Callback] = (),
    accelerator_paths: bool = True,
    batches: DataLoader | None = None,
    **trainer_options,
) -> list[StepCost]:
    """One epoch of ``steps`` batches under the profiler, on the accelerator code paths (or the CPU's).

    ``trainer_options`` replace the defaults: no logger, checkpoints or progress bar.
    """
    marker = StepMarker()
    options = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, **trainer_options}
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", enable_model_summary=False, log_every_n_steps=LOG_EVERY_N_STEPS,
        callbacks=[marker, *callbacks], **options,
    )  # fmt: skip
    paths = accelerator_code_paths() if accelerator_paths else contextlib.nullcontext()
    with quiet_lightning(), paths, profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.fit(module, batches or data(steps))
    return step_costs(prof, marker.logging)


def cifar_recipe_costs(steps: int, folder: Path) -> tuple[tuple[float, float, collections.Counter], ...]:
    """The CIFAR-10 recipe's step as ``experiment=cifar10_cpu`` runs it, and a bare module's with the same network.

    The recipe: `AirbenchNet` 32/64/128, softmax, L2 (5e-4), Nesterov SGD, TensorBoard, the Rich
    progress bar, the learning-rate and regularization monitors, ``last.ckpt`` every 100 steps.
    """
    batches = data(steps, (3, 32, 32), CIFAR_BATCH)
    optimizer = partial(torch.optim.SGD, lr=0.4, momentum=0.85, nesterov=True)

    def network() -> AirbenchNet:
        torch.manual_seed(0)
        return AirbenchNet(3, CLASSES, widths=CIFAR_WIDTHS)

    recipe = RegularizedLossModule(network(), SoftmaxCrossEntropy(), Task("multiclass", CLASSES), optimizer,
                                   regularizers={"reg": L2(5e-4)})  # fmt: skip
    callbacks = [LearningRateMonitor("step"), RegularizationMonitor(), RichProgressBar(), LastCheckpoint(str(folder))]
    as_run = profiled_fit(recipe, steps, callbacks, batches=batches, logger=TensorBoardLogger(folder),
                          enable_progress_bar=True, enable_checkpointing=True)  # fmt: skip
    bare = BareModule(network(), optimizer)
    return median_cost(as_run), median_cost(profiled_fit(bare, steps, batches=batches))


def profiled_loop(model: nn.Module, steps: int) -> list[StepCost]:
    """A plain PyTorch loop over the same batches: zero_grad, forward, backward, step."""
    optimizer = OPTIMIZER(model.parameters())
    with accelerator_code_paths(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for inputs, target in data(steps):
            with record_function(STEP):
                optimizer.zero_grad()
                F.cross_entropy(model(inputs), target).backward()
                optimizer.step()
    return step_costs(prof, [False] * steps)


def module(hidden: Sequence[int], regularizer: Regularizer) -> RegularizedLossModule:
    return RegularizedLossModule(
        MLP(FEATURES, CLASSES, hidden_sizes=hidden), SoftmaxCrossEntropy(), Task("multiclass", CLASSES), OPTIMIZER,
        regularizers={"reg": regularizer},
    )  # fmt: skip


def run(tiny: bool = False, device: torch.device = torch.device("cpu")) -> list[CostTable]:
    """Count every variant at both depths; one table, with the bare LightningModule as the baseline."""
    if device.type != "cpu":
        return []  # counts, not times: the CPU counts what a GPU step launches and waits for
    torch.manual_seed(0)
    steps = TINY_STEPS if tiny else STEPS
    variants: dict[str, Callable[[Sequence[int]], list[StepCost]]] = {
        "plain PyTorch loop": lambda hidden: profiled_loop(MLP(FEATURES, CLASSES, hidden_sizes=hidden), steps),
        "RegularizedLossModule, reg=none": lambda hidden: profiled_fit(module(hidden, NoRegularizer()), steps),
        **{
            f"RegularizedLossModule, {label}": (lambda hidden, make=make: profiled_fit(module(hidden, make()), steps))
            for label, make in REGULARIZERS.items()
        },
        "RegularizedLossModule + MaxNormConstraint(3)": lambda hidden: profiled_fit(
            module(hidden, NoRegularizer()), steps, [MaxNormConstraint(3.0)]
        ),
    }
    bare = {depth: median_cost(profiled_fit(BareModule(MLP(FEATURES, CLASSES, hidden_sizes=depth)), steps))
            for depth in (HIDDEN, DEEPER)}  # fmt: skip
    table = CostTable(
        "Host syncs and dispatched ops per training step (accelerator code paths)",
        f"MLP {FEATURES}-{'-'.join(map(str, HIDDEN))}-{CLASSES} (x3 layers: {FEATURES}-{'-'.join(map(str, DEEPER))}-"
        f"{CLASSES}), batch {BATCH}, fused AdamW, {steps} steps, `log_every_n_steps={LOG_EVERY_N_STEPS}`; the median "
        "over the steps that do not log, after the first two. Baseline: a bare LightningModule with the same net "
        f"and optimizer ({bare[HIDDEN][0]:.0f} ops, {bare[HIDDEN][1]:.0f} host syncs per step: on the CPU, fused "
        "AdamW's own kernel reads each parameter's step count).",
    )  # fmt: skip
    for label, variant in variants.items():
        (ops, syncs, names), (deeper_ops, _, _) = (median_cost(variant(depth)) for depth in (HIDDEN, DEEPER))
        added = sorted(set(names) - set(bare[HIDDEN][2]) | {n for n in names if names[n] > bare[HIDDEN][2].get(n, 0)})
        table.rows.append(CostRow(
            label, ops, syncs, bare[HIDDEN][0], bare[HIDDEN][1], deeper_extra_ops=deeper_ops - bare[DEEPER][0],
            ops_target=OPS_TARGET if label == "RegularizedLossModule, reg=none" else None, syncs_added=added,
        ))  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        (ops, syncs, names), (bare_ops, bare_syncs, bare_names) = cifar_recipe_costs(steps, Path(folder))
    table.rows.append(CostRow(
        CIFAR_ROW, ops, syncs, bare_ops, bare_syncs,
        syncs_added=sorted(name for name in names if names[name] > bare_names.get(name, 0)),
    ))  # fmt: skip
    table.notes.append(
        "ops beyond the bare module: what lregloss adds per step (the module's divergence flag, each regularizer's "
        "fused multi-tensor ops); where the x3-layers column is larger, the variant has a per-tensor loop"
    )
    return [table]


if __name__ == "__main__":
    run_standalone(run, __doc__)
