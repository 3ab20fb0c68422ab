"""Train one configuration, or sweep many with -m: python scripts/train.py loss=hinge reg=l1

Continue a killed run from its checkpoints/last.ckpt, with its own config (overrides given
with it apply on top, e.g. trainer.max_epochs=20 where the LR schedule allows):
python scripts/train.py resume=logs/runs/<date_time>

Exit status: 0 done; 1 a sweep in which some jobs failed (the others' results are kept);
2 bad input (config value, data, output folder), named in one line; 3 training diverged.
debug=true (or HYDRA_FULL_ERROR=1) shows the full traceback instead of the one line.
"""

import hydra
from omegaconf import DictConfig

from lregloss.train import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()
