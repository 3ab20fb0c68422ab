"""Data files shipped inside the package: where they lie, their checksums, reading them as text."""

from __future__ import annotations

import gzip
import hashlib
import lzma
from importlib import resources
from pathlib import Path
from typing import IO



class ChecksumMismatchError(ValueError):
    """A data file's checksum differs from the one the code expects.

    The message names the file, both digests and the fix. A ValueError, so that the training
    entry point reports it in one line, like other data errors.
    """


# The data files shipped in lregloss/data/assets that data configs read by name (see its README.md).
SHIPPED_SHA256 = {
    "womens_clothing_reviews.csv.gz": "9a9e641e54bb9844cb15dbfe2cbed86af9d6c30c70dade926cd31ab52c7aabb5",
}


def shipped_path(file_name: str) -> Path:
    """Where the shipped data file ``file_name`` lies inside the installed package (``lregloss/data/assets``)."""
    return Path(str(resources.files("lregloss.data").joinpath("assets", file_name)))


def verify_sha256(path: Path, expected: str, own_data_hint: str) -> None:
    """Raise unless the shipped file at ``path`` has sha256 ``expected``.

    Args:
        path: the file.
        expected: its sha256, hex.
        own_data_hint: how to use one's own data instead, the second fix the message offers
            (e.g. "pass path= to your own CSV").

    Raises:
        ChecksumMismatchError: the digest differs; the message names the file and the fixes.
    """
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ChecksumMismatchError(
            f"{path} has sha256 {digest}, expected {expected}: the shipped data is damaged or was changed. "
            f"Reinstall lregloss (pip install --force-reinstall lregloss), or {own_data_hint}"
        )


def verify_shipped(path: Path, own_data_hint: str) -> None:
    """`verify_sha256` of a file of ``SHIPPED_SHA256``, by its name.

    Raises:
        ValueError: the file is not one of them.
        ChecksumMismatchError: its digest differs.
    """
    if path.name not in SHIPPED_SHA256:
        raise ValueError(f"shipped_file {path.name!r} is not shipped with lregloss; use one of {', '.join(SHIPPED_SHA256)}")
    verify_sha256(path, SHIPPED_SHA256[path.name], own_data_hint)


def open_text(path: Path, newline: str | None = None) -> IO[str]:
    """Open a UTF-8 text file, decompressing ``.gz`` and ``.xz`` files (``newline`` as for ``open``)."""
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(path.suffix, open)
    return opener(path, "rt", encoding="utf-8", newline=newline)
