"""How the command line reports a failure: which errors are bad input, and how a message names its config key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from lregloss.lightning import fabric

MisconfigurationException = fabric.utilities.exceptions.MisconfigurationException


class ConfigError(ValueError):
    """A config value, a data file or the output folder is unusable.

    The message names the config key (``loss.margin``, ``data.path``, ``paths.log_dir``), what
    it holds, and what would be accepted. A ValueError, so that code catching bad arguments
    catches it too.
    """


def one_line(message: str) -> str:
    """``message`` with every run of whitespace, newlines included, made one space."""
    return " ".join(message.split())


# Raised by bad input rather than by a defect of lregloss: reported in one line, no traceback.
USER_ERRORS = (
    ValueError,  # ConfigError, LossTaskMismatchError, ChecksumMismatchError, eager argument checks
    FileNotFoundError,
    InstantiationException,
    MisconfigurationException,  # Lightning's own checks of Trainer and callback arguments
    OmegaConfBaseException,  # a key missing from a hand-edited config
)


def innermost(error: BaseException) -> BaseException:
    """The error Hydra's InstantiationException wraps (through nested instantiations), else ``error``."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def keyed_message(key: str, node: DictConfig | None, error: BaseException) -> str:
    """One line naming the config key of a failed argument check.

    Argument checks in lregloss start with the argument's name (``margin must be ...``,
    ``target: file.csv has no column ...``). When
    that first word is a key of ``node``, it is written as the full key (``loss.margin must be
    ...``); otherwise the message follows ``key:``.
    """
    cause = innermost(error)
    message = one_line(str(cause)) or type(cause).__name__
    first = message.split(" ", 1)[0].removesuffix(":")
    if node is not None and first.isidentifier() and first in node:
        return f"{key}.{message}"
    return f"{key}: {message}"


@contextmanager
def config_key(key: str, node: DictConfig | None = None) -> Iterator[None]:
    """Turn a user error raised while building or setting up ``node`` into a ConfigError naming ``key``.

    Errors that are already ConfigErrors pass unchanged; an ImportError is a user error here
    too (a choice whose optional library is missing: its message names the pip command);
    defects (other exception types) are not touched.
    """
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError, ImportError, InstantiationException, MisconfigurationException) as error:
        raise ConfigError(keyed_message(key, node, error)) from error
