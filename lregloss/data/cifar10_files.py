"""The CIFAR-10 python files: where they are kept, how they are downloaded, and reading them.

The official archive ``cifar-10-python.tar.gz`` unpacks into a folder ``cifar-10-batches-py``
holding ``data_batch_1`` .. ``data_batch_5`` (50,000 training images), ``test_batch``
(10,000) and ``batches.meta`` (the class names). Each batch is a pickled dict: ``data``, a
uint8 N x 3072 array (all red, then all green, then all blue values of a row-major 32x32
image), ``labels`` (N class indices 0..9), ``filenames`` and ``batch_label``.

Only the downloaded archive is checked against its md5, never the batch files: copies
rebuilt from the same images can split the training images differently between the five
files (other md5s, same data), and users unpack archives themselves. The batch files are
checked for what the code relies on instead: keys, shapes, dtype and label range.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets.utils import calculate_md5, download_and_extract_archive

from lregloss.data.files import ChecksumMismatchError

DATA_DIR_VARIABLE = "LREGLOSS_DATA_DIR"
FOLDER_NAME = "cifar-10-batches-py"
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_MEGABYTES = 163  # 170,498,071 bytes
TRAIN_FILES = tuple(f"data_batch_{number}" for number in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
REQUIRED_FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)  # channels (red, green, blue), rows, columns
PIXEL_VALUES = 3 * 32 * 32

# The globals a pickled dict of numpy arrays needs (numpy 1 and 2 names, protocols 2 to 5).
# Anything else in a batch file is refused: unpickling may run any global it names.
NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
}


def default_root() -> Path:
    """The folder that data sets are kept in unless ``data.root`` names another.

    ``$LREGLOSS_DATA_DIR`` where set, else ``$XDG_CACHE_HOME/lregloss``, else
    ``~/.cache/lregloss``.
    """
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "lregloss"


def missing_files(folder: Path) -> list[str]:
    """The names of the required files that ``folder`` lacks (all of them where it does not exist)."""
    return [name for name in REQUIRED_FILES if not (folder / name).is_file()]


def _ways_to_provide(root: Path) -> str:
    return (
        f"pass data.download=true to download the official archive ({ARCHIVE_MEGABYTES} MB) there, unpack "
        f"{ARCHIVE_NAME} into {root} yourself, or set data.root (or ${DATA_DIR_VARIABLE}) to the folder that "
        f"holds {FOLDER_NAME}"
    )


def download_cifar10(root: Path, url: str = ARCHIVE_URL, md5: str = ARCHIVE_MD5) -> None:
    """Download the CIFAR-10 archive into ``root``, check its md5, unpack it there and delete it.

    torchvision's downloader shows a progress bar, and downloads again over an archive left
    in ``root`` whose md5 is wrong (an interrupted download).

    Args:
        root: the folder to hold ``cifar-10-batches-py``; created where missing.
        url: where the archive is downloaded from.
        md5: the archive's expected md5.

    Raises:
        ChecksumMismatchError: the downloaded archive has another md5; the message names it.
        FileNotFoundError: the download failed (no network, unreachable server, unwritable
            ``root``); the message says where the data was looked for and what to do.
    """
    archive = root / ARCHIVE_NAME
    try:
        download_and_extract_archive(url, str(root), filename=ARCHIVE_NAME, md5=md5, remove_finished=True)
    except RuntimeError:  # torchvision's "File not found or corrupted." after a download
        if not archive.is_file():
            raise
        raise ChecksumMismatchError(
            f"{archive} (downloaded from {url}) has md5 {calculate_md5(archive)}, expected {md5}: the download "
            f"is damaged or is not the official CIFAR-10 archive. Run again to download it again, or download "
            f"it yourself and unpack it into {root}"
        ) from None
    except OSError as error:  # urllib's URLError and HTTPError are OSErrors
        raise FileNotFoundError(
            f"CIFAR-10 is not in {root / FOLDER_NAME} and downloading {url} failed ({error}); unpack {ARCHIVE_NAME} "
            f"into {root} yourself, or set data.root (or ${DATA_DIR_VARIABLE}) to the folder that holds {FOLDER_NAME}"
        ) from error


class _NumpyArraysOnly(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain Python values, and no other object."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 file never holds")
        return super().find_class(module, name)


def _damaged(path: Path, problem: str, fix: str | None = None) -> ValueError:
    fix = fix or (
        f"It is damaged or was replaced; delete {path.parent} and run again with data.download=true, or unpack "
        f"the official {ARCHIVE_NAME} there again"
    )
    return ValueError(f"{path} is not a valid CIFAR-10 file: {problem}. {fix}")


def _load_dict(path: Path, fix: str | None = None) -> dict[str, Any]:
    """Unpickle a CIFAR-10 file (``encoding="latin1"``: the official files were written by Python 2)."""
    try:
        with open(path, "rb") as handle:
            payload = _NumpyArraysOnly(handle, encoding="latin1").load()
    except Exception as error:  # a damaged pickle raises any of a dozen types; all mean the same here
        raise _damaged(path, f"it cannot be unpickled ({type(error).__name__}: {error})", fix) from error
    if not isinstance(payload, dict):
        raise _damaged(path, f"it holds a {type(payload).__name__}, not a dict", fix)
    return payload


def read_batch(path: Path, fix: str | None = None) -> tuple[Tensor, Tensor]:
    """Read one batch file; ``fix`` replaces the message's remedy (re-download) for files that are not the data set's.

    Returns:
        uint8 images (N, 3, 32, 32) and int64 labels (N,) in 0..9.

    Raises:
        ValueError: the file cannot be unpickled, lacks ``data`` or ``labels``, its ``data`` is
            not a uint8 N x 3072 array, or its labels are not N integers in 0..9; the message
            names the file.
    """
    payload = _load_dict(path, fix)
    for key in ("data", "labels"):
        if key not in payload:
            raise _damaged(path, f"it has no {key!r} entry (it has {sorted(payload)})", fix)
    data = payload["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXEL_VALUES:
        described = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _damaged(path, f"'data' must be a uint8 array of shape (N, {PIXEL_VALUES}), got a {described}", fix)
    labels = np.asarray(payload["labels"])
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise _damaged(path, f"'labels' must be {len(data)} integers, one per image, got {labels.dtype} {labels.shape}", fix)
    outside = (labels < 0) | (labels >= NUM_CLASSES)
    if outside.any():
        row = int(outside.argmax())
        raise _damaged(path, f"label {labels[row]} of image {row} is outside 0..{NUM_CLASSES - 1}", fix)
    images = torch.from_numpy(np.ascontiguousarray(data)).view(len(data), *IMAGE_SHAPE)
    return images, torch.from_numpy(labels.astype(np.int64))


def read_class_names(path: Path) -> tuple[str, ...]:
    """The class names in ``batches.meta``, index order.

    Raises:
        ValueError: the file cannot be unpickled or lacks 10 ``label_names``; the message names it.
    """
    names = _load_dict(path).get("label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES or not all(isinstance(n, str) for n in names):
        raise _damaged(path, f"'label_names' must list {NUM_CLASSES} class names, got {names!r}")
    return tuple(names)


@dataclass(frozen=True)
class CIFAR10Arrays:
    """CIFAR-10 decoded: uint8 images (N, 3, 32, 32), int64 labels (N,), the class names."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    class_names: tuple[str, ...]


def read_cifar10(folder: Path) -> CIFAR10Arrays:
    """Read every file of a ``cifar-10-batches-py`` folder, the training batches in file order.

    Raises:
        FileNotFoundError: a required file is missing; the message names the folder, the
            missing files and the ways to provide them.
        ValueError: a file is damaged (see `read_batch`, `read_class_names`).
    """
    missing = missing_files(folder)
    if missing:
        looked = f"looked for {', '.join(missing)}" if folder.is_dir() else "no such folder"
        if (folder.parent / TRAIN_FILES[0]).is_file():
            looked += f"; {folder.parent} holds the batch files itself: set data.root to {folder.parent.parent}"
        raise FileNotFoundError(f"CIFAR-10 is not in {folder} ({looked}); {_ways_to_provide(folder.parent)}")
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    test_images, test_labels = read_batch(folder / TEST_FILE)
    return CIFAR10Arrays(
        train_images=torch.cat([images for images, _ in train]),
        train_labels=torch.cat([labels for _, labels in train]),
        test_images=test_images,
        test_labels=test_labels,
        class_names=read_class_names(folder / META_FILE),
    )


def write_cifar10(folder: Path, arrays: CIFAR10Arrays) -> None:
    """Write ``arrays`` as a ``cifar-10-batches-py`` folder that `read_cifar10` reads back.

    The official layout: the training images cut into five batch files in order, the test
    images in ``test_batch``, the class names in ``batches.meta``; pickle protocol 2, as the
    archive has. For test fixtures and benchmarks, and for putting other 32x32 RGB images of
    10 classes into this recipe.

    Raises:
        ValueError: an array of the wrong shape or dtype, or not 10 class names.
    """
    for name in ("train", "test"):
        images, labels = getattr(arrays, f"{name}_images"), getattr(arrays, f"{name}_labels")
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != IMAGE_SHAPE or labels.shape != images.shape[:1]:
            raise ValueError(f"{name}_images must be uint8 (N, 3, 32, 32) with N {name}_labels, got {images.dtype} "
                             f"{tuple(images.shape)} and {tuple(labels.shape)} labels")  # fmt: skip
    if len(arrays.class_names) != NUM_CLASSES:
        raise ValueError(f"class_names must list {NUM_CLASSES} names, got {len(arrays.class_names)}")
    folder.mkdir(parents=True, exist_ok=True)
    batches = zip(arrays.train_images.tensor_split(len(TRAIN_FILES)), arrays.train_labels.tensor_split(len(TRAIN_FILES)))
    for number, (name, (images, labels)) in enumerate(zip(TRAIN_FILES, batches), start=1):
        _write_batch(folder / name, images, labels, f"training batch {number} of {len(TRAIN_FILES)}")
    _write_batch(folder / TEST_FILE, arrays.test_images, arrays.test_labels, "testing batch 1 of 1")
    meta = {"num_cases_per_batch": len(arrays.test_images), "label_names": list(arrays.class_names), "num_vis": PIXEL_VALUES}
    (folder / META_FILE).write_bytes(pickle.dumps(meta, protocol=2))


def _write_batch(path: Path, images: Tensor, labels: Tensor, batch_label: str) -> None:
    payload = {
        "batch_label": batch_label,
        "labels": labels.tolist(),
        "data": images.reshape(len(images), PIXEL_VALUES).numpy(),  # red plane, green plane, blue plane; rows
        "filenames": [f"image_{index:05d}.png" for index in range(len(images))],
    }
    path.write_bytes(pickle.dumps(payload, protocol=2))
