"""Eager argument checks whose messages name the argument and the allowed range."""

import math
import tempfile
from pathlib import Path


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise a ValueError naming it."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_non_negative(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and >= 0, else raise a ValueError naming it."""
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_probability(name: str, value: float) -> float:
    """Return ``value`` as a float if it lies in [0, 1), else raise a ValueError naming it."""
    value = float(value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def writable_folder_problem(folder: str | Path) -> str | None:
    """Why files cannot be written in ``folder`` (created as needed), or None where they can.

    Checks the nearest folder that exists, without creating anything: it must be a folder
    and accept a new file.
    """
    existing = Path(folder)
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        return f"cannot create a file in {existing} ({error.strerror or error})"
    return None


def check_integer(name: str, value: int, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) >= ``minimum``, else raise a ValueError naming it."""
    try:
        is_int = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError):
        is_int = False
    if not is_int or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_counts(name: str, counts) -> list[float]:
    """Return ``counts`` as floats if each is finite and >= 0, else raise a ValueError naming the first bad index."""
    values = []
    for index, count in enumerate(counts):
        try:
            value = float(count)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must hold finite numbers >= 0, got {count!r} at index {index}")
        values.append(value)
    return values
