"""The Lightning that lregloss's module, callbacks and data modules are built on: ``lightning.pytorch`` or ``pytorch_lightning``.

Both packages hold the same classes under different names, and a Trainer of one rejects a
LightningModule of the other (``TypeError: model must be a LightningModule``) and passes over
its loggers in ``isinstance`` checks. lregloss therefore binds to one of them, chosen once,
when lregloss is first imported:

1. ``LREGLOSS_LIGHTNING``, where set: ``lightning`` (the unified package) or
   ``pytorch_lightning``;
2. otherwise the one the process has already imported (``import lightning`` before the first
   lregloss import, as lightning-hydra-template's scripts do);
3. otherwise the one installed, ``pytorch_lightning`` first (lregloss's own dependency, so
   that its command line and anything imported before Lightning agree).

``pl`` is the chosen ``LightningModule``/``Trainer`` package and ``fabric`` its Fabric
(``lightning.fabric`` or ``lightning_fabric``); ``PACKAGE`` names the choice.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

CHOICES = {"lightning": ("lightning.pytorch", "lightning.fabric"), "pytorch_lightning": ("pytorch_lightning", "lightning_fabric")}
ENVIRONMENT_VARIABLE = "LREGLOSS_LIGHTNING"


def chosen_package() -> str:
    """``lightning`` or ``pytorch_lightning``, by the rules of the module docstring.

    Raises:
        ImportError: ``LREGLOSS_LIGHTNING`` names something else, or neither package is installed.
    """
    wanted = os.environ.get(ENVIRONMENT_VARIABLE)
    if wanted:
        if wanted not in CHOICES:
            raise ImportError(f"{ENVIRONMENT_VARIABLE}={wanted!r}: use one of {', '.join(CHOICES)}")
        return wanted
    imported = [name for name in ("lightning", "pytorch_lightning") if name in sys.modules]
    if len(imported) == 1:
        return imported[0]
    for name in ("pytorch_lightning", "lightning"):
        if importlib.util.find_spec(name) is not None:
            return name
    raise ImportError("lregloss needs PyTorch Lightning: pip install lightning (or pytorch-lightning)")


PACKAGE = chosen_package()
pl: ModuleType = importlib.import_module(CHOICES[PACKAGE][0])
fabric: ModuleType = importlib.import_module(CHOICES[PACKAGE][1])
for _submodule in ("callbacks", "loggers", "strategies"):  # attributes of pl from here on
    importlib.import_module(f"{pl.__name__}.{_submodule}")
importlib.import_module(f"{fabric.__name__}.utilities.exceptions")
