"""The CIFAR-10 data module, its file reader and downloader, and the batch transforms.

Every test builds its own small ``cifar-10-batches-py`` folder in the official format; the
download path is served from a local HTTP server (no network). One test reads the real data
where ../shared/data/cifar10 holds it, and is skipped elsewhere.
"""

import hashlib
import http.server
import pickle
import socket
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from lregloss.data import cifar10
from lregloss.data.checks import check_batch, check_first_batches
from lregloss.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD, CIFAR10DataModule, stratified_holdout
from lregloss.data.cifar10_files import (
    ARCHIVE_NAME,
    FOLDER_NAME,
    CIFAR10Arrays,
    default_root,
    download_cifar10,
    read_cifar10,
    write_cifar10,
)
from lregloss.data.image_batches import normalize, random_flip, random_translate
from lregloss.data.protocol import TaskDataModule
from lregloss.data.files import ChecksumMismatchError
from lregloss.tasks import TaskKind

from conftest import SHARED_DATA

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS_PER_BATCH = 2  # 20 images per training batch file: 100 training images, 10 per class
TEST_PER_CLASS = 2


def write_fixture(root: Path, seed: int = 0) -> CIFAR10Arrays:
    """A small ``root/cifar-10-batches-py`` in the official format; returns what it holds."""
    generator = torch.Generator().manual_seed(seed)

    def images_and_labels(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(10).repeat(per_class)[torch.randperm(10 * per_class, generator=generator)]
        return torch.randint(0, 256, (len(labels), 3, 32, 32), dtype=torch.uint8, generator=generator), labels

    train_images, train_labels = images_and_labels(5 * PER_CLASS_PER_BATCH)
    test_images, test_labels = images_and_labels(TEST_PER_CLASS)
    arrays = CIFAR10Arrays(train_images, train_labels, test_images, test_labels, tuple(CLASS_NAMES))
    write_cifar10(root / FOLDER_NAME, arrays)
    return arrays


@pytest.fixture
def cifar_root(tmp_path):
    root = tmp_path / "data"
    return root, write_fixture(root)


def data_module(root, **kwargs) -> CIFAR10DataModule:
    kwargs = {"val_size": 20, "batch_size": 32, "eval_batch_size": 8, "download": False, **kwargs}
    data = CIFAR10DataModule(root=str(root), **kwargs)
    data.prepare_data()
    data.setup("fit")
    return data


def reference_normalization(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (images.double() / 255 - mean) / std


def reflect_crops(images: torch.Tensor, max_shift: int) -> dict[tuple[int, int], torch.Tensor]:
    """Every (dy, dx) crop of the reflect-padded images, by numpy's np.pad (an outside reference)."""
    _, _, height, width = images.shape
    r = max_shift
    padded = np.pad(images.numpy(), ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    return {
        (dy, dx): torch.from_numpy(padded[:, :, r + dy : r + dy + height, r + dx : r + dx + width].copy())
        for dy in range(-r, r + 1)
        for dx in range(-r, r + 1)
    }


# --- where the data lives ---------------------------------------------------------------


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LREGLOSS_DATA_DIR", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
    monkeypatch.delenv("LREGLOSS_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache" / "lregloss"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "lregloss"
    assert CIFAR10DataModule().folder == tmp_path / "home" / ".cache" / "lregloss" / FOLDER_NAME


# --- reading ---------------------------------------------------------------------------


def test_reader_decodes_the_official_pixel_layout(cifar_root):
    root, written = cifar_root
    arrays = read_cifar10(root / FOLDER_NAME)
    assert arrays.train_images.shape == (100, 3, 32, 32) and arrays.train_images.dtype == torch.uint8
    assert arrays.test_images.shape == (20, 3, 32, 32)
    assert arrays.train_labels.dtype == torch.int64
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(arrays, name), getattr(written, name)), name
    raw = pickle.loads((root / FOLDER_NAME / "data_batch_2").read_bytes(), encoding="latin1")["data"]
    # Image 3 of batch 2 is training image 23; its green value at row 5, column 7 is entry
    # 1024 (the red plane) + 5 * 32 + 7 of its row.
    assert arrays.train_images[23, 1, 5, 7] == raw[3, 1024 + 5 * 32 + 7]
    assert arrays.train_images[23, 2, 31, 0] == raw[3, 2048 + 31 * 32]
    assert arrays.class_names == tuple(CLASS_NAMES)


def test_split_is_stratified_disjoint_and_seeded(cifar_root):
    root, written = cifar_root
    first, again, other = (data_module(root, seed=seed) for seed in (0, 0, 1))
    rows = first.split_indices
    assert len(rows["train"]) == 80 and len(rows["val"]) == 20
    assert sorted(torch.cat([rows["train"], rows["val"]]).tolist()) == list(range(100))
    assert torch.bincount(written.train_labels[rows["val"]], minlength=10).tolist() == [2] * 10
    assert torch.equal(rows["val"], again.split_indices["val"])
    assert not torch.equal(rows["val"], other.split_indices["val"])
    images, labels = first.datasets["val"].tensors
    assert torch.equal(images, written.train_images[rows["val"]])
    assert torch.equal(labels, written.train_labels[rows["val"]])
    assert torch.equal(first.datasets["test"].tensors[0], written.test_images)


def test_holdout_refuses_to_empty_a_class():
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    kept, held_out = stratified_holdout(labels, per_class=2, seed=0)
    assert torch.bincount(labels[held_out]).tolist() == [2, 2] and len(kept) == 3
    with pytest.raises(ValueError, match="class 0 has only 3 training images; give a smaller val_size"):
        stratified_holdout(labels, per_class=3, seed=0)


def test_task_and_input_size(cifar_root):
    data = data_module(cifar_root[0])
    assert isinstance(data, TaskDataModule)
    assert data.task.kind is TaskKind.MULTICLASS and data.task.size == 10
    assert data.task.names == tuple(CLASS_NAMES)
    assert data.task.class_counts == (8,) * 10
    assert data.input_size == 3


def test_loaders_hand_out_uint8_batches_that_pass_the_first_batch_check(cifar_root):
    root, written = cifar_root
    data = data_module(root)
    train = list(data.train_dataloader())
    assert [len(labels) for _, labels in train] == [32, 32, 16]
    images, labels = train[0]
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    seen = torch.cat([labels for _, labels in train])
    assert sorted(seen.tolist()) == sorted(written.train_labels[data.split_indices["train"]].tolist())
    val = list(data.val_dataloader())
    assert [len(labels) for _, labels in val] == [8, 8, 4]
    assert torch.equal(torch.cat([images for images, _ in val]), data.datasets["val"].tensors[0])  # in order
    assert sum(len(labels) for _, labels in data.test_dataloader()) == 20
    check_first_batches(data, data.task)
    check_batch((data.model_inputs(images, augment=True), labels), data.task, "augmented batch")


# --- missing and damaged files -----------------------------------------------------------


def test_no_data_without_download_says_where_it_looked(tmp_path):
    data = CIFAR10DataModule(root=str(tmp_path / "nowhere"), download=False)
    data.prepare_data()
    with pytest.raises(FileNotFoundError) as raised:
        data.setup("fit")
    message = str(raised.value)
    assert f"CIFAR-10 is not in {tmp_path / 'nowhere' / FOLDER_NAME} (no such folder)" in message
    for fix in ("data.download=true", "cifar-10-python.tar.gz", "data.root", "$LREGLOSS_DATA_DIR"):
        assert fix in message


def test_a_root_that_is_the_batch_folder_itself_gets_a_hint(cifar_root):
    folder = cifar_root[0] / FOLDER_NAME
    with pytest.raises(FileNotFoundError, match=f"holds the batch files itself: set data.root to {cifar_root[0]}"):
        data_module(folder)


def test_a_missing_file_is_named(cifar_root):
    root, _ = cifar_root
    (root / FOLDER_NAME / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match=r"looked for data_batch_4\)"):
        data_module(root)


def test_a_truncated_batch_file_is_named(cifar_root):
    root, _ = cifar_root
    path = root / FOLDER_NAME / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"data_batch_3 is not a valid CIFAR-10 file: it cannot be unpickled.*delete"):
        data_module(root)


@pytest.mark.parametrize(
    ("data", "labels", "problem"),
    [
        (np.zeros((20, 3 * 32 * 31), np.uint8), [0] * 20, r"'data' must be a uint8 array of shape \(N, 3072\)"),
        (np.zeros((20, 3072), np.float32), [0] * 20, r"got a float32 array of shape \(20, 3072\)"),
        (np.zeros((20, 3072), np.uint8), [0] * 19, "'labels' must be 20 integers"),
        (np.zeros((20, 3072), np.uint8), [0] * 19 + [10], r"label 10 of image 19 is outside 0\.\.9"),
    ],
)
def test_a_batch_file_with_wrong_contents_is_named(cifar_root, data, labels, problem):
    root, _ = cifar_root
    path = root / FOLDER_NAME / "test_batch"
    path.write_bytes(pickle.dumps({"data": data, "labels": labels}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch is not a valid CIFAR-10 file: .*" + problem):
        data_module(root)


def test_a_pickle_that_would_run_code_is_refused(cifar_root):
    root, _ = cifar_root
    (root / FOLDER_NAME / "batches.meta").write_bytes(pickle.dumps({"label_names": CLASS_NAMES, "x": print}))
    with pytest.raises(ValueError, match=r"batches\.meta is not a valid CIFAR-10 file.*builtins\.print"):
        data_module(root)


# --- download ----------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def archive_server(tmp_path, monkeypatch):
    """A local HTTP server holding a CIFAR-10 archive built from a small folder: (url, md5, written)."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    source = tmp_path / "source"
    written = write_fixture(source)
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / ARCHIVE_NAME, "w:gz") as archive:
        archive.add(source / FOLDER_NAME, arcname=FOLDER_NAME)
    md5 = hashlib.md5((served / ARCHIVE_NAME).read_bytes()).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{ARCHIVE_NAME}", md5, written
    server.shutdown()
    server.server_close()


def test_download_checks_the_archive_and_unpacks_it(tmp_path, archive_server, monkeypatch):
    url, md5, written = archive_server
    monkeypatch.setattr(cifar10, "download_cifar10", partial(download_cifar10, url=url, md5=md5))
    root = tmp_path / "downloaded"
    data = data_module(root, download=True)
    assert torch.equal(data.datasets["test"].tensors[0], written.test_images)
    assert not (root / ARCHIVE_NAME).exists()  # deleted once unpacked


def test_download_with_the_wrong_md5_fails_clearly(tmp_path, archive_server):
    url, md5, _ = archive_server
    root = tmp_path / "downloaded"
    with pytest.raises(ChecksumMismatchError) as raised:
        download_cifar10(root, url=url, md5="0" * 32)
    assert f"{root / ARCHIVE_NAME} (downloaded from {url}) has md5 {md5}, expected {'0' * 32}" in str(raised.value)
    assert not (root / FOLDER_NAME).exists()


def test_failed_download_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    with socket.socket() as probe:  # a port that nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{ARCHIVE_NAME}"
    monkeypatch.setattr(cifar10, "download_cifar10", partial(download_cifar10, url=url))
    data = CIFAR10DataModule(root=str(tmp_path / "offline"), download=True)
    with pytest.raises(FileNotFoundError) as raised:
        data.prepare_data()
    message = str(raised.value)
    assert f"CIFAR-10 is not in {tmp_path / 'offline' / FOLDER_NAME} and downloading {url} failed" in message
    assert "unpack cifar-10-python.tar.gz" in message and "$LREGLOSS_DATA_DIR" in message


def test_data_present_is_not_downloaded(cifar_root, monkeypatch):
    def no_download(root):
        raise AssertionError(f"downloaded into {root} although the data is there")

    monkeypatch.setattr(cifar10, "download_cifar10", no_download)
    data_module(cifar_root[0], download=True)


# --- batch transforms --------------------------------------------------------------------


def random_images(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_flip_mirrors_some_images_exactly_and_leaves_the_others():
    images = random_images(64)
    flipped = random_flip(images, generator=torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.equal(out, image.flip(-1)) for out, image in zip(flipped, images)])
    unchanged = torch.tensor([torch.equal(out, image) for out, image in zip(flipped, images)])
    assert torch.all(mirrored ^ unchanged)
    assert 16 < int(mirrored.sum()) < 48
    assert torch.equal(flipped, random_flip(images, generator=torch.Generator().manual_seed(0)))


def test_translate_matches_numpy_reflect_padding_and_covers_every_shift():
    images = random_images(300, size=8)
    shifted = random_translate(images, 1, generator=torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    crops = reflect_crops(images, 1)
    used = set()
    for index in range(len(images)):
        matches = [shift for shift, crop in crops.items() if torch.equal(shifted[index], crop[index])]
        assert len(matches) == 1, f"image {index} is no reflect crop within 1 pixel"
        used.add(matches[0])
    assert used == set(crops)


def test_translate_by_zero_is_the_identity_and_too_far_is_refused():
    images = random_images(4)
    assert torch.equal(random_translate(images, 0), images)
    with pytest.raises(ValueError, match=r"max_shift must be an integer in 0\.\.31 pixels, got 32"):
        random_translate(images, 32)


def test_normalize_matches_the_formula_in_either_layout():
    images = random_images(8)
    for channels_last in (False, True):
        inputs = normalize(images, CIFAR10_MEAN, CIFAR10_STD, channels_last=channels_last)
        assert inputs.dtype == torch.float32
        assert inputs.is_contiguous(memory_format=torch.channels_last) is channels_last
        torch.testing.assert_close(inputs.double(), reference_normalization(images), rtol=0, atol=1e-5)


def test_training_inputs_are_reflect_crops_flipped_or_not_and_follow_the_seed(cifar_root):
    data = data_module(cifar_root[0], max_shift=2, flip=True)
    images = data.datasets["train"].tensors[0][:32]
    torch.manual_seed(3)
    inputs = data.model_inputs(images, augment=True)
    torch.manual_seed(3)
    assert torch.equal(inputs, data.model_inputs(images, augment=True))
    assert not torch.equal(inputs, data.model_inputs(images, augment=True))
    candidates = [reference_normalization(crop) for crop in reflect_crops(images, 2).values()]
    candidates += [candidate.flip(-1) for candidate in candidates]
    identity = reference_normalization(images)
    for index in range(len(images)):
        assert any(torch.allclose(inputs[index].double(), c[index], atol=1e-5) for c in candidates), index
    assert not torch.allclose(inputs.double(), identity, atol=1e-5)
    assert inputs.is_contiguous(memory_format=torch.channels_last)


def test_without_augmentation_options_training_inputs_are_only_normalised(cifar_root):
    data = data_module(cifar_root[0], max_shift=0, flip=False, channels_last=False)
    images = data.datasets["train"].tensors[0][:16]
    inputs = data.model_inputs(images, augment=True)
    assert inputs.is_contiguous()
    torch.testing.assert_close(inputs.double(), reference_normalization(images), rtol=0, atol=1e-5)


class InputRecorder(pl.LightningModule):
    """Keeps the inputs each step receives; learns nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.inputs: dict[str, list[torch.Tensor]] = {"train": [], "val": []}

    def training_step(self, batch, batch_idx):
        self.inputs["train"].append(batch[0])
        return (self.weight**2).sum()

    def validation_step(self, batch, batch_idx):
        self.inputs["val"].append(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore:.*LeafSpec")  # Lightning's own use of a torch deprecation
def test_lightning_augments_training_batches_only(cifar_root):
    data = data_module(cifar_root[0])
    augmented = []
    model_inputs = data.model_inputs
    data.model_inputs = lambda images, augment: augmented.append(augment) or model_inputs(images, augment)
    recorder = InputRecorder()
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
    )
    trainer.fit(recorder, datamodule=data)
    assert augmented == [True, True, True, False]
    train_inputs = recorder.inputs["train"][0]
    assert train_inputs.dtype == torch.float32 and train_inputs.is_contiguous(memory_format=torch.channels_last)
    val_images = data.datasets["val"].tensors[0][:8]
    torch.testing.assert_close(recorder.inputs["val"][0].double(), reference_normalization(val_images), rtol=0, atol=1e-5)


# --- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 100}, "num_classes must be 10"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"eval_batch_size": 2.5}, "eval_batch_size must be an integer >= 1"),
        ({"val_size": 0}, "val_size must be a multiple of 10 from 10 to 49,990"),
        ({"val_size": 25}, "val_size must be a multiple of 10"),
        ({"val_size": 50_000}, "val_size must be a multiple of 10"),
        ({"max_shift": -1}, r"max_shift must be an integer in 0\.\.31 pixels"),
        ({"max_shift": 32}, r"max_shift must be an integer in 0\.\.31 pixels"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0"),
    ],
)
def test_arguments_are_checked_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CIFAR10DataModule(**kwargs)


def test_a_val_size_too_large_for_the_data_fails_at_setup(cifar_root):
    with pytest.raises(ValueError, match="holds out 10 images per class, but class 0 has only 10"):
        data_module(cifar_root[0], val_size=100)


# --- the real data, where present -----------------------------------------------------------


@pytest.mark.skipif(not (SHARED_DATA / "cifar10" / FOLDER_NAME).is_dir(), reason="no shared CIFAR-10 copy")
def test_the_real_data_reads_and_splits():
    data = CIFAR10DataModule(root=str(SHARED_DATA / "cifar10"), download=False)
    data.prepare_data()
    data.setup("fit")
    sizes = {name: len(dataset) for name, dataset in data.datasets.items()}
    assert sizes == {"train": 45_000, "val": 5_000, "test": 10_000}
    for name, per_class in (("train", 4_500), ("val", 500), ("test", 1_000)):
        assert torch.bincount(data.datasets[name].tensors[1], minlength=10).tolist() == [per_class] * 10
    assert data.task.names == tuple(CLASS_NAMES)
    # The normalisation constants are the statistics of the 50,000 training images.
    images = torch.cat([data.datasets["train"].tensors[0], data.datasets["val"].tensors[0]])
    values = torch.arange(256, dtype=torch.float64) / 255
    for channel in range(3):
        counts = torch.bincount(images[:, channel].flatten(), minlength=256).double()
        mean = (counts * values).sum() / counts.sum()
        std = ((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt()
        assert abs(mean - CIFAR10_MEAN[channel]) < 1e-4 and abs(std - CIFAR10_STD[channel]) < 1e-4
