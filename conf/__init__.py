"""lregloss's Hydra configs, installed as the package ``lregloss.conf`` (``pkg://lregloss.conf``).

The repository keeps them here at its top level; ``pyproject.toml`` maps this folder into the
package, so that a wheel carries the same files and ``lregloss-train`` finds them from any
directory.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent  # where train.yaml and the config groups are, installed or not
