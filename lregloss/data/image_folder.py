"""Your own images in torchvision's ImageFolder layout (a sub-folder per class), decoded once into a cache, held in memory as uint8."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from lregloss.data.cifar10_files import default_root
from lregloss.data.image_batches import normalize, random_flip, random_translate
from lregloss.data.image_files import IMAGE_SUFFIXES, image_inputs, read_image
from lregloss.data.image_folder_files import SPLITS, ImageFolderListing, cache_file, decode_images, list_image_folder
from lregloss.data.in_memory import InMemorySplitsDataModule, NewInputs
from lregloss.data.splits import stratified_split
from lregloss.tasks import Task
from lregloss.validation import check_positive

log = logging.getLogger(__name__)

CACHE_FOLDER = "image_cache"  # under default_root(), beside cifar-10-batches-py
# A channel that is constant over the training split (all-grey images) is divided by one grey
# level instead of by 0.
SMALLEST_STD = 1 / 255
STATS_CHUNK = 512  # images converted to float64 at a time when measuring the channel statistics


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 (N, C, H, W) images on the [0, 1] scale.

    Over every pixel of every image, in float64: ``mean[c] = sum(x / 255) / (N H W)`` and
    ``std[c] = sqrt(sum((x / 255)^2) / (N H W) - mean[c]^2)`` (no Bessel correction), at least
    ``SMALLEST_STD``.
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), STATS_CHUNK):
        block = images[start : start + STATS_CHUNK].double().div_(255)
        total += block.sum(dim=(0, 2, 3))
        squares += block.square_().sum(dim=(0, 2, 3))
    count = images.numel() // channels
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(SMALLEST_STD)
    return tuple(mean.tolist()), tuple(std.tolist())


class ImageFolderDataModule(InMemorySplitsDataModule):
    """Your own images, one sub-folder per class (torchvision's ImageFolder layout), held in memory as uint8.

    Data: ``root/<class>/<image>``, or ``root/train/<class>/<image>`` with optional ``val/``
    and ``test/`` folders beside ``train/`` (`list_image_folder`). Images are PNG, JPEG, GIF or
    WebP files at any depth below their class folder; hidden files and folders (names starting
    with ".") are skipped. The classes are the sorted sub-folder names (of ``train/`` in the
    split layout), label k the k-th of them.

    Decoding: each image is decoded once to RGB and resized (antialiased) to ``image_size`` x
    ``image_size`` where its size differs (`read_image`): a square output, so other aspect
    ratios are stretched. With ``cache``, all of them are then saved, with their labels and
    relative paths, in one file of ``cache_dir`` (`cache_file`), which a later setup of the same
    unchanged folder at the same size loads instead of decoding; a file added, removed or
    rewritten (size or modification time) gives a new cache file, and replaces the older
    ones of that folder and size. The images take N * 3 * image_size^2 bytes of memory (30 MB
    for 10,000 images at 32 pixels).

    Split: without split folders, stratified by class and deterministic for ``seed``: within
    each class the images are shuffled by ``torch.Generator().manual_seed(seed)`` and cut into
    about ``val_fraction * n`` for validation, ``test_fraction * n`` for testing and the rest
    (at least one) for training (`stratified_split`). With split folders, each split is its folder;
    a missing ``val/`` or ``test/`` is split off ``train/`` the same way.

    Batches from the loaders are ``(images, labels)``: uint8 (B, 3, S, S) and int64 (B,), one
    index gather each. After Lightning moves a batch to the model's device,
    ``on_after_batch_transfer`` turns the images into float32 ``(x / 255 - mean[c]) / std[c]``
    per channel c (channels-last where asked), after, in training only, a random translation
    by up to ``max_shift`` pixels (reflect padding) and a random horizontal flip
    (`lregloss.data.image_batches`), drawn from torch's global generator on that device.
    ``mean`` and ``std`` are measured on the training split (`channel_stats`).

    After ``setup``: ``task`` (multiclass, the class names and their training counts),
    ``input_size`` (3 channels), ``files`` (every image's path relative to ``root``),
    ``split_indices`` (split name -> rows of ``files``), ``datasets`` (split name ->
    TensorDataset of images and labels), ``mean`` and ``std``.

    Prediction: ``predict_path`` is an image file or a folder of them, sub-folders included
    (a class folder tree is read as just images); each is resized to ``image_size`` and
    normalised with the training split's ``mean`` and ``std``, which are the module's
    ``state_dict`` (saved in checkpoints), so predicting reads no training image. The output
    names each image by its path relative to the folder (``file``).

    Args:
        root: the folder of class folders (or of ``train/``, ``val/``, ``test/``); it must be
            given (None fails at setup).
        image_size: side in pixels every image is resized to. ``model=airbench`` needs at
            least 9; ``model=resnet18`` takes any, at a cost that grows with its square.
        batch_size: training images per step.
        eval_batch_size: images per validation, test and predict batch; larger, as no
            gradient is kept.
        val_fraction: share of each class held out for validation, in (0, 1), where there
            is no ``val/`` folder.
        test_fraction: share of each class held out for testing, in (0, 1), where there is
            no ``test/`` folder; ``val_fraction + test_fraction < 1``.
        seed: seed of the split. The training order and augmentations follow the run's
            ``seed``.
        max_shift: largest random translation in pixels, each direction, with reflect
            padding (airbench's 2); 0 for none. At most ``image_size - 1``.
        flip: mirror each training image left-right with probability 1/2; turn it off where
            the mirror image is another class (text, arrows).
        channels_last: hand the model ``torch.channels_last`` images, the layout fast
            convolutions want.
        cache: keep the decoded images in ``cache_dir`` and load them from there while the
            folder is unchanged.
        cache_dir: the cache folder; None for ``image_cache`` in `default_root`
            (``$LREGLOSS_DATA_DIR``, else the user's cache folder).
        num_workers: DataLoader worker processes; 0 loads in the main process, which is
            enough as a batch is one gather from a tensor in memory.
        predict_path: an image file or a folder of images to predict (``setup("predict")``),
            or None.

    Raises:
        ValueError: an argument out of range (at construction); no root, a tree in neither
            layout, fewer than 2 classes, an empty class folder, an image that cannot be
            decoded, or a split or a class's training images that end up empty (at setup).
            Each message names the folder or file and the fix.
        FileNotFoundError: ``root`` is not a folder (at setup).
    """

    def __init__(
        self,
        root: str | None = None,
        image_size: int = 32,
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        max_shift: int = 2,
        flip: bool = True,
        channels_last: bool = True,
        cache: bool = True,
        cache_dir: str | None = None,
        num_workers: int = 0,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("image_size", image_size), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if check_positive(name, value) >= 1:
                raise ValueError(f"{name} must be < 1, got {value}")
        if val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 to leave training images, got {val_fraction} + {test_fraction}"
            )
        if int(max_shift) != max_shift or not 0 <= max_shift < image_size:
            raise ValueError(f"max_shift must be an integer in 0..{image_size - 1} pixels (image_size - 1), got {max_shift}")
        if int(num_workers) != num_workers or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers}")
        self.save_hyperparameters()
        self.root = Path(root).expanduser() if root is not None else None
        self.image_size = int(image_size)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.max_shift = max_shift
        self.flip = flip
        self.channels_last = channels_last
        self.cache = cache
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_root() / CACHE_FOLDER
        self.num_workers = num_workers
        self.predict_path = predict_path
        self.input_size = 3
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None
        self.datasets: dict[str, TensorDataset] = {}

    @property
    def is_fitted(self) -> bool:
        return self.mean is not None

    def state_dict(self) -> dict[str, list[float]]:
        """The training split's per-channel mean and std ([0, 1] scale), which new images are normalised with; empty before they are measured."""
        return {} if self.mean is None else {"mean": list(self.mean), "std": list(self.std)}

    def load_state_dict(self, state_dict: dict[str, list[float]]) -> None:
        self.mean = tuple(float(value) for value in state_dict["mean"])
        self.std = tuple(float(value) for value in state_dict["std"])

    def build_splits(self) -> None:
        """List the folder, decode (or load the cached) images, split, measure the training split's channel statistics."""
        if self.root is None:
            raise ValueError(
                "root is not set; pass data.root=<a folder with one sub-folder of images per class> "
                "(lregloss-train data=images data.root=photos/)"
            )
        listing = list_image_folder(self.root)
        images = self._images(listing)
        labels = torch.tensor(listing.labels, dtype=torch.long)
        self.files = listing.names
        self.split_indices = self._split_rows(listing, labels)
        for name in SPLITS:
            if len(self.split_indices[name]) == 0:
                raise ValueError(
                    f"the {name} split of {self.root} is empty: {len(labels)} images of {len(listing.classes)} classes, "
                    f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction}; "
                    "give more images or larger fractions"
                )
        counts = torch.bincount(labels[self.split_indices["train"]], minlength=len(listing.classes))  # each >= 1
        for name in SPLITS:
            rows = self.split_indices[name]
            self.datasets[name] = TensorDataset(images[rows], labels[rows])
        self.mean, self.std = channel_stats(self.datasets["train"].tensors[0])
        self.task = Task("multiclass", len(listing.classes), names=listing.classes, class_counts=tuple(counts.tolist()))

    def _split_rows(self, listing: ImageFolderListing, labels: Tensor) -> dict[str, Tensor]:
        """Split name -> rows of ``listing``: its split folders, and stratified parts of the rest."""
        if listing.splits is None:
            return dict(zip(("val", "test", "train"), stratified_split(labels, (self.val_fraction, self.test_fraction), self.seed)))
        rows = {
            name: torch.tensor([row for row, split in enumerate(listing.splits) if split == name], dtype=torch.long)
            for name in SPLITS
        }
        missing = [name for name in ("val", "test") if name not in listing.splits]  # an existing folder holds images
        if missing:
            fractions = {"val": self.val_fraction, "test": self.test_fraction}
            train = rows["train"]
            parts = stratified_split(labels[train], [fractions[name] for name in missing], self.seed)
            for name, part in zip([*missing, "train"], parts):
                rows[name] = train[part]
        return rows

    def _images(self, listing: ImageFolderListing) -> Tensor:
        """The decoded images of ``listing``: from the cache where it holds them, else decoded (and cached)."""
        where = f"{len(listing.files)} images of {len(listing.classes)} classes at {self.image_size}x{self.image_size}"
        path = cache_file(self.cache_dir, listing, self.image_size) if self.cache else None
        if path is not None and path.is_file():
            images = self._read_cache(path, listing)
            if images is not None:
                log.info("%s: %s, loaded from the cache %s", self.root, where, path)
                return images
        images = decode_images(listing, self.image_size)
        if path is not None and self._write_cache(path, listing, images):
            log.info("%s: %s, decoded and cached in %s", self.root, where, path)
        else:
            log.info("%s: %s, decoded", self.root, where)
        return images

    def _read_cache(self, path: Path, listing: ImageFolderListing) -> Tensor | None:
        """The images a cache file holds, or None where it cannot be read or does not match ``listing``."""
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            images = saved["images"]
            matches = (
                saved["files"] == listing.names
                and saved["labels"].tolist() == list(listing.labels)
                and images.dtype == torch.uint8
                and tuple(images.shape) == (len(listing.files), 3, self.image_size, self.image_size)
            )
        except Exception as error:  # a truncated or foreign file raises any of many types; all mean "decode again"
            log.warning("cache file %s cannot be read (%s); decoding the images again", path, " ".join(str(error).split()))
            return None
        if not matches:
            log.warning("cache file %s does not match %s; decoding the images again", path, self.root)
            return None
        return images

    def _write_cache(self, path: Path, listing: ImageFolderListing, images: Tensor) -> bool:
        """Save the cache file atomically and remove the older ones of the folder and size; False where it cannot be written."""
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
            os.close(handle)
            saved = {
                "images": images,
                "labels": torch.tensor(listing.labels, dtype=torch.long),
                "files": listing.names,
                "classes": list(listing.classes),
            }
            torch.save(saved, temporary)
            os.replace(temporary, path)  # processes caching the same folder at once each write a whole file
        except OSError as error:
            log.warning("cannot write the image cache %s (%s); pass data.cache_dir=<a writable folder>", path, error)
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            return False
        prefix = path.name.rsplit("-", 1)[0]
        for older in path.parent.glob(f"{prefix}-*.pt"):
            if older != path:
                older.unlink(missing_ok=True)
        return True

    def read_new_inputs(self, path: Path) -> NewInputs:
        found = image_inputs(path)
        if found is None:
            raise ValueError(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)}); give an image or a folder of them")
        files, names = found
        images = torch.stack([read_image(file, self.image_size, self.image_size) for file in files])
        return NewInputs(TensorDataset(images), {"file": names})

    def model_inputs(self, images: Tensor, augment: bool) -> Tensor:
        """The float32 model inputs for a uint8 (B, 3, S, S) batch, augmented where asked.

        Augmentation: a random translation by up to ``max_shift`` pixels (reflect padding),
        then a random horizontal flip (where ``flip``); both vectorised over the batch.
        Normalisation: ``(images / 255 - mean) / std`` per channel, with the training split's
        ``mean`` and ``std``.
        """
        if augment:
            images = random_translate(images, self.max_shift)
            if self.flip:
                images = random_flip(images)
        return normalize(images, self.mean, self.std, channels_last=self.channels_last)

    def on_after_batch_transfer(self, batch: list[Tensor], dataloader_idx: int) -> tuple[Tensor, ...]:
        """Lightning's hook, on the model's device: augment training batches, normalise every batch (``[images, labels]`` or ``[images]``)."""
        images, *labels = batch
        training = self.trainer is not None and self.trainer.training
        return self.model_inputs(images, augment=training), *labels
