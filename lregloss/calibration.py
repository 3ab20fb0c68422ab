"""Temperature scaling (Guo et al., 2017): one scalar T that makes a loss's distribution match held-out frequencies."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lregloss.losses import Loss
from lregloss.metrics import negative_log_likelihood

LOG_T_BOUND = math.log(100.0)  # T in [0.01, 100]: beyond it a distribution is one-hot or uniform anyway


def mean_nll(loss: Loss, outputs: Tensor, target: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
    """mean_i -log p_T(y_i | x_i), p_T = ``loss.predict_proba(outputs, T)`` in float64 (`negative_log_likelihood`)."""
    return negative_log_likelihood(loss.predict_proba(outputs, temperature).double(), target.long()).mean()


def fit_temperature(loss: Loss, outputs: Tensor, target: Tensor, max_iter: int = 100) -> float:
    """The T > 0 that minimises the mean negative log-likelihood of ``target`` under ``loss``'s distribution at T.

    Fitted on held-out outputs (the validation split's), as Guo et al. do: log T by L-BFGS
    (strong Wolfe line search) from T = 1, in float64, bounded to [0.01, 100]. One scalar
    divides every logit: softmax keeps its mode, cumulative ordinal thresholds their median
    (`Loss.predict_proba`).

    Raises:
        ValueError: ``loss`` gives no distribution over classes or levels, or there are no samples.
    """
    if not loss.gives_distribution:
        raise ValueError(f"temperature scaling needs a distribution, which {type(loss).__name__} does not give")
    if len(target) == 0:
        raise ValueError("temperature scaling needs held-out samples; the validation split is empty")
    # Lightning evaluates under inference mode: leave it, and copy the outputs out of it.
    with torch.inference_mode(False), torch.enable_grad():
        outputs, target = outputs.detach().clone(), target.detach().clone()
        log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            optimizer.zero_grad()
            value = mean_nll(loss, outputs, target, log_t.clamp(-LOG_T_BOUND, LOG_T_BOUND).exp())
            value.backward()
            return value

        optimizer.step(closure)
    return float(log_t.detach().clamp(-LOG_T_BOUND, LOG_T_BOUND).exp())
