"""The README's "Use lregloss in your own Lightning project" section, every snippet run as written."""

import re

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from lregloss.callbacks import Regularization
from lregloss.regularizers import L1, L2

from conftest import ROOT

SECTION = "## Use lregloss in your own Lightning project"


def snippets(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + len(SECTION))]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_the_python_snippets_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the Trainer writes lightning_logs/ where it runs
    blocks = snippets("python")
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    share = float(re.search(r"exact zeros in the first layer: (\d+)%", capsys.readouterr().out).group(1))
    assert share > 0  # proximal L1 gave exact zeros
    assert (namespace["model"].net[0].weight.detach().norm(dim=1) <= 3.0 + 1e-6).all()
    assert namespace["scores"].grad is not None


def test_the_hydra_callback_config_instantiates_the_callback():
    block = snippets("yaml")[0]
    callback = instantiate(yaml.safe_load(block)["regularization"])
    assert isinstance(callback, Regularization)
    l1, l2 = callback.regularizers["l1"], callback.regularizers["l2"]
    assert isinstance(l1, L1) and l1.strength == pytest.approx(1e-5) and l1.mode == "proximal"
    assert isinstance(l2, L2) and l2.strength == pytest.approx(5e-4)


def test_the_search_path_snippet_composes_lregloss_groups_into_an_app_of_ones_own(tmp_path):
    config = snippets("yaml")[1]
    (tmp_path / "train.yaml").write_text(config + "\ndata:\n  num_classes: 7\n", encoding="utf-8")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
            cfg = compose("train", overrides=["loss=hsoftmax", "reg=l1", "callbacks.max_norm.max_norm=3"])
    finally:
        GlobalHydra.instance().clear()
    assert instantiate(cfg.loss).num_classes == 7
    assert isinstance(instantiate(cfg.reg), L1)
    assert instantiate(cfg.callbacks.max_norm).max_norm == 3
    assert "model" not in cfg and "trainer" not in cfg
