"""Relaxations of the 8-grid Potts model (Grid-GD, eq. 7/8: the bilinear one), batched, any device."""

from __future__ import annotations

import torch

from rtrbench.methods.losses.relaxations import potts_relaxation
from rtrbench.methods.solvers.potts import OFFSETS, contrast_weights_torch, pair_slices

# Relaxations of unit vectors: normalized-quadratic(p, q) = bilinear(p̂, q̂) and
# collision-divergence(p, q) = collision(p̂, q̂) with p̂ = p / ‖p‖.
ON_UNIT_VECTORS = {"normalized-quadratic": "bilinear", "collision-divergence": "collision"}


def grid_potts_energy(
    probs: torch.Tensor, weights: torch.Tensor, roi: torch.Tensor, relaxation: str = "bilinear"
) -> torch.Tensor:
    """Per image: Σ_{(i,j)∈N8} w_ij P(q_i, q_j) / #ROI pixels, for the Potts relaxation P
    (`potts_relaxation`; bilinear: Σ_k q_i^k (1 − q_j^k)). `weights` from `contrast_weights_torch`
    (N×4×H×W, 0 off the ROI). Returns N values."""
    if relaxation in ON_UNIT_VECTORS:  # the same values, with each pixel's norm taken once, not per pair
        probs = probs / probs.norm(dim=1, keepdim=True).clamp_min(torch.finfo(probs.dtype).tiny)
        relaxation = ON_UNIT_VECTORS[relaxation]
    h, w = probs.shape[-2:]
    total = probs.new_zeros(probs.shape[0])
    for d, (dy, dx) in enumerate(OFFSETS):
        (sy, sx), (ty, tx) = pair_slices(dy, dx, h, w)
        pair = potts_relaxation(relaxation, probs[:, :, sy, sx], probs[:, :, ty, tx])
        total = total + (weights[:, d, sy, sx] * pair).sum((1, 2))
    return total / roi.flatten(1).sum(1).clamp(min=1).to(probs.dtype)


def grid_potts_loss(images: torch.Tensor, probs: torch.Tensor, roi: torch.Tensor, relaxation: str = "bilinear") -> torch.Tensor:
    """Mean over images of Σ_{(i,j)∈N8} w_ij P(q_i, q_j) / #valid pairs.

    images N×3×H×W (RGB 0..255), probs N×K×H×W (softmax), roi N×H×W bool. The weights are
    `contrast_weights_torch`, which carry × #ROI / #pairs, so dividing by #ROI gives the
    reference code's average over valid pairs; they depend on the image only, not on θ.
    """
    with torch.no_grad():
        weights = contrast_weights_torch(images, roi).to(probs.dtype)  # N×4×H×W, 0 off the ROI
    return grid_potts_energy(probs, weights, roi, relaxation).mean()
