"""Data-dependent initialisation when fitting starts: a whitening first layer (airbench's)."""

from __future__ import annotations

import torch

from lregloss.lightning import pl


class WhiteningInit(pl.Callback):
    """Before the first step, make the model's first layer whiten the training images' patches, and freeze it.

    Calls ``pl_module.model.whiten_(inputs)`` (`lregloss.models.cifar.AirbenchNet.whiten_`) with
    the model inputs of the first ``images`` training images, as the data module hands them to
    the model (its ``on_after_batch_transfer``: normalised, not augmented before training
    starts). Under DDP rank 0 computes the filters and every rank takes them, so the ranks keep
    the same weights. A resumed run keeps its restored weights.

    Args:
        images: how many training images to compute the patch covariance of, >= 1.

    Raises:
        ValueError: ``images`` < 1; when fitting starts, a model without ``whiten_`` or a
            trainer without a datamodule.
    """

    def __init__(self, images: int = 5000) -> None:
        if int(images) != images or images < 1:
            raise ValueError(f"images must be an integer >= 1, got {images}")
        self.images = int(images)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path:
            return
        model = getattr(pl_module, "model", None)
        if not callable(getattr(model, "whiten_", None)):
            raise ValueError(
                f"WhiteningInit sets the first layer of a model with whiten_ (AirbenchNet); "
                f"{type(model).__name__} has none: use model=airbench or drop callbacks.whitening"
            )
        datamodule = trainer.datamodule
        if datamodule is None:
            raise ValueError("WhiteningInit reads the training images from the datamodule; fit with datamodule=...")
        inputs, taken = [], 0
        for batch in datamodule.train_dataloader():
            batch = datamodule.on_after_batch_transfer(trainer.strategy.batch_to_device(batch), 0)
            inputs.append(batch[0][: self.images - taken])
            taken += len(inputs[-1])
            if taken >= self.images:
                break
        frozen = {id(param) for param in model.parameters() if not param.requires_grad}
        model.whiten_(torch.cat(inputs))
        if trainer.world_size > 1:  # each rank saw its own shard: all take rank 0's filters (the weights whiten_ froze)
            with torch.no_grad():
                for param in model.parameters():
                    if not param.requires_grad and id(param) not in frozen:
                        param.copy_(trainer.strategy.broadcast(param.detach().cpu(), src=0).to(param.device))
