"""Stage B of Grid-TR: robust cross-entropy against proposals (eq. 17/18 with d_B of eq. 24).

Robustness. Eq. 24 mixes the network's q with a uniform error model:
``−log(a + b·q)``, ``a = ε/(K−1)``, ``b = 1 − K·a``. What ε means depends on K, since it must
stay below (K−1)/K. The weight of a proposal pixel relative to a seed pixel is at most
``r = b/(a + b)`` (the ratio of their gradients at q = 1; it falls towards 0 as q does), and
r means the same for any K: r = 1 is plain cross-entropy on the proposals (ε = 0), r → 0
ignores them (ε → (K−1)/K). ``eps_from_weight``/``proposal_weight`` convert between the two;
the reference's ε = 0.944 … 0.9522 with K = 21 is r ≈ 0.16 … 0.004.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rtrbench.datasets.labelio import IGNORE
from rtrbench.methods.world import World


def proposal_weight(eps: float, num_classes: int) -> float:
    """r = b/(a + b) of ε for K classes (1 at ε = 0, 0 at ε = (K−1)/K)."""
    k = num_classes
    a = eps / (k - 1)
    b = 1.0 - k * a
    return b / (a + b)


def eps_from_weight(r: float, num_classes: int) -> float:
    """The ε whose proposal weight is r, for K classes: ε = (K−1)(1−r) / (K − r(K−1))."""
    if not 0 < r <= 1:
        raise ValueError(f"proposal weight must be in (0, 1], got {r}")
    k = num_classes
    return (k - 1) * (1 - r) / (k - r * (k - 1))


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


def robust_cross_entropy(logits: torch.Tensor, proposal: torch.Tensor, seeds: torch.Tensor, eps: float, world: World = World()) -> torch.Tensor:
    """Σ_seeds −log q(y) + Σ_{proposal, not seed} −log(a + b·q(s*)), divided by #seeds in the batch.

    logits N×K×H×W; proposal and seeds N×H×W int64 with 255 = none. Seeds take priority over
    the proposal at their pixels. The reference normalises by the number of seed pixels so the
    scale stays comparable to PCE. A batch whose crops hold no seed is normalised by its
    number of proposal pixels instead (a mean of the robust term): dividing its sum by 1
    would make one step hundreds of times a normal one.
    """
    k = logits.shape[1]
    log_q = F.log_softmax(logits, 1)
    is_seed = seeds != IGNORE
    is_proposal = (proposal != IGNORE) & ~is_seed
    seed_ll = log_q.gather(1, seeds.masked_fill(~is_seed, 0)[:, None])[:, 0]
    prop_ll = robust_log_likelihood(log_q.gather(1, proposal.masked_fill(~is_proposal, 0)[:, None])[:, 0], eps, k)
    total = -(seed_ll * is_seed).sum() - (prop_ll * is_proposal).sum()
    # the counts of the global batch under DDP, this process's share of its mean; no host sync
    n_seeds, n_proposal = world.total(torch.stack([is_seed.sum(), is_proposal.sum()]))
    divisor = torch.where(n_seeds > 0, n_seeds, n_proposal.clamp(min=1))
    return total / (divisor if world.size == 1 else divisor / world.size)
