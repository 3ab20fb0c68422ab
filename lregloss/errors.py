"""The failures lregloss raises, each with a one-line message that names the fix.

Plain exception types, importing nothing: the command line's rendering of them (which
errors count as bad input, how a message comes to name its config key) is in
`lregloss.app.error_reporting`.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value, a data file or the output folder is unusable.

    The message names the config key (``loss.margin``, ``data.path``, ``paths.log_dir``), what
    it holds, and what would be accepted. A ValueError, so that code catching bad arguments
    catches it too.
    """


class ChecksumMismatchError(ValueError):
    """A data file's checksum differs from the one the code expects.

    The message names the file, both digests and the fix. A ValueError, so that the training
    entry point reports it in one line, like other data errors.
    """


class ReportError(ValueError):
    """A sweep report cannot be made: a folder is missing or holds no job, or a named metric or column is unknown.

    The message names what was given and what would be accepted.
    """


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, penalty or weights.

    The message names the step, the loss and penalty values and the likely cause.
    """


def one_line(message: str) -> str:
    """``message`` with every run of whitespace, newlines included, made one space."""
    return " ".join(message.split())
