"""The sparse CBOW step (sparse word vectors, hsoftmax with sparse node gradients) in the setups users run:
it must end with the weights of the dense step (torch's autograd path: embedding bag, padded paths, dense
SGD update) run in the same setup, and in fp32 the accumulated and manual steps with the plain one's."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lregloss.lightning import pl
from lregloss.losses import HierarchicalSoftmax
from lregloss.models.text import ContextBag

VOCABULARY, WIDTH, STEPS_DATA = 40, 8, 96


def words(seed: int = 0) -> TensorDataset:
    """Contexts of 4 ids (0 = padding) and a centre word that depends on the first one."""
    generator = torch.Generator().manual_seed(seed)
    contexts = torch.randint(0, VOCABULARY + 1, (STEPS_DATA, 4), generator=generator)
    centres = (contexts[:, 0] * 7 + 3) % VOCABULARY
    return TensorDataset(contexts, centres)


class Cbow(pl.LightningModule):
    def __init__(self, sparse: bool, manual: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = ContextBag(VOCABULARY + 1, WIDTH, WIDTH, sparse=sparse)
        counts = [VOCABULARY - c for c in range(VOCABULARY)]
        self.loss = HierarchicalSoftmax(WIDTH, VOCABULARY, class_counts=counts, sparse=sparse)
        with torch.no_grad():  # nodes away from zero, so every gradient term is exercised from the first step
            self.loss.weight.normal_(0, 0.3)
            self.loss.bias.normal_(0, 0.3)
        self.automatic_optimization = not manual

    def training_step(self, batch, batch_idx):
        contexts, centres = batch
        value = self.loss(self.model(contexts), centres)
        if not self.automatic_optimization:
            optimizer = self.optimizers()
            optimizer.zero_grad()
            self.manual_backward(value)
            optimizer.step()
        return value

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def trained(module: Cbow, batch_size: int = 16, **trainer) -> dict[str, torch.Tensor]:
    run = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, accelerator="cpu", **trainer)  # fmt: skip
    run.fit(module, DataLoader(words(), batch_size=batch_size))
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


@pytest.fixture(scope="module")
def plain_fp32() -> dict[str, torch.Tensor]:
    """The dense path, fp32, 16 words a step, automatic optimization."""
    return trained(Cbow(sparse=False))


def scaled_16_mixed() -> dict:
    from lregloss.lightning import pl as lightning

    plugin = lightning.plugins.precision.MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    return {"plugins": [plugin]}


# name -> (manual optimization, Trainer arguments, words a step, largest difference from the dense step as a
# share of how far the weights moved: fp32 sums in another order only; bf16 and fp16 round the features and
# the dense path's products (measured: 0.2% and 0.03% of the movement), where a 1% error in any gradient
# shows as about 1%)
SETUPS = {
    "fp32": (False, dict, 16, 1e-4),
    "accumulation (2 x 8 words)": (False, lambda: {"accumulate_grad_batches": 2}, 8, 1e-4),
    "gradient clipping by norm": (False, lambda: {"gradient_clip_val": 0.5}, 16, 1e-4),
    "manual optimization": (True, dict, 16, 1e-4),
    "bf16-mixed": (False, lambda: {"precision": "bf16-mixed"}, 16, 5e-3),
    "16-mixed, GradScaler": (False, scaled_16_mixed, 16, 2e-3),
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_the_sparse_step_ends_with_the_dense_steps_weights(plain_fp32, setup):
    manual, trainer, batch_size, tolerance = SETUPS[setup]
    dense = trained(Cbow(sparse=False, manual=manual), batch_size, **trainer())
    sparse = trained(Cbow(sparse=True, manual=manual), batch_size, **trainer())
    start = Cbow(sparse=False).state_dict()
    for name, value in sparse.items():
        moved = (dense[name] - start[name]).abs().max()
        assert moved > 0.01, f"{name} never moved"
        assert (value - dense[name]).abs().max() <= tolerance * moved, f"{setup}: {name}"
        if trainer is dict or batch_size != 16:  # fp32 without clipping: the same update as the plain run
            torch.testing.assert_close(value, plain_fp32[name], atol=1e-5, rtol=1e-5, msg=f"{setup}: {name}")
