"""Soft-label losses of Zhang & Boykov (CVPR 2025): the collision cross-entropy between a soft
pseudo-label and the network, and relaxations of the Potts model for a pair of distributions.

Tensors hold probabilities with the class dimension 1 (N×K×…, as in torch); every function
returns N×… (the class dimension reduced). Logarithms of quantities that reach 0 (a pair of
disjoint one-hot labels) are taken of the quantity clamped to the dtype's smallest normal
number, so they stay finite and differentiable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch

Relaxation = Literal["bilinear", "quadratic", "normalized-quadratic", "collision", "collision-divergence", "log-quadratic"]
RELAXATIONS: tuple[str, ...] = get_args(Relaxation)


def _safe_log(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x.clamp_min(torch.finfo(x.dtype).tiny))


def collision_cross_entropy(
    p: torch.Tensor, q: torch.Tensor, *, log_p: torch.Tensor | None = None, log_q: torch.Tensor | None = None
) -> torch.Tensor:
    """−log Σ_k p_k q_k. With the log-probabilities (`log_p`, `log_q`, e.g. log_softmax of
    logits) it is computed as −logsumexp(log p + log q), stable for any magnitude (a missing one
    is the log of its probabilities: −inf where they are 0, which is exact but has no gradient
    there). A one-hot `p` gives the negative log-likelihood −log q_y."""
    if log_p is not None or log_q is not None:
        lp = torch.log(p) if log_p is None else log_p
        lq = torch.log(q) if log_q is None else log_q
        return -torch.logsumexp(lp + lq, dim=1)
    return -_safe_log((p * q).sum(1))


def _dot(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p * q).sum(1)


def _cosine(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return _dot(p, q) / (p.norm(dim=1) * q.norm(dim=1)).clamp_min(torch.finfo(p.dtype).tiny)


def _half_squared_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((p - q) ** 2).sum(1)


_FORMULAS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bilinear": lambda p, q: 1 - _dot(p, q),
    "quadratic": _half_squared_distance,
    "normalized-quadratic": lambda p, q: 1 - _cosine(p, q),
    "collision": lambda p, q: -_safe_log(_dot(p, q)),
    "collision-divergence": lambda p, q: -_safe_log(_cosine(p, q)),
    "log-quadratic": lambda p, q: -_safe_log(1 - _half_squared_distance(p, q)),
}


def potts_relaxation(name: str, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The relaxation `name` of the Potts term [s_i ≠ s_j] for distributions p (at i) and q (at
    j); each is 0 for equal one-hot labels and positive for different ones:

    bilinear 1 − pᵀq · quadratic ½‖p − q‖² · normalized-quadratic 1 − pᵀq/(‖p‖‖q‖) ·
    collision −log pᵀq · collision-divergence −log(pᵀq/(‖p‖‖q‖)) · log-quadratic −log(1 − ½‖p − q‖²)
    """
    try:
        formula = _FORMULAS[name]
    except KeyError:
        raise ValueError(f"unknown Potts relaxation {name!r}; expected one of {', '.join(RELAXATIONS)}") from None
    return formula(p, q)
