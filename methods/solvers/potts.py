"""Contrast-sensitive Potts model on the 8-grid (Grid-GD and Grid-TR; docs/methods.md).

Edge layout shared by every Potts routine: ``weights[d, y, x]`` is the weight of the
edge between pixel (y, x) and its neighbour (y + dy, x + dx) for the d-th offset of
``OFFSETS``; each undirected 8-grid edge is stored exactly once.
"""

from __future__ import annotations

import math

import numpy as np
import torch

OFFSETS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))
DISTANCES: tuple[float, ...] = (1.0, 1.0, math.sqrt(2.0), math.sqrt(2.0))


def pair_slices(dy: int, dx: int, h: int, w: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(source, neighbour) slices over an h×w grid: the pixels whose (dy, dx) neighbour is on the image."""
    src = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
    dst = (slice(dy, h), slice(max(0, dx), w + min(0, dx)))
    return src, dst


def contrast_weights_torch(image: torch.Tensor, roi: torch.Tensor | None = None, nu: float = 1.0) -> torch.Tensor:
    """Batched contrast weights N×4×H×W of the 8-grid Potts model (layout: see the module docstring).

    ``w_ij = exp(−‖I_i − I_j‖² / 2σ²) / dist(i, j) · (#ROI pixels / #valid pairs) · nu`` for pairs
    with both pixels on the image and in the ROI, 0 elsewhere; σ² is the per-image mean of
    ``‖I_i − I_j‖²`` over its valid pairs (four directions together). The last factor is the
    reference code's normalisation of the summed Potts term.

    Guards: σ² = 0 (constant image over the ROI) gives every valid pair ``exp(0) = 1`` (the limit
    for any σ² > 0); an image with no valid pair (empty/one-pixel ROI) gets all-zero weights.
    Computation is in float64 for float64 input and float32 otherwise (half precision would
    overflow: ‖ΔI‖² reaches 3·255²); the result has the input's float dtype and device.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be N×3×H×W, got {tuple(image.shape)}")
    n, _, h, w = image.shape
    out_dtype = image.dtype if image.is_floating_point() else torch.float32
    img = image.to(torch.float64 if image.dtype == torch.float64 else torch.float32)
    if roi is None:
        roi = torch.ones((n, h, w), dtype=torch.bool, device=image.device)
    roi = roi.to(device=image.device, dtype=torch.bool)

    sq = img.new_zeros((n, 4, h, w))  # ‖I_i − I_j‖² per edge
    valid = torch.zeros((n, 4, h, w), dtype=torch.bool, device=image.device)
    for d, (dy, dx) in enumerate(OFFSETS):
        (sy, sx), (ty, tx) = pair_slices(dy, dx, h, w)
        sq[:, d, sy, sx] = (img[:, :, sy, sx] - img[:, :, ty, tx]).square().sum(1)
        valid[:, d, sy, sx] = roi[:, sy, sx] & roi[:, ty, tx]

    sq = sq * valid  # invalid pairs must not enter σ²
    n_pairs = valid.sum((1, 2, 3)).to(img.dtype)
    n_roi = roi.sum((1, 2)).to(img.dtype)
    safe_pairs = n_pairs.clamp_min(1.0)
    sigma2 = (sq.sum((1, 2, 3)) / safe_pairs).clamp_min(torch.finfo(img.dtype).tiny)
    scale = torch.where(n_pairs > 0, n_roi / safe_pairs, torch.zeros_like(n_pairs)) * nu
    inv_dist = img.new_tensor([1.0 / d for d in DISTANCES]).view(1, 4, 1, 1)
    weights = torch.exp(-sq / (2.0 * sigma2.view(n, 1, 1, 1))) * inv_dist * valid
    return (weights * scale.view(n, 1, 1, 1)).to(out_dtype)


def contrast_weights(image: np.ndarray, roi: np.ndarray | None = None, nu: float = 1.0) -> np.ndarray:
    """Contrast weights (4, H, W) float64 of one H×W×3 image in 0..255 (see ``contrast_weights_torch``)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H×W×3, got {image.shape}")
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64)).permute(2, 0, 1)[None]
    roi_t = None if roi is None else torch.from_numpy(np.asarray(roi, dtype=bool))[None]
    return contrast_weights_torch(img, roi_t, nu)[0].numpy()


def potts_energy(labels: np.ndarray, unary: np.ndarray, weights: np.ndarray) -> float:
    """``Σ_i unary[i, labels_i] + Σ_edges weights · [labels differ]`` on the 8-grid."""
    labels = np.asarray(labels)
    h, w = labels.shape
    data = np.take_along_axis(unary, labels[..., None].astype(np.intp), axis=2).sum()
    smooth = 0.0
    for d, (dy, dx) in enumerate(OFFSETS):
        src, dst = pair_slices(dy, dx, h, w)
        smooth += weights[d][src][labels[src] != labels[dst]].sum()
    return float(data + smooth)
