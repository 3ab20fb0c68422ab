"""Which parameters a penalty or constraint acts on: timm's weight-decay rule plus name patterns."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from torch import nn


def check_patterns(name: str, patterns: Sequence[str] | None) -> tuple[str, ...] | None:
    """Return ``patterns`` as a tuple of glob strings (None stays None), else raise a ValueError.

    A bare string is refused because iterating it would yield one pattern per character.
    """
    if patterns is None:
        return None
    if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"{name} must be a list of glob patterns such as ['*.weight'], got {patterns!r}")
    return tuple(patterns)


def _is_bias(name: str) -> bool:
    return name == "bias" or name.endswith(".bias")


def select_parameters(
    module: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    trainable_only: bool = True,
) -> list[nn.Parameter]:
    """The trainable parameters of ``module`` that a penalty or constraint should act on.

    By default this is timm's ``param_groups_weight_decay`` rule: parameters of dimension
    >= 2 (Linear, Conv and Embedding weights) whose name does not end in ``bias``; biases and
    normalisation scales and shifts (1-dim) are left out. ``include`` replaces that rule: exactly
    the parameters whose full name (as in ``named_parameters``) matches one of its glob
    patterns. ``exclude`` patterns then remove parameters. Frozen parameters
    (``requires_grad=False``) are left out unless ``trainable_only`` is False (the callbacks
    select them too and skip them while they are frozen, so a layer unfrozen later is
    included); shared parameters appear once.

    Args:
        module: the model whose parameters to select.
        include: glob patterns (``fnmatch``, case-sensitive) on full parameter names, or None
            for the default rule.
        exclude: glob patterns of parameters to leave out.
        trainable_only: leave out parameters with ``requires_grad=False``.

    Returns:
        The selected parameters, in ``named_parameters`` order.

    Raises:
        ValueError: an ``include`` pattern matches no parameter name (most likely a typo,
            which would otherwise silently switch the penalty off).
    """
    include = check_patterns("include", include)
    exclude = check_patterns("exclude", exclude) or ()
    named = list(module.named_parameters())
    if include is not None:
        names = [name for name, _ in named]
        for pattern in include:
            if not any(fnmatchcase(name, pattern) for name in names):
                raise ValueError(
                    f"include pattern {pattern!r} matches no parameter of {type(module).__name__}; "
                    f"parameter names are {names}"
                )

    def wanted(name: str, param: nn.Parameter) -> bool:
        if include is None:
            chosen = param.ndim >= 2 and not _is_bias(name)
        else:
            chosen = any(fnmatchcase(name, pattern) for pattern in include)
        return chosen and not any(fnmatchcase(name, pattern) for pattern in exclude)

    return [param for name, param in named if (param.requires_grad or not trainable_only) and wanted(name, param)]
