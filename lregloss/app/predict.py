"""lregloss-predict: a trained run's predictions for a new file in its recipe's format, written to a CSV."""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor

from lregloss.app.checkpointing import CHECKPOINT_DIR
from lregloss.app.error_reporting import USER_ERRORS, ConfigError, config_key, one_line
from lregloss.callbacks.last_checkpoint import LAST
from lregloss.data.in_memory import InMemorySplitsDataModule
from lregloss.lightning import pl
from lregloss.module import RegularizedLossModule
from lregloss.tasks import Task, TaskKind
from lregloss.validation import writable_folder_problem

log = logging.getLogger("lregloss.predict")

EXIT_BAD_INPUT = 2  # as lregloss-train: a folder, file or column that does not exist or does not fit
RUN_CONFIG = "config.yaml"  # the resolved config lregloss-train writes into every run folder
PROBABILITY_DIGITS = 6


def run_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run's validation and test used: its best one, else ``last.ckpt``.

    With ``save_top_k=1`` (the recipes') the best is the one ``epoch*.ckpt``. With several,
    the newest holds ``ModelCheckpoint``'s ``best_model_path``, whose file name is looked up
    in this folder, so a run folder that was moved or copied still finds it.

    Raises:
        ConfigError: the run has no checkpoint.
    """
    folder = run_dir / CHECKPOINT_DIR
    saved = sorted(path for path in folder.glob("*.ckpt") if path.name != LAST)
    if len(saved) > 1:
        newest = max(saved, key=lambda path: path.stat().st_mtime)
        states = torch.load(newest, map_location="cpu", weights_only=True).get("callbacks", {}).values()
        names = {Path(state["best_model_path"]).name for state in states if state.get("best_model_path")}
        best = [path for path in saved if path.name in names]
        return best[0] if best else newest
    if saved:
        return saved[0]
    if (folder / LAST).is_file():
        return folder / LAST
    raise ConfigError(f"{run_dir} holds no checkpoint (looked in {folder}); pass a run folder of lregloss-train")


def prediction_columns(
    task: Task, prediction: Tensor, proba: Tensor | None, top_k: Tensor | None = None
) -> dict[str, list[Any]]:
    """Output column -> values: the decoded prediction, then the distribution where there is one.

    - multiclass, ordinal: ``prediction`` (the class or level name, else its index), then
      ``p(<name>)`` per class or level; for a large vocabulary (``top_k`` given instead of
      ``proba``) ``top<k>``, the k most probable names, best first, separated by spaces;
    - multilabel: ``<attribute>`` (0 or 1) per attribute, then ``p(<attribute>)``;
    - regression: ``prediction`` (one target), or ``prediction_<k>`` per target.
    """
    names = task.names or tuple(str(index) for index in range(task.size))
    columns: dict[str, list[Any]] = {}
    if task.kind is TaskKind.MULTILABEL:
        for index, name in enumerate(names):
            columns[name] = prediction[:, index].long().tolist()
    elif task.kind is TaskKind.REGRESSION:
        values = prediction.reshape(len(prediction), -1)
        for index in range(values.shape[1]):
            columns["prediction" if values.shape[1] == 1 else f"prediction_{index}"] = values[:, index].tolist()
    else:
        columns["prediction"] = [names[index] for index in prediction.tolist()]
    if top_k is not None:
        columns[f"top{top_k.shape[1]}"] = [" ".join(names[index] for index in row) for row in top_k.tolist()]
    if proba is not None:
        for index, name in enumerate(names):
            columns[f"p({name})"] = [round(value, PROBABILITY_DIGITS) for value in proba[:, index].tolist()]
    return columns


def write_csv(path: Path, columns: dict[str, Sequence[Any]]) -> None:
    """A CSV with a header of the column names and one row per value."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))


def predict(
    run_dir: Path, input_path: Path, output: Path, checkpoint: Path | None = None, accelerator: str = "auto"
) -> int:
    """Predict every sample of ``input_path`` with a run's trained module, write ``output``; return the count.

    The module comes from the checkpoint alone (`RegularizedLossModule.from_checkpoint`), the
    data module from the run's ``config.yaml`` with ``predict_path=input_path``, and what
    preparing the input needs from the training split (a vocabulary, feature means) from the
    checkpoint's data module state; a checkpoint without one (a data module of your own) has
    its data module set up on the run's training data first.

    Raises:
        ConfigError: the run folder, the checkpoint or the input is unusable; the message
            names it and the fix.
    """
    if not (run_dir / RUN_CONFIG).is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder of lregloss-train (it has no {RUN_CONFIG}); pass logs/runs/<time> "
            "or a job folder of a sweep"
        )
    if not input_path.exists():
        raise ConfigError(f"{input_path} does not exist (looked at {input_path.resolve()}); pass the file to predict")
    problem = writable_folder_problem(output.resolve().parent)
    if problem:
        raise ConfigError(f"--output {output}: {problem}; pass --output <a file in a writable folder>")
    checkpoint = checkpoint or run_checkpoint(run_dir)
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # a file that is no checkpoint raises any of a dozen types; all mean the same here
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"--checkpoint {checkpoint} cannot be read as a checkpoint ({first_line})") from error
    module = RegularizedLossModule.from_checkpoint(saved, str(checkpoint))
    config = OmegaConf.load(run_dir / RUN_CONFIG)
    with config_key("data", config.data):
        datamodule = instantiate(config.data, predict_path=str(input_path))
    if not isinstance(datamodule, InMemorySplitsDataModule):
        raise ConfigError(
            f"data: {type(datamodule).__name__} does not read new files; use trainer.predict with a "
            "predict_dataloader of your own"
        )
    state = saved.get(type(datamodule).__qualname__)
    if state:
        datamodule.load_state_dict(state)
    elif not datamodule.is_fitted:
        log.info("%s holds no data state; preparing the run's training data first", checkpoint)
    with config_key("--accelerator"):
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    batches = trainer.predict(module, datamodule=datamodule)
    prediction = torch.cat([batch["prediction"] for batch in batches]).cpu()
    proba = torch.cat([batch["proba"] for batch in batches]).float().cpu() if "proba" in batches[0] else None
    top_k = torch.cat([batch["top_k"] for batch in batches]).cpu() if "top_k" in batches[0] else None
    columns = {**datamodule.new_inputs.keys, **prediction_columns(module.task, prediction, proba, top_k)}
    write_csv(output, columns)
    return len(prediction)


def default_output(input_path: Path) -> Path:
    """``<input name without its suffixes>.predictions.csv`` in the current folder."""
    stem = input_path.resolve().name.split(".")[0] or "input"
    return Path(f"{stem}.predictions.csv")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lregloss-predict",
        description="Predict a new file with a trained run; writes one CSV row per sample (its prediction and "
        "distribution). The file is in the run's recipe format: a review CSV (a Review Text column), rows of "
        "feature values (scene, yeast), or a CIFAR-10 batch file, image or folder of images.",
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (logs/runs/<time>, or a sweep's job folder)")
    parser.add_argument("input", type=Path, help="the file (or image folder) to predict")
    parser.add_argument("-o", "--output", type=Path, help="the CSV to write (default: <input>.predictions.csv here)")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint of the run (default: its best, else last.ckpt)")
    parser.add_argument("--accelerator", default="auto", help="Lightning's accelerator: auto (default), cpu, gpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command; the exit status: 0 written, 2 bad input (named on stderr in one line)."""
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger(f"{pl.__name__}.utilities.rank_zero").setLevel(logging.WARNING)  # "GPU available: ..."
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")  # in-memory batches need none
    output = arguments.output or default_output(arguments.input)
    try:
        count = predict(arguments.run_dir, arguments.input, output, arguments.checkpoint, arguments.accelerator)
    except USER_ERRORS as error:
        print(f"Error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {count} predictions to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
