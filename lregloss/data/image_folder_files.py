"""The files of an ImageFolder tree (a sub-folder per class): listing them, checking the layout, decoding them once."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lregloss.data.image_files import IMAGE_SUFFIXES, is_image_file, read_image

SPLITS = ("train", "val", "test")
CACHE_FORMAT = 1  # part of every cache key: a change of what a cache file holds re-decodes every folder


@dataclass(frozen=True)
class ImageFolderListing:
    """The image files of an ImageFolder tree, in the order their rows take.

    Args:
        root: the folder listed.
        classes: class names, the sorted class sub-folder names; label k is ``classes[k]``.
        files: every image, relative to ``root``, sorted within each split and class folder.
        labels: the class index of each file.
        splits: the split folder (``train``, ``val`` or ``test``) of each file; None where
            ``root`` holds the class folders itself.
    """

    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    splits: tuple[str, ...] | None

    @property
    def names(self) -> list[str]:
        """The files as relative POSIX paths (``train/cat/001.png``), the cache's and the loaders' names for them."""
        return [file.as_posix() for file in self.files]


def _is_hidden(name: str) -> bool:
    # .DS_Store, .ipynb_checkpoints/, and macOS's "._photo.jpg" copies, which are no images.
    return name.startswith(".")


def _sub_folders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir() and not _is_hidden(path.name))


def class_names(folder: Path) -> tuple[str, ...]:
    """The sorted names of the class sub-folders of ``folder`` (hidden ones skipped).

    Raises:
        ValueError: ``folder`` holds none, or only one; the message says how to lay it out.
    """
    names = tuple(path.name for path in _sub_folders(folder))
    if not names:
        raise ValueError(
            f"{folder} holds no class sub-folder; put the images of each class in a sub-folder named after "
            f"the class ({folder}/<class>/<image>), or give the folder above it as root"
        )
    if len(names) < 2:
        raise ValueError(
            f"{folder} holds 1 class folder ({names[0]}); a multiclass task needs at least 2: add a sub-folder "
            "of images for every class"
        )
    return names


def class_folder_images(folder: Path, root: Path, classes: Sequence[str]) -> tuple[list[Path], list[int]]:
    """The images in the class folders of ``folder``, relative to ``root``, and their class indices.

    Images may lie at any depth below their class folder; hidden files and folders are skipped.

    Raises:
        ValueError: an image lies beside the class folders, a class folder's name is not in
            ``classes``, or a class folder holds no image; the message names it.
    """
    loose = sorted(path for path in folder.iterdir() if path.is_file() and is_image_file(path))
    if loose:
        raise ValueError(f"{loose[0]} lies in no class folder of {folder}; move it into the sub-folder of its class")
    label_of = {name: label for label, name in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for class_folder in _sub_folders(folder):
        if class_folder.name not in label_of:
            raise ValueError(
                f"{class_folder} is a class folder that {root / 'train'} lacks (its classes: {', '.join(classes)}); "
                f"add {root / 'train' / class_folder.name} with training images or remove {class_folder}"
            )
        images = sorted(
            path
            for path in class_folder.rglob("*")
            if path.is_file()
            and is_image_file(path)
            and not any(_is_hidden(part) for part in path.relative_to(class_folder).parts)
        )
        if not images:
            raise ValueError(
                f"class folder {class_folder} holds no image file ({', '.join(IMAGE_SUFFIXES)}); add images of "
                f"class {class_folder.name!r} or remove the folder"
            )
        files += [path.relative_to(root) for path in images]
        labels += [label_of[class_folder.name]] * len(images)
    return files, labels


def list_image_folder(root: Path) -> ImageFolderListing:
    """Every image of an ImageFolder tree, its class and its split folder.

    Two layouts: ``root/<class>/<image>``; or, where ``root`` holds a ``train``, ``val`` or
    ``test`` folder, ``root/<split>/<class>/<image>``, whose classes are those of ``train``
    (``val`` and ``test`` optional, each holding some or all of them).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: the tree is not in either layout, has fewer than 2 classes, or holds an
            empty class folder; the message names the folder and the fix.
    """
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(
            f"root {str(root)!r} {problem} (looked at {root.resolve()}); pass data.root=<a folder with one "
            "sub-folder of images per class>"
        )
    split_folders = [name for name in SPLITS if (root / name).is_dir()]
    if not split_folders:
        classes = class_names(root)
        files, labels = class_folder_images(root, root, classes)
        return ImageFolderListing(root, classes, tuple(files), tuple(labels), None)
    if "train" not in split_folders:
        raise ValueError(
            f"{root} holds {'/ and '.join(split_folders)}/ but no train/: with split folders, train/ holds the "
            f"class folders (val/ and test/ are optional); add {root / 'train'}, or rename the folder if it is a class"
        )
    others = [path.name for path in _sub_folders(root) if path.name not in SPLITS]
    if others:
        raise ValueError(
            f"{root / others[0]} is none of the split folders train/, val/, test/ that {root} holds; rename it "
            "(val/ for validation) or move it out"
        )
    classes = class_names(root / "train")
    files, labels, splits = [], [], []
    for name in split_folders:
        if name != "train" and not _sub_folders(root / name):
            raise ValueError(
                f"{root / name} holds no class sub-folder; put its images in class folders as in train/, or "
                f"remove it to split {name} off train/"
            )
        split_files, split_labels = class_folder_images(root / name, root, classes)
        files += split_files
        labels += split_labels
        splits += [name] * len(split_files)
    return ImageFolderListing(root, classes, tuple(files), tuple(labels), tuple(splits))


def cache_file(cache_dir: Path, listing: ImageFolderListing, image_size: int) -> Path:
    """Where the decoded images of ``listing`` at ``image_size`` are cached.

    The name ends in a hash of the resolved root, the image size and every file's (relative
    path, size in bytes, modification time in ns): an added, removed, renamed or rewritten
    image gives a new name, so a changed folder is decoded again. It starts with the folder's
    name and a hash of its resolved path, which the caches of its earlier versions share.
    """
    resolved = str(listing.root.resolve())
    entries = []
    for name, file in zip(listing.names, listing.files):
        status = (listing.root / file).stat()
        entries.append([name, status.st_size, status.st_mtime_ns])
    content = json.dumps([CACHE_FORMAT, resolved, image_size, entries]).encode()
    folder_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(resolved).name) or "root"
    prefix = f"{folder_name}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}-{image_size}px"
    return cache_dir / f"{prefix}-{hashlib.sha256(content).hexdigest()[:16]}.pt"


def decode_images(listing: ImageFolderListing, image_size: int) -> Tensor:
    """Every image of ``listing`` as uint8 (N, 3, image_size, image_size), resized (antialiased) where it differs.

    Raises:
        ValueError: a file cannot be decoded; the message names it.
    """
    images = torch.empty((len(listing.files), 3, image_size, image_size), dtype=torch.uint8)
    for row, file in enumerate(listing.files):
        images[row] = read_image(listing.root / file, image_size, image_size)
    return images
