"""A recipe's data module outside a Hydra run: its ``conf/data/<name>.yaml``, arguments overriding it."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf

from lregloss.conf import CONFIG_DIR


def recipe_data(name: str, **arguments: Any):
    """The data module ``data=<name>`` builds (e.g. ``recipe_data("reviews", seed=1)``), not yet set up.

    Raises:
        FileNotFoundError: there is no ``data/<name>.yaml``.
    """
    path = CONFIG_DIR / "data" / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise FileNotFoundError(f"data={name} is not a recipe; choose one of {choices}")
    config = OmegaConf.load(path)
    config.pop("defaults", None)  # the groups a data config picks (data=table: model=mlp) are not the data module's
    return instantiate(config, **arguments)
