"""A user's script under one Lightning package, run by tests/test_lightning_packages.py: ``python lightning_user.py <package> <log dir>``.

It imports that package first, as a user's project does, then lregloss; trains a plain
module with the Regularization, MaxNormConstraint and RegularizationMonitor callbacks and a
TensorBoard logger of that package, and RegularizedLossModule with a Trainer of it; prints
what it found as JSON.
"""

import importlib
import json
import sys

package, log_dir = sys.argv[1], sys.argv[2]
pl = importlib.import_module({"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}[package])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from lregloss.callbacks import MaxNormConstraint, Regularization, RegularizationMonitor  # noqa: E402
from lregloss.lightning import PACKAGE  # noqa: E402
from lregloss.losses import MulticlassHinge  # noqa: E402
from lregloss.module import RegularizedLossModule  # noqa: E402
from lregloss.regularizers import L1, L2  # noqa: E402
from lregloss.tasks import Task  # noqa: E402


class UserModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        return F.cross_entropy(self.net(inputs), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


torch.manual_seed(0)
data = DataLoader(TensorDataset(torch.randn(64, 6), torch.randint(0, 3, (64,))), batch_size=8)
callbacks = [Regularization([L1(0.02, mode="proximal"), L2(1e-3)]), MaxNormConstraint(0.5), RegularizationMonitor(every_n_steps=2)]
logger = pl.loggers.TensorBoardLogger(log_dir, name="user")
user = UserModule()
trainer = pl.Trainer(max_steps=8, callbacks=callbacks, logger=logger, log_every_n_steps=1,
                     enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
trainer.fit(user, data)
logger.experiment.flush()

module = RegularizedLossModule(nn.Linear(6, 3), MulticlassHinge(), Task("multiclass", 3),
                               optimizer=lambda params: torch.optim.SGD(params, lr=0.1), regularizers={"reg": L2(0.1)})
own = pl.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
own.fit(module, data)

print(json.dumps({
    "bound_to": PACKAGE,
    "callbacks_are_callbacks": all(isinstance(callback, pl.Callback) for callback in callbacks),
    "module_is_lightning_module": isinstance(module, pl.LightningModule),
    "module_steps": own.global_step,
    "zero_share": float((user.net[0].weight == 0).float().mean()),
    "largest_row_norm": float(user.net[0].weight.detach().norm(dim=1).max()),
    "logged": sorted(trainer.callback_metrics),
    "log_dir": logger.log_dir,
}))
