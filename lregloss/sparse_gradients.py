"""Parameters whose gradients are sparse tensors, and the optimizers that can step them.

An ``nn.Embedding``/``nn.EmbeddingBag`` built with ``sparse=True``, or an lregloss loss with
``sparse=True`` (hierarchical softmax's node vectors), hands its optimizer a sparse gradient
holding only the rows a batch used. torch's SGD, SparseAdam and Adagrad step those; Adam,
AdamW and the rest fail at their first step, deep inside torch. These checks refuse such a
pairing up front, in one line that names the parameters and the fix.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim import Optimizer

SPARSE_OPTIMIZERS = (torch.optim.SGD, torch.optim.SparseAdam, torch.optim.Adagrad)


def sparse_gradient_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> parameter, for every parameter of ``module`` that receives sparse gradients.

    Those of the sub-modules with ``sparse`` set: embeddings (``sparse=True``) and lregloss's
    losses that take a ``sparse`` argument (all their parameters).
    """
    found: dict[str, nn.Parameter] = {}
    for prefix, child in module.named_modules():
        if getattr(child, "sparse", False) is True:
            for name, parameter in child.named_parameters(prefix=prefix, recurse=False):
                found[name] = parameter
    return found


def check_sparse_optimizer(optimizer: Optimizer, module: nn.Module) -> None:
    """Refuse an optimizer that cannot step the sparse gradients of ``module``'s parameters it holds.

    Raises:
        ValueError: the optimizer holds a parameter with sparse gradients and is not one of
            `SPARSE_OPTIMIZERS`; or it is SparseAdam and holds a parameter with dense gradients.
    """
    sparse = sparse_gradient_parameters(module)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    stepped = sorted(name for name, p in sparse.items() if id(p) in held)
    kind = type(optimizer).__name__
    if stepped and not isinstance(optimizer, SPARSE_OPTIMIZERS):
        raise ValueError(
            f"optimizer: torch.optim.{kind} cannot step the sparse gradients of {', '.join(stepped)}; use "
            "optimizer=sgd or optimizer=sparse_adam, or turn sparse gradients off (model.sparse=false, loss.sparse=false)"
        )
    if isinstance(optimizer, torch.optim.SparseAdam):
        sparse_ids = {id(p) for p in sparse.values()}
        dense = sorted(name for name, p in module.named_parameters() if id(p) in held and id(p) not in sparse_ids)
        if dense:
            raise ValueError(
                f"optimizer: SparseAdam steps sparse gradients only, and {', '.join(dense[:3])} get dense ones; "
                "use optimizer=sgd, or a loss and model whose parameters all take sparse=true"
            )


def check_no_sparse_selection(name: str, selected: list[nn.Parameter], module: nn.Module) -> None:
    """Refuse a regularizer ``name`` that selects a parameter with sparse gradients (its gradient cannot be added in place).

    Raises:
        ValueError: one of ``selected`` receives sparse gradients.
    """
    sparse = {id(p): n for n, p in sparse_gradient_parameters(module).items()}
    hit = sorted(sparse[id(p)] for p in selected if id(p) in sparse)
    if hit:
        raise ValueError(
            f"reg {name}: {', '.join(hit)} get sparse gradients, which a penalty cannot be added to; "
            "use reg=none, or turn sparse gradients off (model.sparse=false, loss.sparse=false)"
        )
