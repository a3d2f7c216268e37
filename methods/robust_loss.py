"""Stage B of Grid-TR: robust cross-entropy against proposals (eq. 17/18 with d_B of eq. 24)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rtrbench.datasets.labelio import IGNORE


def robust_log_likelihood(log_q: torch.Tensor, eps: float, num_classes: int) -> torch.Tensor:
    """log(a + b·q) with a = ε/(K−1), b = 1 − K·a, from log q; stable for any logits.

    log(a + b·e^z) = logaddexp(log a, log b + z): no exp of large numbers, no log of 0, and
    the gradient b·q / (a + b·q) comes out of logaddexp exactly (ε = 0 gives log q).
    """
    a = eps / (num_classes - 1)
    b = 1.0 - num_classes * a
    if b <= 0:
        raise ValueError(f"robust loss needs eps < (K-1)/K = {(num_classes - 1) / num_classes:.4f}, got {eps}")
    log_a = torch.full_like(log_q, math.log(a) if a > 0 else -math.inf)
    return torch.logaddexp(log_a, log_q + math.log(b))


def robust_cross_entropy(logits: torch.Tensor, proposal: torch.Tensor, seeds: torch.Tensor, eps: float) -> torch.Tensor:
    """Σ_seeds −log q(y) + Σ_{proposal, not seed} −log(a + b·q(s*)), divided by #seeds in the batch.

    logits N×K×H×W; proposal and seeds N×H×W int64 with 255 = none. Seeds take priority over
    the proposal at their pixels. The reference normalises by the number of seed pixels so the
    scale stays comparable to PCE.
    """
    k = logits.shape[1]
    log_q = F.log_softmax(logits, 1)
    is_seed = seeds != IGNORE
    is_proposal = (proposal != IGNORE) & ~is_seed
    seed_ll = log_q.gather(1, seeds.masked_fill(~is_seed, 0)[:, None])[:, 0]
    prop_ll = robust_log_likelihood(log_q.gather(1, proposal.masked_fill(~is_proposal, 0)[:, None])[:, 0], eps, k)
    total = -(seed_ll * is_seed).sum() - (prop_ll * is_proposal).sum()
    return total / is_seed.sum().clamp(min=1)
