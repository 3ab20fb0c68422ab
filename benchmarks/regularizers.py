"""Training steps with each regularizer, run the way ``RegularizedLossModule`` runs them.

A step is: zero the gradients, forward, data loss, backward, ``reg.add_gradient_(params)``
(fused ``torch._foreach_*`` / in-place ops), ``optimizer.step()``, then
``reg.after_optimizer_step(optimizer, params)`` (the proximal L1 step). The penalty's value
is computed only on the steps that log it: the module does so when
``(global_step + 1) % log_every_n_steps == 0`` (10 in ``conf/trainer/default.yaml``), so
each sample here is a block of 10 steps, and the ``log every 10`` variants compute the
penalty once per block, under ``no_grad``, as the module does.

References in the same run: the step with no regularizer (the baseline of every target),
SGD's own ``weight_decay``, and the penalty added to the loss and differentiated by
autograd (the usual way, which the issue's anchors measured at 1.29-1.37x).

    python -m benchmarks.regularizers [--tiny]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lregloss.benchmarking.device import synchronizer
from benchmarks.report import run_standalone
from lregloss.benchmarking.timing import Table, Timing, time_variants
from lregloss.callbacks import project_max_norm_
from lregloss.regularizers import L1, L2, ElasticNet, Regularizer, select_parameters

STEPS_PER_SAMPLE = 10  # one logging step per sample, as with the trainer config's log_every_n_steps=10
LR = 0.01  # plain SGD, no momentum: the optimizer's own work is smallest, so overheads show most
L2_STRENGTH = 1e-4
L1_STRENGTH = 1e-5
MAX_NORM = 3.0  # Srivastava et al.'s range; most rows stay below it, as in practice


def mlp(sizes: tuple[int, ...]) -> nn.Module:
    """Linear -> ReLU blocks of the given widths, the last layer without activation."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def small_cifar_cnn(width: int = 16, side: int = 32) -> nn.Module:
    """Three 3x3 conv -> ReLU -> 2x2 max-pool stages (width, 2 width, 4 width), then a linear layer.

    For 3 x side x side inputs (CIFAR: 32); about 30k parameters at width 16, so its step is
    dominated by the convolutions, not by anything done to the weights.
    """
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * width * (side // 8) ** 2, 10),
    )  # fmt: skip


def training_block(
    make_model: Callable[[], nn.Module],
    inputs: Tensor,
    target: Tensor,
    regularizer: Regularizer | None = None,
    mode: str = "fused",
    log_every: int | None = None,
    weight_decay: float = 0.0,
    max_norm: float | None = None,
) -> Callable[[], None]:
    """A function running ``STEPS_PER_SAMPLE`` training steps on one fixed batch.

    Args:
        make_model: builds the network (seeded, so every variant starts from the same weights).
        inputs, target: the batch.
        regularizer: the penalty, over its default selection (weights of dimension >= 2).
        mode: ``fused`` (the module's way: ``add_gradient_`` after backward) or ``autograd``
            (the penalty added to the loss).
        log_every: compute the penalty value every this many steps (``fused`` only).
        weight_decay: SGD's own coupled weight decay, on every parameter.
        max_norm: project each unit's incoming weights onto this L2 ball after each step
            (``lregloss.callbacks.project_max_norm_``, the callback's).
    """
    torch.manual_seed(0)
    model = make_model().to(inputs.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=weight_decay)
    params = select_parameters(model)
    step_count = 0
    logged: list[Tensor] = []

    def block() -> None:
        nonlocal step_count
        for _ in range(STEPS_PER_SAMPLE):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs), target)
            if regularizer is not None and mode == "autograd":
                loss = loss + regularizer.penalty(params)
            loss.backward()
            if regularizer is not None and mode == "fused":
                regularizer.add_gradient_(params)
            optimizer.step()
            if regularizer is not None and mode == "fused":
                regularizer.after_optimizer_step(optimizer, params)
                if log_every is not None and (step_count + 1) % log_every == 0:
                    with torch.no_grad():
                        logged.append(regularizer.penalty(params))
            if max_norm is not None:
                project_max_norm_(params, max_norm)
            step_count += 1
        logged.clear()

    return block


def step_variants(make_model: Callable[[], nn.Module], inputs: Tensor, target: Tensor, full: bool):
    """name -> (block function, target ratio or None), in table order."""
    every = STEPS_PER_SAMPLE

    def block(**kwargs):
        return training_block(make_model, inputs, target, **kwargs)

    variants = {
        "no regularizer": (block(), None),
        "SGD weight_decay": (block(weight_decay=L2_STRENGTH), None),
        "l2, penalty through autograd": (block(regularizer=L2(L2_STRENGTH), mode="autograd"), None),
        "l2": (block(regularizer=L2(L2_STRENGTH)), 1.10),
        "l2, log every 10": (block(regularizer=L2(L2_STRENGTH), log_every=every), 1.10),
        "l1, penalty through autograd": (block(regularizer=L1(L1_STRENGTH), mode="autograd"), None),
        "l1": (block(regularizer=L1(L1_STRENGTH)), 1.10),
        "l1, log every 10": (block(regularizer=L1(L1_STRENGTH), log_every=every), 1.10),
        "elastic, penalty through autograd": (
            block(regularizer=ElasticNet(L1_STRENGTH, L2_STRENGTH), mode="autograd"), None),
        "elastic": (block(regularizer=ElasticNet(L1_STRENGTH, L2_STRENGTH)), 1.10),
        "elastic, log every 10": (block(regularizer=ElasticNet(L1_STRENGTH, L2_STRENGTH), log_every=every), 1.10),
        "l1 proximal": (block(regularizer=L1(L1_STRENGTH, mode="proximal")), 1.10),
        "l1 proximal, log every 10": (block(regularizer=L1(L1_STRENGTH, mode="proximal"), log_every=every), 1.10),
        "max-norm constraint": (block(max_norm=MAX_NORM), 1.05),
    }  # fmt: skip
    if not full:  # the CNN: the autograd references of l1 and elastic add nothing new there
        for name in ("l1, penalty through autograd", "elastic, penalty through autograd", "l1, log every 10",
                     "l1 proximal, log every 10"):
            del variants[name]
    return variants


def step_table(
    title: str,
    make_model: Callable[[], nn.Module],
    inputs: Tensor,
    target: Tensor,
    repeats: int,
    full: bool,
    with_targets: bool = True,
) -> Table:
    variants = step_variants(make_model, inputs, target, full)
    timings = time_variants(
        {name: fn for name, (fn, _) in variants.items()}, repeats=repeats, warmup=1,
        synchronize=synchronizer(inputs.device),
    )  # fmt: skip
    per_step = {name: Timing(t.name, tuple(s / STEPS_PER_SAMPLE for s in t.samples)) for name, t in timings.items()}
    batch = tuple(inputs.shape)
    table = Table(
        title,
        f"SGD lr {LR}, batch {batch}, l2 {L2_STRENGTH}, l1 {L1_STRENGTH}, max-norm {MAX_NORM}; times per step, "
        f"each sample a block of {STEPS_PER_SAMPLE} steps; {repeats} rounds.",
    )
    for name, (_, target_ratio) in variants.items():
        if name != "no regularizer":
            table.add(name, per_step[name], per_step["no regularizer"], target_ratio if with_targets else None)
    return table


def run(tiny: bool = False, device: torch.device = torch.device("cpu")) -> list[Table]:
    """The MLP 3072-1024-1024-10 and small CIFAR CNN step tables.

    ``tiny``: toy sizes and 2 rounds, for a smoke test; the targets, set for the real sizes,
    are then left out.
    """
    generator = torch.Generator().manual_seed(0)
    if tiny:
        sizes, batch, width, side, repeats = (48, 32, 32, 10), 16, 4, 8, 2
    else:
        sizes, batch, width, side, repeats = (3072, 1024, 1024, 10), 256, 16, 32, 24
    features = torch.randn(batch, sizes[0], generator=generator).to(device)
    images = torch.randn(batch, 3, side, side, generator=generator).to(device)
    labels = torch.randint(0, 10, (batch,), generator=generator).to(device)
    tables = [
        step_table(f"Training step, MLP {'-'.join(map(str, sizes))}", lambda: mlp(sizes), features, labels,
                   repeats, full=True, with_targets=not tiny),
        step_table(f"Training step, small CIFAR CNN (conv {width}-{2 * width}-{4 * width})",
                   lambda: small_cifar_cnn(width, side), images, labels, max(2, repeats // 3), full=False,
                   with_targets=not tiny),
    ]  # fmt: skip
    return tables


if __name__ == "__main__":
    run_standalone(run, __doc__)
