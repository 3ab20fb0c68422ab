"""lregloss-predict: a trained run predicts new files of each recipe's format as its own test split."""

from __future__ import annotations

import csv
import gzip
import re

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.io import write_jpeg, write_png

from lregloss.app.predict import main, run_checkpoint
from lregloss.app.train import train
from lregloss.data.cifar10_files import FOLDER_NAME, CIFAR10Arrays, write_cifar10
from lregloss.data.files import shipped_path
from lregloss.data.multilabel import BENCHMARKS
from lregloss.module import RegularizedLossModule

from conftest import CONF, ROOT, write_reviews_csv
from test_train import TINY

CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SMALL_CIFAR = [
    "experiment=cifar10_cpu",
    "data.download=false",
    "data.val_size=20",
    "data.batch_size=16",
    "model.widths=[4,8,8]",
]


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def trained_run(run_dir, *overrides: str):
    """A run folder of the real training function (a few batches), with its module and rebuilt data module."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, *TINY, f"paths.output_dir={run_dir}"])
    GlobalHydra.instance().clear()
    train(cfg)
    module = RegularizedLossModule.load_from_checkpoint(run_checkpoint(run_dir))
    datamodule = instantiate(OmegaConf.load(run_dir / "config.yaml").data)
    datamodule.setup("fit")
    return module, datamodule


def expected_proba(module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.predict_step([inputs], 0)["proba"]


def probabilities(rows, names) -> torch.Tensor:
    return torch.tensor([[float(row[f"p({name})"]) for name in names] for row in rows])


@pytest.fixture(scope="module")
def reviews_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reviews")
    data = write_reviews_csv(folder / "reviews.csv")
    return folder / "run", *trained_run(folder / "run", f"data.path={data}", "loss=softmax")


def write_test_split_csv(path, datamodule) -> None:
    """The reviews of the run's test split as a CSV to predict: Title and Review Text only, no Rating."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Title", "Review Text"])
        for row in datamodule.split_indices["test"].tolist():
            writer.writerow(datamodule.texts[row].split("\n", 1))


def test_a_review_csv_is_predicted_as_the_runs_test_split(reviews_run, tmp_path, monkeypatch):
    run_dir, module, datamodule = reviews_run
    write_test_split_csv(tmp_path / "new.csv", datamodule)
    monkeypatch.chdir(tmp_path)
    assert main([str(run_dir), "new.csv"]) == 0
    rows = read_csv(tmp_path / "new.predictions.csv")  # the default output: <input>.predictions.csv here
    names = module.task.names
    assert list(rows[0]) == ["row", "prediction", *(f"p({name})" for name in names)]
    assert [int(row["row"]) for row in rows] == list(range(1, len(datamodule.datasets["test"]) + 1))
    expected = expected_proba(module, datamodule.datasets["test"].tensors[0])
    assert torch.allclose(probabilities(rows, names), expected, atol=2e-6)
    assert [row["prediction"] for row in rows] == [names[level] for level in expected.argmax(dim=1).tolist()]


def test_the_training_vocabulary_comes_from_the_checkpoint_or_else_from_the_training_data(reviews_run, tmp_path):
    run_dir, module, datamodule = reviews_run
    checkpoint = run_checkpoint(run_dir)
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["TextDataModule"]["vocabulary"] == datamodule.vocabulary
    write_test_split_csv(tmp_path / "new.csv", datamodule)
    del saved["TextDataModule"]  # a checkpoint of a release without data module state
    torch.save(saved, tmp_path / "stateless.ckpt")
    for name, flags in (("saved", []), ("refitted", ["--checkpoint", str(tmp_path / "stateless.ckpt")])):
        assert main([str(run_dir), str(tmp_path / "new.csv"), "-o", str(tmp_path / f"{name}.csv"), *flags]) == 0
    assert read_csv(tmp_path / "saved.csv") == read_csv(tmp_path / "refitted.csv")


def test_every_row_of_a_file_to_predict_gets_a_line_even_without_review_text(reviews_run, tmp_path):
    run_dir, _, _ = reviews_run
    (tmp_path / "new.csv").write_text('Review Text,Rating\nlove it,\n"",3\ngreat great great,\n')
    assert main([str(run_dir), str(tmp_path / "new.csv"), "-o", str(tmp_path / "out.csv")]) == 0
    assert [row["row"] for row in read_csv(tmp_path / "out.csv")] == ["1", "2", "3"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["{run}", "{tmp}/missing.csv"], r"missing\.csv does not exist"),
        (["{tmp}", "{tmp}/titles.csv"], r"is not a run folder of lregloss-train \(it has no config\.yaml\)"),
        (["{run}", "{tmp}/titles.csv"], r"text: .*titles\.csv has no column 'Review Text'"),
        (["{run}", "{tmp}/titles.csv", "--checkpoint", "{tmp}/titles.csv"], r"--checkpoint .*titles\.csv cannot be read as a checkpoint"),
    ],
)
def test_bad_input_exits_2_with_one_line(reviews_run, tmp_path, capsys, arguments, message):
    run_dir, _, _ = reviews_run
    (tmp_path / "titles.csv").write_text("Title\nnice\n")
    arguments = [part.format(run=run_dir, tmp=tmp_path) for part in arguments]
    assert main([*arguments, "-o", str(tmp_path / "out.csv")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("Error: ")
    assert re.search(message, error), error


def test_scene_rows_with_or_without_labels_are_predicted_as_the_test_split(tmp_path):
    module, datamodule = trained_run(tmp_path / "run", "experiment=scene")
    lines = gzip.decompress(shipped_path(BENCHMARKS["scene"].test_file).read_bytes()).decode().splitlines()
    features_only = [",".join(line.split(",")[:294]) for line in lines[:10]]
    (tmp_path / "labelled.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "features.csv").write_text("\n".join(features_only) + "\n")
    names = module.task.names
    expected = expected_proba(module, datamodule.datasets["test"].tensors[0])
    for name, count in (("labelled", len(lines)), ("features", 10)):
        assert main([str(tmp_path / "run"), str(tmp_path / f"{name}.csv"), "-o", str(tmp_path / f"{name}.out")]) == 0
        rows = read_csv(tmp_path / f"{name}.out")
        assert list(rows[0]) == ["row", *names, *(f"p({name})" for name in names)]
        assert torch.allclose(probabilities(rows, names), expected[:count], atol=2e-6)
        assert [[int(row[name]) for name in names] for row in rows] == (expected[:count] > 0.5).long().tolist()


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    generator = torch.Generator().manual_seed(0)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator), torch.arange(count) % 10

    write_cifar10(root / FOLDER_NAME, CIFAR10Arrays(*draw(100), *draw(40), CIFAR_NAMES))
    return root


def test_cifar_batch_files_images_and_image_folders_are_predicted_as_the_test_split(cifar_root, tmp_path):
    module, datamodule = trained_run(tmp_path / "run", *SMALL_CIFAR, f"data.root={cifar_root}")
    images = datamodule.datasets["test"].tensors[0]
    with torch.no_grad():
        expected = expected_proba(module, datamodule.model_inputs(images, augment=False))
    run = str(tmp_path / "run")
    assert main([run, str(cifar_root / FOLDER_NAME / "test_batch"), "-o", str(tmp_path / "batch.csv")]) == 0
    rows = read_csv(tmp_path / "batch.csv")
    assert list(rows[0])[:2] == ["row", "prediction"]
    assert torch.allclose(probabilities(rows, CIFAR_NAMES), expected, atol=2e-6)

    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for index in range(3):
        write_png(images[index], str(folder / f"{index}.png"))  # lossless, 32x32: the same pixels
    write_jpeg(torch.nn.functional.interpolate(images[3:4].float(), size=64).byte()[0], str(folder / "more" / "big.jpg"))
    assert main([run, str(folder), "-o", str(tmp_path / "folder.csv")]) == 0
    rows = read_csv(tmp_path / "folder.csv")
    assert [row["file"] for row in rows] == ["0.png", "1.png", "2.png", "more/big.jpg"]  # resized to 32x32
    assert torch.allclose(probabilities(rows[:3], CIFAR_NAMES), expected[:3], atol=2e-6)
    assert main([run, str(folder / "1.png"), "-o", str(tmp_path / "one.csv")]) == 0
    assert read_csv(tmp_path / "one.csv")[0] == {**rows[1], "file": "1.png"}


def test_an_image_that_cannot_be_decoded_is_named(cifar_root, tmp_path, capsys):
    trained_run(tmp_path / "run", *SMALL_CIFAR, f"data.root={cifar_root}")
    folder = tmp_path / "photos"
    folder.mkdir()
    write_png(torch.zeros(3, 32, 32, dtype=torch.uint8), str(folder / "good.png"))
    (folder / "broken.png").write_bytes(b"not a png")
    assert main([str(tmp_path / "run"), str(folder), "-o", str(tmp_path / "out.csv")]) == 2
    assert "broken.png cannot be decoded as an image" in capsys.readouterr().err


def test_the_readmes_prediction_snippet_runs(reviews_run, tmp_path, monkeypatch):
    run_dir, module, datamodule = reviews_run
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\n", readme.index("In Python, a checkpoint is usable on its own")) + len("```python\n")
    code = readme[start : readme.index("```", start)]
    write_test_split_csv(tmp_path / "new.csv", datamodule)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code.replace("logs/runs/<date_time>/checkpoints/last.ckpt", str(run_dir / "checkpoints" / "last.ckpt")), namespace)
    proba = torch.cat([batch["proba"] for batch in namespace["batches"]])
    last = RegularizedLossModule.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert torch.allclose(proba, expected_proba(last, datamodule.datasets["test"].tensors[0]), atol=1e-6)
