"""Bilinear relaxation of the 8-grid Potts model (Grid-GD, eq. 7/8), batched, any device."""

from __future__ import annotations

import torch

from rtrbench.methods.solvers.potts import OFFSETS, contrast_weights_torch, pair_slices


def grid_potts_loss(images: torch.Tensor, probs: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """Mean over images of Σ_{(i,j)∈N8} w_ij Σ_k q_i^k (1 − q_j^k) / #valid pairs.

    images N×3×H×W (RGB 0..255), probs N×K×H×W (softmax), roi N×H×W bool. The weights are
    `contrast_weights_torch`, which carry × #ROI / #pairs, so dividing by #ROI gives the
    reference code's average over valid pairs; they depend on the image only, not on θ.
    """
    with torch.no_grad():
        weights = contrast_weights_torch(images, roi).to(probs.dtype)  # N×4×H×W, 0 off the ROI
    h, w = probs.shape[-2:]
    total = probs.new_zeros(probs.shape[0])
    for d, (dy, dx) in enumerate(OFFSETS):
        (sy, sx), (ty, tx) = pair_slices(dy, dx, h, w)
        agree = (probs[:, :, sy, sx] * probs[:, :, ty, tx]).sum(1)  # Σ_k q_i^k q_j^k
        total = total + (weights[:, d, sy, sx] * (1 - agree)).sum((1, 2))
    n_roi = roi.flatten(1).sum(1).clamp(min=1).to(probs.dtype)
    return (total / n_roi).mean()
