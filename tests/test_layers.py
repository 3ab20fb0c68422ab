"""What a Lightning user imports brings in neither the Hydra application nor its libraries."""

import json
import subprocess
import sys

USER_API = "lregloss.losses, lregloss.regularizers, lregloss.callbacks, lregloss.metrics, lregloss.module"
APPLICATION = (
    "hydra",
    "omegaconf",
    "tensorboard",
    "lregloss.app",
    "lregloss.reporting",
    "lregloss.study",
    "lregloss.data",
    "matplotlib.pyplot",
)


def imported_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    return set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))


def test_the_user_api_imports_nothing_of_the_application():
    modules = imported_after(f"import {USER_API}")
    lightning_alone = imported_after("import pytorch_lightning, torchmetrics")
    ours = modules - lightning_alone  # torchmetrics itself imports torchvision and matplotlib
    found = sorted(name for name in ours if any(name == app or name.startswith(app + ".") for app in APPLICATION))
    assert found == []
    assert not {"torchvision", "matplotlib"} & {name.split(".")[0] for name in ours}
