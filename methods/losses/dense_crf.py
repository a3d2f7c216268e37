"""Dense CRF (bilinear Potts) loss of Tang et al., ECCV 2018 (Dense-GD; docs/methods.md).

Full form: ``sum_k (q^k)^T W (1 - q^k)``. Like Tang's reference (rloss, ``DenseCRFLoss.py``) we
drop the q-independent part and compute ``-sum_k (q^k)^T W q^k``: the value is negative, and
its gradient with respect to the logits is the same (sum_k q^k = 1 on ROI pixels, so the
dropped term ``sum_k (q^k)^T W 1`` has zero logit gradient).

W is the permutohedral approximation L of the bilateral kernel (``rtrbench.methods.solvers.bilateral``;
raw lattice scale, as in the reference). L is not exactly symmetric -- blur steps on a sparse
lattice do not commute; measured |Lq - L^T q| / |Lq| = 3-6% on natural images, more on tiny
ones. The quadratic form only sees the symmetric part, so the torch backend uses
W = (L + L^T)/2 (one filter call: one splat and slice, the blur run in both orders): the value
equals Tang's, and the analytic backward ``-2 W q`` (saved from the forward, no second filter)
is the exact gradient of that value (float64 gradcheck passes). Tang's reference returns
``-2 L q`` instead, which is off by the asymmetry; the pydensecrf backend, which cannot apply
L^T, reproduces that.

Reference pipeline (``DenseCRFLoss.forward``), reproduced here:
- images and ROI downscaled by ``scale`` with nearest-neighbour interpolation (F.interpolate's
  default, which the reference uses), probabilities bilinearly (align_corners=False);
  sigma_xy is multiplied by ``scale``;
- q = probabilities * ROI (pixels outside the ROI have q = 0 and contribute nothing);
- loss = weight * (-sum_k q^k.L q^k) / batch size ("averaged by the number of images"), and
  the backward divides by the batch size too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rtrbench.methods.solvers.bilateral import BACKENDS, build_lattice, pydensecrf_filter_batch


class DenseCRFQuadratic(torch.autograd.Function):
    """``-sum(q * (W q))`` for q P×K; backward ``-2 W q``, exact when ``filter_fn`` (q -> W q) is symmetric."""

    @staticmethod
    def forward(ctx, q, filter_fn):
        wq = filter_fn(q.detach())
        ctx.save_for_backward(wq)
        return -(q * wq).sum()

    @staticmethod
    def backward(ctx, grad_output):
        (wq,) = ctx.saved_tensors
        return -2.0 * grad_output * wq, None


def dense_crf_loss(
    images: torch.Tensor,
    probs: torch.Tensor,
    roi: torch.Tensor,
    weight: float = 2e-9,
    sigma_rgb: float = 15.0,
    sigma_xy: float = 100.0,
    scale: float = 0.5,
    backend: str = "torch",
) -> torch.Tensor:
    """Tang's dense CRF loss of a batch: images N×3×H×W (RGB 0..255), probs N×K×H×W (softmax
    output), roi N×H×W bool -> scalar (see module doc)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    n = probs.shape[0]
    images = images.to(probs.dtype)
    roi = roi.to(probs.dtype).unsqueeze(1)
    if scale != 1.0:
        images = F.interpolate(images, scale_factor=scale, mode="nearest")
        roi = (F.interpolate(roi, scale_factor=scale, mode="nearest") > 0.5).to(probs.dtype)
        probs = F.interpolate(probs, scale_factor=scale, mode="bilinear", align_corners=False)
    q = probs * roi
    sigma_xy = sigma_xy * scale
    _, k, h, w = q.shape

    if backend == "torch":
        lattice = build_lattice(images.detach(), sigma_rgb, sigma_xy)  # depends on the image only
        flat = q.permute(0, 2, 3, 1).reshape(n * h * w, k)
        value = DenseCRFQuadratic.apply(flat, lambda x: lattice.filter(x, symmetric=True))
    else:
        value = DenseCRFQuadratic.apply(q, lambda x: pydensecrf_filter_batch(images, x, sigma_rgb, sigma_xy))
    return weight * value / n
