"""data=images: class folders of PNG/JPEG files, decoded once into a cache, split, normalised, trained on and predicted."""

from __future__ import annotations

import csv
import inspect
import logging
import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torchvision.io import write_jpeg, write_png
from torchvision.transforms.v2.functional import resize

from lregloss.app.predict import main as predict_main
from lregloss.app.predict import run_checkpoint
from lregloss.app.train import run, train
from lregloss.data import image_folder_files
from lregloss.data.image_folder import ImageFolderDataModule
from lregloss.data.splits import stratified_split
from lregloss.module import RegularizedLossModule

from conftest import CONF

CLASSES = {"cat": 10, "dog": 10, "emu": 10}
image_folder_read = image_folder_files.read_image  # the real decoder, for tests that replace it
HEIGHT, WIDTH = 12, 16  # not square, not 32: every image is resized


def write_images(folder: Path, count: int, seed: int, size: tuple[int, int] = (HEIGHT, WIDTH)) -> dict[str, torch.Tensor]:
    """``count`` random images in ``folder``, even ones PNG and odd ones JPEG; name -> pixels of the PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    written = {}
    for index in range(count):
        pixels = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator)
        if index % 2:
            write_jpeg(pixels, str(folder / f"{index:02d}.jpg"))
        else:
            write_png(pixels, str(folder / f"{index:02d}.png"))
            written[f"{index:02d}.png"] = pixels
    return written


def write_tree(root: Path, classes: dict[str, int] = CLASSES) -> Path:
    """``root/<class>/<image>`` with ``classes[name]`` images per class."""
    for seed, (name, count) in enumerate(classes.items()):
        write_images(root / name, count, seed)
    return root


@pytest.fixture
def photos(tmp_path) -> Path:
    return write_tree(tmp_path / "photos")


def setup_module_for(root, tmp_path, **arguments) -> ImageFolderDataModule:
    datamodule = ImageFolderDataModule(str(root), cache_dir=str(tmp_path / "cache"), **arguments)
    datamodule.setup("fit")
    return datamodule


def split_classes(datamodule, split: str) -> list[int]:
    return torch.bincount(datamodule.datasets[split].tensors[1], minlength=datamodule.task.size).tolist()


# --- Classes, splits, layouts -------------------------------------------------------------------------


def test_classes_are_the_sorted_sub_folders_and_counts_those_of_the_training_split(tmp_path):
    root = write_tree(tmp_path / "photos", {"emu": 12, "cat": 10, "dog": 20})
    datamodule = setup_module_for(root, tmp_path, val_fraction=0.1, test_fraction=0.2)
    task = datamodule.task
    assert (task.kind.value, task.size, task.names) == ("multiclass", 3, ("cat", "dog", "emu"))
    # Per class: val round(0.1 n), test round(0.2 n), train the rest; n = 10, 20, 12.
    assert split_classes(datamodule, "val") == [1, 2, 1]
    assert split_classes(datamodule, "test") == [2, 4, 2]
    assert split_classes(datamodule, "train") == [7, 14, 9]
    assert task.class_counts == (7, 14, 9)
    assert datamodule.input_size == 3


def test_the_split_is_stratified_split_of_the_labels_for_the_seed(photos, tmp_path):
    datamodule = setup_module_for(photos, tmp_path, seed=3)
    labels = torch.tensor([list(CLASSES).index(name.split("/")[0]) for name in datamodule.files])
    val, test, train_rows = stratified_split(labels, (0.1, 0.1), 3)
    assert {name: rows.tolist() for name, rows in datamodule.split_indices.items()} == {
        "train": train_rows.tolist(),
        "val": val.tolist(),
        "test": test.tolist(),
    }
    rows = torch.cat(list(datamodule.split_indices.values()))
    assert sorted(rows.tolist()) == list(range(30))  # disjoint, and every image in one split
    other = setup_module_for(photos, tmp_path, seed=4)
    assert other.split_indices["val"].tolist() != datamodule.split_indices["val"].tolist()


@pytest.mark.parametrize("folders", [("train", "val", "test"), ("train", "val"), ("train",)])
def test_split_folders_are_the_splits_and_missing_ones_are_split_off_train(tmp_path, folders):
    root = tmp_path / "photos"
    counts = {"train": 10, "val": 4, "test": 2}
    for split in folders:
        for seed, name in enumerate(("ant", "bee")):
            write_images(root / split / name, counts[split], seed)
    datamodule = setup_module_for(root, tmp_path, val_fraction=0.2, test_fraction=0.3)
    assert datamodule.task.names == ("ant", "bee")
    files = datamodule.files
    for split in ("val", "test"):
        names = [files[row] for row in datamodule.split_indices[split]]
        if split in folders:
            assert all(name.startswith(f"{split}/") for name in names)
            assert split_classes(datamodule, split) == [counts[split]] * 2
        else:
            assert all(name.startswith("train/") for name in names)  # taken from train/, per class
            assert split_classes(datamodule, split) == [{"val": 2, "test": 3}[split]] * 2
    trained = [files[row] for row in datamodule.split_indices["train"]]
    assert all(name.startswith("train/") for name in trained)
    assert len(trained) == 20 - 2 * sum({"val": 2, "test": 3}[split] for split in ("val", "test") if split not in folders)


def test_a_val_folder_may_hold_some_of_the_classes(tmp_path):
    root = tmp_path / "photos"
    for seed, name in enumerate(("ant", "bee", "cow")):
        write_images(root / "train" / name, 10, seed)
    write_images(root / "val" / "bee", 3, 7)
    write_images(root / "test" / "cow", 2, 8)
    datamodule = setup_module_for(root, tmp_path)
    assert split_classes(datamodule, "val") == [0, 3, 0]
    assert split_classes(datamodule, "test") == [0, 0, 2]


def test_images_at_any_depth_count_and_hidden_files_do_not(tmp_path):
    root = write_tree(tmp_path / "photos", {"cat": 10, "dog": 10})
    write_images(root / "cat" / "indoor" / "sofa", 2, 9)
    (root / "cat" / "._00.png").write_bytes(b"macOS metadata, no image")
    (root / ".thumbnails").mkdir()
    (root / "dog" / "notes.txt").write_text("not an image")
    datamodule = setup_module_for(root, tmp_path)
    assert datamodule.task.names == ("cat", "dog")
    assert "cat/indoor/sofa/00.png" in datamodule.files
    assert len(datamodule.files) == 22


# --- Decoding and the cache ----------------------------------------------------------------------------


def test_images_are_resized_to_image_size_as_read_image_does(photos, tmp_path):
    datamodule = setup_module_for(photos, tmp_path, image_size=20, max_shift=3)
    images = torch.cat([datamodule.datasets[split].tensors[0] for split in ("train", "val", "test")])
    rows = torch.cat([datamodule.split_indices[split] for split in ("train", "val", "test")])
    assert images.dtype == torch.uint8 and images.shape == (30, 3, 20, 20)
    originals = write_images(tmp_path / "again", 10, seed=0)  # the cat images, rewritten from the same seed
    for image, row in zip(images, rows.tolist()):
        name = datamodule.files[row]
        if name.startswith("cat/") and name.endswith(".png"):
            assert torch.equal(image, resize(originals[name.split("/")[1]], [20, 20], antialias=True))


def test_the_cache_is_written_reused_without_decoding_and_replaced_when_a_file_changes(
    photos, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="lregloss.data.image_folder")
    first = setup_module_for(photos, tmp_path)
    [cache] = (tmp_path / "cache").iterdir()
    assert cache.name.startswith("photos-") and "-32px-" in cache.name and cache.suffix == ".pt"
    assert f"{photos}: 30 images of 3 classes at 32x32, decoded and cached in {cache}" in caplog.messages

    def no_decoding(*_):
        raise AssertionError("decoded an image although the cache holds it")

    monkeypatch.setattr(image_folder_files, "read_image", no_decoding)
    caplog.clear()
    second = setup_module_for(photos, tmp_path)
    assert caplog.messages == [f"{photos}: 30 images of 3 classes at 32x32, loaded from the cache {cache}"]
    for split in ("train", "val", "test"):
        for ours, theirs in zip(first.datasets[split].tensors, second.datasets[split].tensors):
            assert torch.equal(ours, theirs)
    assert second.files == first.files

    decoded = []

    def counted_decoding(path, height, width):
        decoded.append(path)
        return image_folder_read(path, height, width)

    monkeypatch.setattr(image_folder_files, "read_image", counted_decoding)
    changed = photos / "dog" / "04.png"
    write_png(torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8), str(changed))
    status = changed.stat()
    os.utime(changed, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))  # whatever the clock's granularity
    third = setup_module_for(photos, tmp_path)
    assert len(decoded) == 30
    [new_cache] = (tmp_path / "cache").iterdir()  # the old one of this folder and size is removed
    assert new_cache != cache
    row = third.files.index("dog/04.png")
    split = next(name for name, rows in third.split_indices.items() if row in rows.tolist())
    position = third.split_indices[split].tolist().index(row)
    assert third.datasets[split].tensors[0][position].eq(0).all()


def test_another_image_size_is_cached_beside_and_cache_false_writes_nothing(photos, tmp_path):
    setup_module_for(photos, tmp_path)
    setup_module_for(photos, tmp_path, image_size=16)
    assert sorted(path.name.split("-")[2] for path in (tmp_path / "cache").iterdir()) == ["16px", "32px"]
    ImageFolderDataModule(str(photos), cache=False, cache_dir=str(tmp_path / "off")).setup("fit")
    assert not (tmp_path / "off").exists()


def test_an_unreadable_cache_file_is_decoded_again(photos, tmp_path, caplog):
    first = setup_module_for(photos, tmp_path)
    [cache] = (tmp_path / "cache").iterdir()
    cache.write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING, logger="lregloss.data.image_folder"):
        second = setup_module_for(photos, tmp_path)
    assert any(f"cache file {cache} cannot be read" in message for message in caplog.messages)
    assert torch.equal(first.datasets["train"].tensors[0], second.datasets["train"].tensors[0])
    assert torch.load(cache, weights_only=True)["files"] == first.files  # written again, whole


def test_the_default_cache_folder_is_in_the_data_folder(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("LREGLOSS_DATA_DIR", str(tmp_path / "data"))
    ImageFolderDataModule(str(photos)).setup("fit")
    assert len(list((tmp_path / "data" / "image_cache").glob("photos-*-32px-*.pt"))) == 1


# --- Normalisation, batches, state ------------------------------------------------------------------


def test_mean_and_std_are_measured_on_the_training_split_and_applied_to_every_split(photos, tmp_path):
    datamodule = setup_module_for(photos, tmp_path, channels_last=False)
    train_images = datamodule.datasets["train"].tensors[0].double() / 255
    assert datamodule.mean == pytest.approx(train_images.mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert datamodule.std == pytest.approx(train_images.std(dim=(0, 2, 3), correction=0).tolist(), abs=1e-12)
    inputs = datamodule.model_inputs(datamodule.datasets["train"].tensors[0], augment=False)
    assert inputs.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (inputs.std(dim=(0, 2, 3), correction=0) - 1).abs().max() < 1e-5
    test_images = datamodule.datasets["test"].tensors[0]
    mean = torch.tensor(datamodule.mean).view(1, 3, 1, 1)
    std = torch.tensor(datamodule.std).view(1, 3, 1, 1)
    expected = (test_images.double() / 255 - mean) / std
    assert torch.allclose(datamodule.model_inputs(test_images, augment=False).double(), expected, atol=1e-5)


def test_a_constant_channel_is_divided_by_one_grey_level(tmp_path):
    root = tmp_path / "grey"
    for name in ("dark", "light"):
        (root / name).mkdir(parents=True)
        for index in range(10):
            write_png(torch.full((3, 8, 8), 128, dtype=torch.uint8), str(root / name / f"{index}.png"))
    datamodule = setup_module_for(root, tmp_path)
    assert datamodule.std == pytest.approx((1 / 255,) * 3)
    assert torch.isfinite(datamodule.model_inputs(datamodule.datasets["val"].tensors[0], augment=False)).all()


def test_batches_are_uint8_gathers_augmented_in_training_only(photos, tmp_path):
    datamodule = setup_module_for(photos, tmp_path, batch_size=8, eval_batch_size=5, max_shift=0, flip=False)
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 32, 32) and labels.dtype == torch.long
    assert [len(batch[0]) for batch in datamodule.val_dataloader()] == [3]
    inputs, same_labels = datamodule.on_after_batch_transfer([images, labels], 0)  # no trainer: evaluation
    assert inputs.dtype == torch.float32 and inputs.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(same_labels, labels)
    assert torch.equal(inputs, datamodule.model_inputs(images, augment=True))  # no shift, no flip: the same


def test_state_dict_round_trips_through_a_weights_only_load_and_predicts_without_the_training_data(
    photos, tmp_path, monkeypatch
):
    fitted = setup_module_for(photos, tmp_path)
    torch.save(fitted.state_dict(), tmp_path / "state.pt")
    assert ImageFolderDataModule().state_dict() == {}
    fresh = ImageFolderDataModule(predict_path=str(photos / "cat"))  # no root: it must not be read
    assert not fresh.is_fitted
    fresh.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert fresh.is_fitted and (fresh.mean, fresh.std) == (fitted.mean, fitted.std)
    monkeypatch.setattr(ImageFolderDataModule, "build_splits", lambda self: pytest.fail("read the training data"))
    fresh.setup("predict")
    assert len(fresh.new_inputs.dataset) == 10


def test_an_unfitted_module_builds_the_splits_before_predicting(photos, tmp_path):
    datamodule = ImageFolderDataModule(str(photos), cache_dir=str(tmp_path / "cache"), predict_path=str(photos / "dog"))
    datamodule.setup("predict")
    assert datamodule.is_fitted and datamodule.task.names == ("cat", "dog", "emu")


def test_a_folder_or_a_file_is_predicted_by_name_resized_and_normalised(photos, tmp_path):
    fitted = setup_module_for(photos, tmp_path)
    folder = tmp_path / "new"
    write_images(folder, 2, seed=5, size=(40, 24))
    write_images(folder / "more", 1, seed=6)
    for path, names in ((folder, ["00.png", "01.jpg", "more/00.png"]), (folder / "01.jpg", ["01.jpg"])):
        datamodule = ImageFolderDataModule(predict_path=str(path), image_size=24)
        datamodule.load_state_dict(fitted.state_dict())
        datamodule.setup("predict")
        assert datamodule.new_inputs.keys == {"file": names}
        [batch] = list(datamodule.predict_dataloader())
        assert len(batch) == 1 and batch[0].dtype == torch.uint8 and batch[0].shape == (len(names), 3, 24, 24)
        [inputs] = datamodule.on_after_batch_transfer(batch, 0)
        assert torch.equal(inputs, datamodule.model_inputs(batch[0], augment=False))
        assert torch.equal(batch[0][-1], image_folder_read(path if path.is_file() else path / names[-1], 24, 24))


def test_a_file_to_predict_that_is_no_image_is_named(photos, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    datamodule = ImageFolderDataModule(predict_path=str(tmp_path / "notes.txt"))
    datamodule.load_state_dict({"mean": [0.5] * 3, "std": [0.25] * 3})
    with pytest.raises(ValueError, match=r"notes\.txt is not an image file \(\.png, .*\); give an image or a folder"):
        datamodule.setup("predict")


# --- Bad input ------------------------------------------------------------------------------------------


def undecodable(root: Path) -> None:
    write_tree(root)
    (root / "dog" / "broken.png").write_bytes(b"not a png")


def one_class(root: Path) -> None:
    write_tree(root, {"cat": 10})


def empty_class(root: Path) -> None:
    write_tree(root)
    (root / "emu" / "sub").mkdir()
    for file in (root / "emu").glob("*.*"):
        file.unlink()


def loose_files(root: Path) -> None:
    write_images(root, 2, seed=0)


def loose_beside_classes(root: Path) -> None:
    write_tree(root)
    write_images(root, 1, seed=0)


def split_too_small(root: Path) -> None:
    write_tree(root, {"cat": 2, "dog": 2})


def val_without_train(root: Path) -> None:
    write_images(root / "val" / "cat", 2, 0)
    write_images(root / "val" / "dog", 2, 1)


def unknown_split_folder(root: Path) -> None:
    write_tree(root / "train")
    write_tree(root / "valid")


def class_missing_from_train(root: Path) -> None:
    write_tree(root / "train", {"cat": 5, "dog": 5})
    write_tree(root / "test", {"cat": 2, "zebra": 2})


def empty_val_folder(root: Path) -> None:
    write_tree(root / "train")
    (root / "val").mkdir()


BAD_FOLDERS = [
    (lambda root: None, FileNotFoundError, r"root '.*photos' does not exist \(looked at .*photos\); pass data\.root="),
    (lambda root: root.write_text(""), FileNotFoundError, r"root '.*photos' is a file, not a folder"),
    (lambda root: root.mkdir(), ValueError, r"photos holds no class sub-folder; put the images of each class in a sub-folder"),
    (loose_files, ValueError, r"photos holds no class sub-folder; .* or give the folder above it as root"),
    (one_class, ValueError, r"photos holds 1 class folder \(cat\); a multiclass task needs at least 2"),
    (empty_class, ValueError, r"class folder .*photos/emu holds no image file \(\.png.*\); add images of class 'emu' or remove"),
    (undecodable, ValueError, r"photos/dog/broken\.png cannot be decoded as an image .*; remove it or save it as PNG or JPEG"),
    (loose_beside_classes, ValueError, r"photos/00\.png lies in no class folder of .*photos; move it into the sub-folder"),
    (split_too_small, ValueError, r"the val split of .*photos is empty: 4 images of 2 classes, val_fraction=0\.1, .*give more"),
    (val_without_train, ValueError, r"photos holds val/ but no train/: with split folders, train/ holds the class folders"),
    (unknown_split_folder, ValueError, r"photos/valid is none of the split folders train/, val/, test/ .*; rename it \(val/"),
    (class_missing_from_train, ValueError, r"photos/test/zebra is a class folder that .*photos/train lacks \(its classes: cat, dog\)"),
    (empty_val_folder, ValueError, r"photos/val holds no class sub-folder; .* or remove it to split val off train/"),
]


@pytest.mark.parametrize("make, error, message", BAD_FOLDERS)
def test_a_folder_that_cannot_be_used_is_named_in_one_line_with_the_fix(tmp_path, make, error, message):
    root = tmp_path / "photos"
    make(root)
    with pytest.raises(error) as raised:
        setup_module_for(root, tmp_path)
    assert raised.type is error
    assert "\n" not in str(raised.value)
    assert raised.match(message)


def test_a_module_without_root_says_to_set_it(tmp_path):
    with pytest.raises(ValueError, match=r"^root is not set; pass data\.root=<a folder with one sub-folder"):
        ImageFolderDataModule(cache_dir=str(tmp_path)).setup("fit")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"image_size": 0}, "image_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"eval_batch_size": 0}, "eval_batch_size must be an integer >= 1, got 0"),
        ({"val_fraction": 0}, "val_fraction must be a finite number > 0, got 0.0"),
        ({"test_fraction": 1}, "test_fraction must be < 1, got 1"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction + test_fraction must be < 1 to leave training images"),
        ({"image_size": 8, "max_shift": 8}, "max_shift must be an integer in 0..7 pixels (image_size - 1), got 8"),
        ({"max_shift": -1}, "max_shift must be an integer in 0..31 pixels (image_size - 1), got -1"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
    ],
)
def test_arguments_are_checked_at_construction(arguments, message):
    with pytest.raises(ValueError) as raised:
        ImageFolderDataModule("photos", **arguments)
    assert str(raised.value).startswith(message)


def test_the_config_repeats_the_code_defaults_and_picks_an_image_model():
    values = OmegaConf.to_container(OmegaConf.load(CONF / "data" / "images.yaml"))
    assert values.pop("defaults") == [{"override /model@_global_.model": "airbench"}]
    assert values.pop("_target_") == "lregloss.data.image_folder.ImageFolderDataModule"
    defaults = inspect.signature(ImageFolderDataModule).parameters
    assert values == {key: defaults[key].default for key in defaults}


@pytest.mark.parametrize(
    "overrides, model",
    [
        (["data=images"], "lregloss.models.cifar.AirbenchNet"),
        (["data=images", "model=resnet18"], "lregloss.models.cifar.ResNet18"),
        (["model=resnet18", "data=images"], "lregloss.models.cifar.ResNet18"),
        (["experiment=cifar10_cpu", "data=images"], "lregloss.models.cifar.AirbenchNet"),
        (["data=reviews"], "lregloss.models.text.BagOfNgrams"),
    ],
)
def test_data_images_brings_an_image_network_unless_the_command_line_names_one(compose_config, overrides, model):
    cfg = compose_config(*overrides)
    assert cfg.model._target_ == model
    if "data=images" in overrides:
        assert cfg.data._target_ == "lregloss.data.image_folder.ImageFolderDataModule"


# --- Through the command line's own functions -----------------------------------------------------------

SMALL_RUN = [
    "data=images",
    "data.batch_size=8",
    "model.widths=[4,8,8]",
    "model.stem_width=4",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "~callbacks.rich_progress_bar",
]


def composed(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def test_a_run_trains_checkpoints_the_channel_statistics_and_predicts_a_folder(photos, tmp_path):
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    run_dir = tmp_path / "run"
    metrics = train(composed(*SMALL_RUN, f"data.root={photos}", cache, f"paths.output_dir={run_dir}"))
    assert 0 <= metrics["test/acc"] <= 1 and metrics["epochs"] == 1
    checkpoint = run_checkpoint(run_dir)
    state = torch.load(checkpoint, weights_only=True)["ImageFolderDataModule"]
    rebuilt = setup_module_for(photos, tmp_path)  # from the cache the run wrote
    assert state == {"mean": list(rebuilt.mean), "std": list(rebuilt.std)}

    output = tmp_path / "predictions.csv"
    assert predict_main([str(run_dir), str(photos), "-o", str(output)]) == 0
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["file"] for row in rows] == rebuilt.files  # every image, by its path below the folder
    assert list(rows[0]) == ["file", "prediction", "p(cat)", "p(dog)", "p(emu)"]
    module = RegularizedLossModule.load_from_checkpoint(checkpoint)
    test_rows = rebuilt.split_indices["test"].tolist()
    with torch.no_grad():
        expected = module.predict_step([rebuilt.model_inputs(rebuilt.datasets["test"].tensors[0], augment=False)], 0)
    predicted = torch.tensor([[float(rows[row][f"p({name})"]) for name in CLASSES] for row in test_rows])
    assert torch.allclose(predicted, expected["proba"], atol=2e-6)


@pytest.fixture
def failing_run(tmp_path, caplog, capfd, monkeypatch):
    """``run`` of a small images config with overrides; (exit status, the one logged error line)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def _run(*overrides: str):
        cfg = composed(*SMALL_RUN, f"data.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}", *overrides)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="lregloss.app.train"), pytest.raises(SystemExit) as exit:
            run(cfg)
        errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
        assert len(errors) == 1 and "\n" not in errors[0], errors
        printed = capfd.readouterr()
        assert "Traceback" not in printed.out + printed.err
        return exit.value.code, errors[0]

    return _run


def test_bad_folders_exit_2_in_one_line_through_the_command_line_job(failing_run, tmp_path):
    status, message = failing_run()
    assert status == 2
    assert message.startswith("data.root is not set; pass data.root=<a folder with one sub-folder of images per class>")
    status, message = failing_run(f"data.root={tmp_path}/nowhere")
    assert status == 2
    assert message.startswith(f"data.root '{tmp_path}/nowhere' does not exist (looked at {tmp_path}/nowhere)")
    empty_class(tmp_path / "photos")
    status, message = failing_run(f"data.root={tmp_path / 'photos'}")
    assert status == 2
    assert f"data: class folder {tmp_path}/photos/emu holds no image file" in message
