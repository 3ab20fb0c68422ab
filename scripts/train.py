"""Train one configuration, or sweep many with -m: python scripts/train.py loss=hinge reg=l1"""

import hydra
from omegaconf import DictConfig

from lregloss.train import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()
