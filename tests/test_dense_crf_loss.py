"""Dense CRF loss (Tang et al.): gradients, reference semantics, and the brute-force formula.

Bounds vs the brute-force loss ``-sum_k q^k.W q^k`` (exact N×N Gaussian): the lattice value is
c times it with c = 0.41-0.57 measured on the 16×20 images below (Krähenbühl's normalisation,
see rtrbench.methods.solvers.bilateral) -> test [0.35, 0.7]; the logit gradients point the same way,
cosine 0.970-0.994 measured -> test >= 0.95.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtrbench.methods.solvers.bilateral import build_lattice
from rtrbench.methods.losses.dense_crf import dense_crf_loss
from tests.test_bilateral import brute_force, make_images, one_thread  # noqa: F401  (autouse fixture)

H, W, K = 16, 20, 3  # H*W/4 divisible by 4: no pydensecrf padding points after downscaling
IMAGES = make_images(H, W)


def batch(kind: str = "edge", n: int = 2, seed: int = 0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    images = torch.tensor(IMAGES[kind], dtype=dtype).permute(2, 0, 1).repeat(n, 1, 1, 1)
    logits = torch.randn(n, K, H, W, generator=gen, dtype=dtype) * 2
    roi = torch.rand(n, H, W, generator=gen) > 0.2
    return images, logits, roi


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_gradcheck_float64(scale):
    images, logits, roi = batch(n=2)
    images, logits, roi = images[..., :6, :8], logits[..., :6, :8].clone().requires_grad_(), roi[..., :6, :8]

    def loss(lg):
        return dense_crf_loss(images, torch.softmax(lg, 1), roi, weight=1e-2, sigma_xy=10.0, scale=scale)

    assert torch.autograd.gradcheck(loss, (logits,))


@pytest.mark.parametrize("backend", ["torch", "pydensecrf"])
def test_empty_roi_gives_zero(backend):
    images, logits, roi = batch(dtype=torch.float32)
    probs = torch.softmax(logits, 1).requires_grad_()
    loss = dense_crf_loss(images, probs, torch.zeros_like(roi), backend=backend)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(probs.grad, torch.zeros_like(probs))


@pytest.mark.parametrize("kind", ["edge", "smooth", "noise"])
@pytest.mark.parametrize("sigma_xy", [10.0, 40.0])
def test_matches_brute_force_up_to_lattice_error(kind, sigma_xy):
    images, logits, _ = batch(kind, n=1)
    roi = torch.ones(1, H, W, dtype=torch.bool)
    logits.requires_grad_()
    probs = torch.softmax(logits, 1)
    ours = dense_crf_loss(images, probs, roi, weight=1.0, sigma_xy=sigma_xy, scale=1.0)
    (g_ours,) = torch.autograd.grad(ours, logits, retain_graph=True)
    w = torch.tensor(brute_force(IMAGES[kind], np.eye(H * W).reshape(H * W, H, W), 15.0, sigma_xy)).view(H * W, H * W)
    q = probs.view(K, H * W)
    exact = -(q * (q @ w)).sum()
    (g_exact,) = torch.autograd.grad(exact, logits)
    assert 0.35 <= (ours / exact).item() <= 0.7
    assert float(torch.nn.functional.cosine_similarity(g_ours.view(-1), g_exact.view(-1), 0)) >= 0.95


def test_value_and_gradient_formulas():
    """Loss = weight * (-sum q.Lq) / N on the downscaled, ROI-masked q; grad = -2 W q w / N with
    W = (L + L^T)/2, i.e. -(Lq + L^T q) w / N."""
    images, logits, roi = batch(n=3)
    probs = torch.softmax(logits, 1).requires_grad_()
    weight, sigma_rgb, sigma_xy, scale = 1e-3, 15.0, 30.0, 0.5
    loss = dense_crf_loss(images, probs, roi, weight, sigma_rgb, sigma_xy, scale)
    # The reference pipeline by hand: nearest image/ROI, bilinear probs, sigma_xy * scale.
    small_img = F.interpolate(images, scale_factor=scale)
    small_roi = F.interpolate(roi[:, None].double(), scale_factor=scale)
    small_q = (F.interpolate(probs, scale_factor=scale, mode="bilinear", align_corners=False) * small_roi).detach()
    small_q.requires_grad_()
    lattice = build_lattice(small_img, sigma_rgb, sigma_xy * scale)
    flat = small_q.permute(0, 2, 3, 1).reshape(-1, K)
    lq, ltq = lattice.filter(flat.detach()), lattice.filter(flat.detach(), transpose=True)
    torch.testing.assert_close(loss, weight * -(flat * lq).sum() / 3, rtol=1e-12, atol=0)
    # Gradient w.r.t. the downscaled q, through the same Function.
    loss_small = dense_crf_loss(small_img, small_q, small_roi[:, 0] > 0.5, weight, sigma_rgb, sigma_xy * scale, scale=1.0)
    (grad,) = torch.autograd.grad(loss_small, small_q)
    expected = (-(lq + ltq) * weight / 3).view(3, small_q.shape[2], small_q.shape[3], K).permute(0, 3, 1, 2) * small_roi
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-20)


def test_divided_by_batch_size_and_reference_defaults():
    images, logits, roi = batch(n=1)
    probs = torch.softmax(logits, 1)
    one = dense_crf_loss(images, probs, roi)
    two = dense_crf_loss(images.repeat(2, 1, 1, 1), probs.repeat(2, 1, 1, 1), roi.repeat(2, 1, 1))
    torch.testing.assert_close(two, one, rtol=1e-12, atol=0)
    # Reference defaults: weight 2e-9, sigma_rgb 15, sigma_xy 100, scale 0.5.
    manual = dense_crf_loss(images, probs, roi, weight=1.0, sigma_rgb=15.0, sigma_xy=100.0, scale=0.5)
    torch.testing.assert_close(one, 2e-9 * manual, rtol=1e-12, atol=0)


def test_backends_agree():
    images, logits, roi = batch(n=2, dtype=torch.float32)
    probs = torch.softmax(logits, 1)
    p_torch, p_ref = probs.clone().requires_grad_(), probs.clone().requires_grad_()
    ours = dense_crf_loss(images, p_torch, roi, weight=1.0)
    ref = dense_crf_loss(images, p_ref, roi, weight=1.0, backend="pydensecrf")
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=0)
    ours.backward()
    ref.backward()
    # pydensecrf has no L^T: its backward is Tang's -2 L q. It differs from the exact gradient
    # by the lattice's asymmetry (a few % here), not more.
    rel = float((p_torch.grad - p_ref.grad).norm() / p_ref.grad.norm())
    assert 1e-4 < rel < 0.15


def test_invariances():
    images, logits, roi = batch(n=2)
    probs = torch.softmax(logits, 1)
    loss = dense_crf_loss(images, probs, roi, weight=1.0, scale=1.0)
    assert float(loss) < 0  # -sum q.Lq with L >= 0 entrywise
    torch.testing.assert_close(dense_crf_loss(images, probs[:, [2, 0, 1]], roi, weight=1.0, scale=1.0), loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(dense_crf_loss(images, probs, roi, weight=3.0, scale=1.0), 3 * loss, rtol=1e-12, atol=0)
    # Pixels outside the ROI count nowhere (at scale 1; downscaling mixes neighbours).
    changed = torch.where(roi[:, None], probs, torch.rand_like(probs))
    torch.testing.assert_close(dense_crf_loss(images, changed, roi, weight=1.0, scale=1.0), loss, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="backend"):
        dense_crf_loss(images, probs, roi, backend="nope")


def test_prefers_segmentations_that_follow_edges():
    """The full Potts energy sum_k q^k.W(1 - q^k) is lower when labels switch at the image edge."""
    images, _, _ = batch("edge", n=1)
    roi = torch.ones(1, H, W, dtype=torch.bool)
    xx = torch.arange(W).expand(H, W)
    energies = []
    for cut in (W // 2, W // 4):  # the edge is at W // 2
        seg = F.one_hot((xx >= cut).long(), K).permute(2, 0, 1)[None].double()
        full = dense_crf_loss(images, seg, roi, 1.0, scale=1.0)  # -sum q.Lq
        full = full + dense_crf_loss(images, torch.ones(1, 1, H, W, dtype=torch.float64), roi, 1.0, scale=1.0).neg()  # + 1.L1
        energies.append(float(full))
    assert energies[0] < energies[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    images, logits, roi = batch(n=2, dtype=torch.float32)
    probs = torch.softmax(logits, 1)
    p_cpu, p_gpu = probs.clone().requires_grad_(), probs.cuda().requires_grad_()
    cpu = dense_crf_loss(images, p_cpu, roi)
    gpu = dense_crf_loss(images.cuda(), p_gpu, roi.cuda())
    cpu.backward()
    gpu.backward()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=0)
    torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, rtol=1e-3, atol=1e-4 * float(p_cpu.grad.abs().max()))
