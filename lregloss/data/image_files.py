"""Image files (PNG, JPEG, ...) decoded into uint8 tensors of one size."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")  # what torchvision.io.decode_image reads


def is_image_file(path: Path) -> bool:
    """True where ``path`` has an image file suffix (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder``, sub-folders included, in sorted order of their paths.

    Raises:
        ValueError: there is none; the message names the folder and the suffixes read.
    """
    files = sorted(path for path in folder.rglob("*") if path.is_file() and is_image_file(path))
    if not files:
        raise ValueError(f"{folder} holds no image file ({', '.join(IMAGE_SUFFIXES)}); give a folder of images")
    return files


def image_inputs(path: Path) -> tuple[list[Path], list[str]] | None:
    """The images a path to predict names, and what names each in the output.

    A folder: its image files (`image_files`), named by their paths relative to it; an image
    file: itself, named by its file name; any other file: None.

    Raises:
        ValueError: a folder without an image file.
    """
    if path.is_dir():
        files = image_files(path)
        return files, [file.relative_to(path).as_posix() for file in files]
    if is_image_file(path):
        return [path], [path.name]
    return None


def read_image(path: Path, height: int, width: int) -> Tensor:
    """The RGB pixels of an image file as uint8 (3, height, width), resized (antialiased) where its size differs.

    Raises:
        ValueError: the file cannot be decoded; the message names it.
    """
    from torchvision.io import ImageReadMode, decode_image, read_file  # torchvision only where images are read
    from torchvision.transforms.v2.functional import resize

    try:
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except RuntimeError as error:
        raise ValueError(
            f"{path} cannot be decoded as an image ({' '.join(str(error).split())}); remove it or save it as PNG or JPEG"
        ) from error
    if image.shape[1:] != (height, width):
        image = resize(image, [height, width], antialias=True)
    return image
