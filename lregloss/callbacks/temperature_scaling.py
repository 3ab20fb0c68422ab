"""Temperature scaling after training: fit T on the validation split, apply it to the test metrics, keep it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from lregloss.calibration import fit_temperature, mean_nll
from lregloss.lightning import pl

log = logging.getLogger(__name__)

TEMPERATURE_KEY = "lregloss_temperature"  # the checkpoint entry that holds the fitted T


class TemperatureScaling(pl.Callback):
    """Before testing, fit one temperature T on the validation split (`fit_temperature`) and use it.

    At ``on_test_start`` (the checkpoint to test is loaded by then) the module's outputs on
    the datamodule's validation split give T; from then on ``module.temperature`` divides the
    logits of every distribution it reports: the test metrics (``test/ece``, ``test/nll``,
    ``test/rps``; the same without T as ``test/uncalibrated/...``, and T as
    ``test/temperature``), the levels decoded by a rule that reads the distribution, and
    ``predict_step``'s ``proba``. T is written into the tested checkpoint
    (``lregloss_temperature``), so `RegularizedLossModule.load_from_checkpoint` and
    ``lregloss-predict`` use it. Under DDP, T is fitted on rank 0's share of the validation
    split and broadcast. A loss without a distribution is left as it is (said in the log).

    Raises:
        ValueError: at test, the trainer has no datamodule to read the validation split from.
    """

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss = pl_module.loss
        if not loss.gives_distribution:
            log.info("temperature scaling: %s gives no distribution; nothing to scale", type(loss).__name__)
            return
        datamodule = trainer.datamodule
        if datamodule is None:
            raise ValueError(
                "TemperatureScaling reads the validation split from the datamodule; test with "
                "trainer.test(module, datamodule=...)"
            )
        outputs, targets = [], []
        with torch.no_grad():
            for batch in datamodule.val_dataloader():
                inputs, target = trainer.strategy.batch_to_device(batch)
                outputs.append(pl_module.model(inputs).float())
                targets.append(target)
        outputs, targets = torch.cat(outputs), torch.cat(targets)
        temperature = float(trainer.strategy.broadcast(fit_temperature(loss, outputs, targets), src=0))
        before, after = float(mean_nll(loss, outputs, targets)), float(mean_nll(loss, outputs, targets, temperature))
        log.info(
            "temperature scaling: T = %.4g fitted on the validation split (%d samples; NLL %.4f -> %.4f)",
            temperature, len(targets), before, after,
        )  # fmt: skip
        pl_module.temperature = temperature
        pl_module.test_metrics.track_uncalibrated()
        if trainer.is_global_zero and trainer.ckpt_path:
            write_temperature(Path(trainer.ckpt_path), temperature)


def write_temperature(path: Path, temperature: float) -> None:
    """Store ``temperature`` in the checkpoint at ``path`` (``lregloss_temperature``), replaced atomically."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint[TEMPERATURE_KEY] = temperature
    staged = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, staged)
    os.replace(staged, path)
