"""CIFAR-10 (10 classes of 32x32 colour images) held in memory as uint8, augmented on the model's device."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lregloss.data.cifar10_files import (
    FOLDER_NAME,
    IMAGE_SHAPE,
    NUM_CLASSES,
    default_root,
    download_cifar10,
    missing_files,
    read_batch,
    read_cifar10,
)
from lregloss.data.image_files import IMAGE_SUFFIXES, image_inputs, read_image
from lregloss.data.image_batches import normalize, random_flip, random_translate
from lregloss.data.in_memory import InMemorySplitsDataModule, NewInputs
from lregloss.tasks import Task

# Per-channel (red, green, blue) mean and standard deviation of the 50,000 training images,
# on the [0, 1] pixel scale. Fixed rather than measured at setup, so that every split and run
# sees the same inputs; the 45,000 images left after the validation split differ by < 0.001.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
SPLITS = ("train", "val", "test")


def stratified_holdout(labels: Tensor, per_class: int, seed: int) -> tuple[Tensor, Tensor]:
    """Hold out ``per_class`` rows of every class.

    Within each class the rows are shuffled by ``torch.Generator().manual_seed(seed)``, and
    the first ``per_class`` are held out.

    Returns:
        The kept rows and the held-out rows, each sorted.

    Raises:
        ValueError: a class has no more than ``per_class`` rows, which would leave it no
            training image.
    """
    generator = torch.Generator().manual_seed(seed)
    kept, held_out = [], []
    for label in labels.unique(sorted=True):
        rows = (labels == label).nonzero().squeeze(1)
        if len(rows) <= per_class:
            raise ValueError(
                f"val_size holds out {per_class} images per class, but class {int(label)} has only {len(rows)} "
                "training images; give a smaller val_size"
            )
        rows = rows[torch.randperm(len(rows), generator=generator)]
        held_out.append(rows[:per_class])
        kept.append(rows[per_class:])
    return torch.cat(kept).sort().values, torch.cat(held_out).sort().values


class CIFAR10DataModule(InMemorySplitsDataModule):
    """CIFAR-10: 50,000 training and 10,000 test images of 10 classes, 32x32 RGB.

    Data: ``<root>/cifar-10-batches-py``, the unpacked official python archive, read once at
    ``setup`` into uint8 tensors (184 MB). ``prepare_data`` downloads the archive there
    (torchvision's downloader: progress bar, md5 check) when a file is missing and
    ``download`` is true. The batch files themselves are not checked against md5s (see
    `lregloss.data.cifar10_files`).

    Split: ``val_size`` training images, ``val_size / 10`` of each class, are held out for
    validation, chosen by ``seed`` alone (`stratified_holdout`); the test split is the
    official test batch.

    Batches from the loaders are ``(images, labels)``: uint8 (B, 3, 32, 32) and int64 (B,),
    each one index gather from the tensors in memory. Training batches come in an order fixed
    by ``torch.initial_seed()`` and the epoch, from a loader that a killed run resumes in
    mid-epoch (`ResumableLoader`); evaluation batches in file order. After Lightning moves a
    batch to the model's device, ``on_after_batch_transfer`` turns the images into float32
    normalised by the CIFAR-10 channel mean and std (channels-last where asked), after, in
    training only, a random translation and a random horizontal flip of the whole batch
    (`lregloss.data.image_batches`), drawn from torch's global generator on that device.

    After ``setup``: ``task`` (multiclass, 10 classes, their names and training counts),
    ``input_size`` (3 channels), ``split_indices`` (``train``/``val`` -> rows of the official
    training set) and ``datasets`` (split name -> TensorDataset of images and labels).

    Prediction: ``predict_path`` is a batch file of the python layout (such as
    ``test_batch``; its labels are ignored), an image file (PNG, JPEG, GIF, WebP) or a folder
    of them, sub-folders included; images are resized to 32x32 where they differ, then
    normalised as the test split. Nothing is fitted on the training split, so predicting
    reads no training data.

    Args:
        root: the folder that holds (or is to hold) ``cifar-10-batches-py``; None for
            `default_root` (``$LREGLOSS_DATA_DIR``, else the user's cache folder).
        download: download the official archive (163 MB) into ``root`` when a file is missing.
        num_classes: must be 10.
        batch_size: training images per step.
        eval_batch_size: images per validation and test batch; larger, as no gradient is kept.
        val_size: training images held out for validation, a multiple of 10 from 10 to
            49,990. Validation cannot be switched off: checkpoints and early stopping
            monitor it.
        seed: seed of the validation split. The training order and augmentations follow the
            run's ``seed``.
        max_shift: largest random translation in pixels, each direction, with reflect
            padding (airbench's 2); 0 for none. At most 31.
        flip: mirror each training image left-right with probability 1/2.
        channels_last: hand the model ``torch.channels_last`` images, the layout fast
            convolutions want.
        num_workers: DataLoader worker processes; 0 loads in the main process, which is
            enough as a batch is one gather from a tensor in memory.
        predict_path: a batch file, an image file or a folder of images to predict
            (``setup("predict")``), or None.

    Raises:
        ValueError: an argument out of range (at construction), a damaged batch file, or a
            val_size that leaves a class no training image (at setup).
        FileNotFoundError: the data is not in ``root`` and was not (or could not be)
            downloaded (at setup, or at prepare_data for a failed download).
        ChecksumMismatchError: the downloaded archive fails its md5 (at prepare_data).
    """

    def __init__(
        self,
        root: str | None = None,
        download: bool = True,
        num_classes: int = NUM_CLASSES,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: int = 5000,
        seed: int = 0,
        max_shift: int = 2,
        flip: bool = True,
        channels_last: bool = True,
        num_workers: int = 0,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        if num_classes != NUM_CLASSES:
            raise ValueError(f"num_classes must be {NUM_CLASSES} for CIFAR-10, got {num_classes}")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        if int(val_size) != val_size or val_size < NUM_CLASSES or val_size % NUM_CLASSES or val_size >= 50_000:
            raise ValueError(
                f"val_size must be a multiple of {NUM_CLASSES} from {NUM_CLASSES} to 49,990 (the same number of "
                f"images of every class), got {val_size}"
            )
        if int(max_shift) != max_shift or not 0 <= max_shift < IMAGE_SHAPE[-1]:
            raise ValueError(f"max_shift must be an integer in 0..{IMAGE_SHAPE[-1] - 1} pixels, got {max_shift}")
        if int(num_workers) != num_workers or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers}")
        self.save_hyperparameters()
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.folder = self.root / FOLDER_NAME
        self.download = download
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.seed = seed
        self.max_shift = max_shift
        self.flip = flip
        self.channels_last = channels_last
        self.num_workers = num_workers
        self.predict_path = predict_path
        self.input_size = IMAGE_SHAPE[0]
        self.datasets: dict[str, TensorDataset] = {}

    def prepare_data(self) -> None:
        """Download and unpack the archive where a file is missing and ``download`` is true; never to predict, which reads none."""
        predicting = self.trainer is not None and self.trainer.predicting
        if self.download and not predicting and missing_files(self.folder):
            download_cifar10(self.root)

    def build_splits(self) -> None:
        """Read every file, split off validation and describe the task."""
        arrays = read_cifar10(self.folder)
        train_rows, val_rows = stratified_holdout(arrays.train_labels, self.val_size // NUM_CLASSES, self.seed)
        self.split_indices = {"train": train_rows, "val": val_rows}
        for name, rows in self.split_indices.items():
            self.datasets[name] = TensorDataset(arrays.train_images[rows], arrays.train_labels[rows])
        self.datasets["test"] = TensorDataset(arrays.test_images, arrays.test_labels)
        counts = torch.bincount(arrays.train_labels[train_rows], minlength=NUM_CLASSES)
        self.task = Task("multiclass", NUM_CLASSES, names=arrays.class_names, class_counts=tuple(counts.tolist()))

    def read_new_inputs(self, path: Path) -> NewInputs:
        height, width = IMAGE_SHAPE[1:]
        found = image_inputs(path)
        if found is None:
            fix = f"Give a batch file of the python layout (such as test_batch), an image file ({', '.join(IMAGE_SUFFIXES)}) or a folder of them"
            images, _ = read_batch(path, fix)
            return NewInputs(TensorDataset(images), {"row": list(range(1, len(images) + 1))})
        files, names = found
        images = torch.stack([read_image(file, height, width) for file in files])
        return NewInputs(TensorDataset(images), {"file": names})

    def model_inputs(self, images: Tensor, augment: bool) -> Tensor:
        """The float32 model inputs for a uint8 (B, 3, 32, 32) batch, augmented where asked.

        Augmentation: a random translation by up to ``max_shift`` pixels (reflect padding),
        then a random horizontal flip (where ``flip``); both vectorised over the batch.
        Normalisation: ``(images / 255 - CIFAR10_MEAN) / CIFAR10_STD`` per channel.
        """
        if augment:
            images = random_translate(images, self.max_shift)
            if self.flip:
                images = random_flip(images)
        return normalize(images, CIFAR10_MEAN, CIFAR10_STD, channels_last=self.channels_last)

    def on_after_batch_transfer(self, batch: list[Tensor], dataloader_idx: int) -> tuple[Tensor, ...]:
        """Lightning's hook, on the model's device: augment training batches, normalise every batch (``[images, labels]`` or ``[images]``)."""
        images, *labels = batch
        training = self.trainer is not None and self.trainer.training
        return self.model_inputs(images, augment=training), *labels
