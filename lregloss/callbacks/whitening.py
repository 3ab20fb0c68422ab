"""Data-dependent initialisation before fitting: a whitening first layer (airbench's)."""

from __future__ import annotations

import torch

from lregloss.lightning import pl


class WhiteningInit(pl.Callback):
    """Before the first step, make the model's first layer whiten the training images' patches, and freeze it.

    Calls ``pl_module.model.whiten_(inputs)`` (`lregloss.models.cifar.AirbenchNet.whiten_`) with
    the model inputs of the first ``images`` training images, as the data module hands them to
    the model (its ``on_after_batch_transfer``: normalised, not augmented before training
    starts). It runs in ``setup``, before the strategy moves and wraps the model, so DDP never
    sees the frozen weights as trainable; there rank 0's filters go to every rank (a data
    module may hand each rank its own share), so the ranks keep the same weights. A resumed
    run then restores its checkpoint's weights over the computed ones (Lightning restores
    after ``setup``): the first layer stays frozen, at the values it trained with.

    Args:
        images: how many training images to compute the patch covariance of, >= 1.

    Raises:
        ValueError: ``images`` < 1; at setup, a model without ``whiten_`` or a trainer
            without a datamodule.
    """

    def __init__(self, images: int = 5000) -> None:
        if int(images) != images or images < 1:
            raise ValueError(f"images must be an integer >= 1, got {images}")
        self.images = int(images)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
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
            batch = datamodule.on_after_batch_transfer(batch, 0)
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
