"""The multi-label data module (scene, yeast): reading, checks, split, standardization, batches."""

import dataclasses
import gzip
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lregloss.data import multilabel
from lregloss.data.checks import check_first_batches
from lregloss.data.multilabel import (
    BENCHMARKS,
    MultilabelDataModule,
    random_split,
    read_feature_label_rows,
)
from lregloss.data.protocol import TaskDataModule
from lregloss.data.files import shipped_path
from lregloss.data.files import ChecksumMismatchError
from lregloss.tasks import TaskKind

from conftest import CONF, ROOT, SHARED_DATA

SCENE = BENCHMARKS["scene"]


def scene_line(row: int) -> str:
    """A row of the scene layout: 294 features, then 6 labels; attribute row % 6 is present."""
    features = [f"{(row * 7 + column) % 97 / 97:.6f}" for column in range(SCENE.num_features)]
    labels = ["1" if attribute == row % 6 else "0" for attribute in range(6)]
    return ",".join(features + labels)


def write_scene_files(folder, train_rows: int = 40, test_rows: int = 12) -> tuple[str, str]:
    """Training and test files in the shipped scene layout (the training file starts with a blank line, as MULAN's)."""
    train = folder / "train.csv"
    train.write_text("\n" + "".join(scene_line(row) + "\n" for row in range(train_rows)))
    test = folder / "test.csv"
    test.write_text("".join(scene_line(1000 + row) + "\n" for row in range(test_rows)))
    return str(train), str(test)


@pytest.fixture
def scene_files(tmp_path):
    return write_scene_files(tmp_path)


def test_reads_features_then_labels_and_skips_blank_lines(scene_files):
    features, labels = read_feature_label_rows(Path(scene_files[0]), SCENE)
    assert features.shape == (40, 294) and features.dtype == torch.float32
    assert labels.shape == (40, 6) and labels.dtype == torch.int64
    assert features[3, :2].tolist() == pytest.approx([21 / 97, 22 / 97], abs=1e-6)
    assert labels[3].tolist() == [0, 0, 0, 1, 0, 0]


def test_split_is_seeded_disjoint_and_covers_the_training_file(scene_files):
    def split(seed):
        data = MultilabelDataModule(train_path=scene_files[0], test_path=scene_files[1], seed=seed, val_fraction=0.25)
        data.setup("fit")
        return data.split_indices

    first, again, other = split(0), split(0), split(1)
    assert (len(first["train"]), len(first["val"])) == (30, 10)
    assert sorted(torch.cat([first["train"], first["val"]]).tolist()) == list(range(40))
    for part in ("train", "val"):
        assert torch.equal(first[part], again[part])
        assert torch.equal(first[part], first[part].sort().values)
    assert not torch.equal(first["val"], other["val"])


def test_random_split_rounds_the_fraction():
    val, train = random_split(27, 0.15, seed=3)
    assert (len(val), len(train)) == (4, 23)
    assert torch.equal(torch.cat([val, train]).sort().values, torch.arange(27))


def test_splits_hold_the_rows_they_name_and_the_test_file_whole(scene_files):
    data = MultilabelDataModule(train_path=scene_files[0], test_path=scene_files[1], standardize=False)
    data.setup("fit")
    features, labels = read_feature_label_rows(Path(scene_files[0]), SCENE)
    for part in ("train", "val"):
        rows = data.split_indices[part]
        assert torch.equal(data.datasets[part].tensors[0], features[rows])
        assert torch.equal(data.datasets[part].tensors[1], labels[rows])
    test_features, test_labels = read_feature_label_rows(Path(scene_files[1]), SCENE)
    assert torch.equal(data.datasets["test"].tensors[0], test_features)
    assert torch.equal(data.datasets["test"].tensors[1], test_labels)


def test_standardization_uses_training_statistics_for_every_split(scene_files):
    raw = MultilabelDataModule(train_path=scene_files[0], test_path=scene_files[1], standardize=False)
    raw.setup("fit")
    scaled = MultilabelDataModule(train_path=scene_files[0], test_path=scene_files[1])
    scaled.setup("fit")
    train = raw.datasets["train"].tensors[0].double()
    mean, std = train.mean(dim=0), train.std(dim=0, unbiased=False)
    for part in ("train", "val", "test"):
        expected = (raw.datasets[part].tensors[0].double() - mean) / std
        assert torch.allclose(scaled.datasets[part].tensors[0].double(), expected, atol=1e-5)
    assert torch.allclose(scaled.datasets["train"].tensors[0].mean(dim=0), torch.zeros(294), atol=1e-5)


def test_a_constant_feature_is_centred_not_divided_by_zero(tmp_path):
    lines = [",".join(["0.5"] * 294 + ["1", "0", "0", "0", "0", "0"])] * 10
    (tmp_path / "flat.csv").write_text("\n".join(lines))
    data = MultilabelDataModule(train_path=str(tmp_path / "flat.csv"), test_path=str(tmp_path / "flat.csv"))
    data.setup("fit")
    assert torch.equal(data.datasets["test"].tensors[0], torch.zeros(10, 294))


def test_task_and_batches(scene_files):
    data = MultilabelDataModule(train_path=scene_files[0], test_path=scene_files[1], batch_size=8, val_fraction=0.25)
    data.setup("fit")
    assert isinstance(data, TaskDataModule)
    assert data.task.kind is TaskKind.MULTILABEL and data.task.size == 6
    assert data.task.names == ("Beach", "Sunset", "FallFoliage", "Field", "Mountain", "Urban")
    assert data.task.class_counts == tuple(data.datasets["train"].tensors[1].sum(dim=0).tolist())
    assert sum(data.task.class_counts) == 30  # one attribute per row
    assert data.input_size == 294
    check_first_batches(data, data.task)

    batches = list(data.train_dataloader())
    assert [len(labels) for _, labels in batches] == [8, 8, 8, 6]
    for features, labels in batches:
        assert features.dtype == torch.float32 and features.shape[1] == 294
        assert labels.dtype == torch.int64 and labels.shape[1] == 6
    seen = torch.cat([features for features, _ in batches])
    expected = data.datasets["train"].tensors[0]
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, expected.tolist()))
    features, _ = next(iter(data.test_dataloader()))
    assert torch.equal(features, data.datasets["test"].tensors[0][:8])


def test_training_batches_are_shuffled_by_seed_and_epoch(scene_files):
    data = MultilabelDataModule(train_path=scene_files[0], test_path=scene_files[1], batch_size=34)
    data.setup("fit")

    def first_batch(seed: int, epoch: int) -> torch.Tensor:
        torch.manual_seed(seed)  # the run's seed, which the shuffle takes from torch.initial_seed()
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)  # as Lightning does at the start of each epoch
        return next(iter(loader))[0]

    first = first_batch(seed=0, epoch=0)
    assert not torch.equal(first, data.datasets["train"].tensors[0])
    assert torch.equal(first, first_batch(seed=0, epoch=0))
    assert not torch.equal(first, first_batch(seed=0, epoch=1))
    assert not torch.equal(first, first_batch(seed=1, epoch=0))


def test_setup_runs_once(scene_files):
    data = MultilabelDataModule(train_path=scene_files[0], test_path=scene_files[1])
    data.setup("fit")
    datasets = data.datasets
    data.setup("test")
    assert data.datasets is datasets


def test_compressed_files_are_read(tmp_path, scene_files):
    packed = tmp_path / "train.csv.gz"
    packed.write_bytes(gzip.compress(open(scene_files[0], "rb").read()))
    data = MultilabelDataModule(train_path=str(packed), test_path=scene_files[1])
    data.setup("fit")
    assert len(data.datasets["train"]) + len(data.datasets["val"]) == 40


def test_a_missing_file_names_where_it_looked(tmp_path, scene_files):
    missing = tmp_path / "nowhere" / "test.csv"
    data = MultilabelDataModule(train_path=scene_files[0], test_path=str(missing))
    looked = rf"test_path '{missing}' is not a file \(looked at {missing}\).*300 comma"
    with pytest.raises(FileNotFoundError, match=looked):
        data.setup("fit")


def scene_line_with(column: int, text: str) -> str:
    """Row 0 of the scene layout with its ``column`` (1-based) replaced by ``text``."""
    fields = scene_line(0).split(",")
    fields[column - 1] = text
    return ",".join(fields)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("0.1,0.2,1,0", r"line 4: 4 comma-separated values, expected 300 \(294 features, then 6 labels\)"),
        (scene_line(0) + ",0", r"line 4: 301 comma-separated values, expected 300"),
        (scene_line_with(300, "2"), r"line 4, column 300: label '2' of attribute 'Urban' is not 0 or 1"),
        (scene_line_with(296, "0.5"), r"line 4, column 296: label '0.5' of attribute 'Sunset' is not 0 or 1"),
        (scene_line_with(1, "abc"), r"line 4, column 1: 'abc' is not a finite number"),
        (scene_line_with(7, "nan"), r"line 4, column 7: 'nan' is not a finite number"),
    ],
)
def test_a_malformed_row_names_the_file_line_and_the_rule(tmp_path, scene_files, bad_line, message):
    path = tmp_path / "broken.csv"
    path.write_text("\n".join([scene_line(0), "", scene_line(1), bad_line, scene_line(2)]) + "\n")
    data = MultilabelDataModule(train_path=str(path), test_path=scene_files[1])
    with pytest.raises(ValueError, match=rf"broken\.csv, {message}"):
        data.setup("fit")


def test_an_empty_file_is_refused(tmp_path, scene_files):
    (tmp_path / "empty.csv").write_text("\n\n")
    data = MultilabelDataModule(train_path=scene_files[0], test_path=str(tmp_path / "empty.csv"))
    with pytest.raises(ValueError, match=r"empty\.csv holds no rows; expected lines of 300 comma-separated values"):
        data.setup("fit")


def test_too_few_rows_for_a_validation_split(tmp_path):
    train, test = write_scene_files(tmp_path, train_rows=3)
    with pytest.raises(ValueError, match=r"the val split of .*train\.csv is empty: 3 rows, val_fraction=0.15"):
        MultilabelDataModule(train_path=train, test_path=test).setup("fit")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"name": "emotions"}, "name must be one of scene, yeast; got 'emotions'"),
        ({"train_path": "a.csv"}, "train_path and test_path go together"),
        ({"test_path": "b.csv"}, "train_path and test_path go together"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"val_fraction": 0.0}, "val_fraction must be a finite number > 0"),
        ({"val_fraction": 1.0}, "val_fraction must be < 1"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_refused_eagerly(arguments, message):
    with pytest.raises(ValueError, match=message):
        MultilabelDataModule(**arguments)


def test_checksum_mismatch_names_the_file_and_the_fix(monkeypatch):
    damaged = dataclasses.replace(SCENE, test_sha256="0" * 64)
    monkeypatch.setitem(multilabel.BENCHMARKS, "scene", damaged)
    message = r"scene-test\.csv\.gz has sha256 \w{64}, expected 0{64}: the shipped data.*Reinstall.*train_path="
    with pytest.raises(ChecksumMismatchError, match=message):
        MultilabelDataModule().setup("fit")


@pytest.mark.parametrize(
    "name, sizes, features, attributes",
    [
        ("scene", {"train": 1029, "val": 182, "test": 1196}, 294, 6),
        ("yeast", {"train": 1275, "val": 225, "test": 917}, 103, 14),
    ],
)
def test_shipped_data_loads_with_the_documented_sizes(name, sizes, features, attributes):
    data = MultilabelDataModule(name=name)
    data.setup("fit")
    assert {part: len(dataset) for part, dataset in data.datasets.items()} == sizes
    assert data.input_size == features and data.task.size == attributes == len(data.task.names)
    check_first_batches(data, data.task)


def test_shipped_scene_label_counts():
    data = MultilabelDataModule(name="scene")
    data.setup("fit")
    labels = torch.cat([data.datasets[part].tensors[1] for part in ("train", "val")])
    assert labels.sum(dim=0).tolist() == [227, 165, 197, 196, 277, 224]  # the whole training file
    assert data.datasets["test"].tensors[1].sum(dim=0).tolist() == [200, 199, 200, 237, 256, 207]


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_shipped_files_are_the_source_files(name):
    layout = BENCHMARKS[name]
    for file_name in (layout.train_file, layout.test_file):
        source = SHARED_DATA / "multilabel" / file_name.replace(".csv.gz", ".arff")
        if not source.exists():
            pytest.skip(f"{source} is absent")
        assert gzip.decompress(shipped_path(file_name).read_bytes()) == source.read_bytes()


@pytest.mark.parametrize("name", ["scene", "yeast"])
def test_configs_repeat_the_code_defaults(name):
    values = OmegaConf.to_container(OmegaConf.load(CONF / "data" / f"{name}.yaml"))
    defaults = inspect.signature(MultilabelDataModule).parameters
    assert values.pop("name") == name
    assert values.pop("_target_") == "lregloss.data.multilabel.MultilabelDataModule"
    assert values == {key: defaults[key].default for key in values}
    assert set(values) | {"name"} == set(defaults)


def test_baseline_script_reports_every_model_and_fit(scene_files):
    pytest.importorskip("sklearn")
    train, test = scene_files
    command = [sys.executable, "scripts/baseline_scene.py", "--train-path", train, "--test-path", test]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "rows: train 34, val 6, test 12" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("MLPClassifier", "OvR"))]
    assert [row[-7] for row in rows] == ["split", "val", "split", "val"]  # "train split", "train + val"
    for row in rows:
        assert all(0 <= float(value) <= 1 for value in row[-5:-1])
