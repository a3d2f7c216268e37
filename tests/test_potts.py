"""Contrast weights and the Potts energy against direct loop-based references (tiny images)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rtrbench.methods.solvers.potts import contrast_weights, contrast_weights_torch, potts_energy

OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))  # restated here on purpose: the layout is the contract


def reference_weights(image: np.ndarray, roi: np.ndarray | None, nu: float) -> np.ndarray:
    """Plain loops over pixels and directions, straight from the definition."""
    h, w, _ = image.shape
    roi = np.ones((h, w), bool) if roi is None else roi
    img = image.astype(np.float64)
    pairs = []  # (d, y, x, ‖ΔI‖², dist)
    for y in range(h):
        for x in range(w):
            for d, (dy, dx) in enumerate(OFFSETS):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and roi[y, x] and roi[yy, xx]:
                    diff = float(((img[y, x] - img[yy, xx]) ** 2).sum())
                    pairs.append((d, y, x, diff, math.hypot(dy, dx)))
    out = np.zeros((4, h, w))
    if not pairs:
        return out
    sigma2 = sum(p[3] for p in pairs) / len(pairs)
    factor = roi.sum() / len(pairs) * nu
    for d, y, x, diff, dist in pairs:
        e = 1.0 if sigma2 == 0 else math.exp(-diff / (2 * sigma2))
        out[d, y, x] = e / dist * factor
    return out


def reference_energy(labels, unary, weights) -> float:
    h, w = labels.shape
    total = 0.0
    for y in range(h):
        for x in range(w):
            total += unary[y, x, labels[y, x]]
            for d, (dy, dx) in enumerate(OFFSETS):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and labels[y, x] != labels[yy, xx]:
                    total += weights[d, y, x]
    return total


@pytest.mark.parametrize("shape", [(5, 6), (1, 4), (4, 1), (2, 2), (3, 7)])
@pytest.mark.parametrize("use_roi", [False, True])
def test_contrast_weights_match_loop_reference(shape, use_roi):
    rng = np.random.default_rng(hash((shape, use_roi)) % 2**32)
    image = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    roi = rng.random(shape) < 0.7 if use_roi else None
    nu = 2.5
    got = contrast_weights(image, roi, nu=nu)
    assert got.dtype == np.float64 and got.shape == (4, *shape)
    np.testing.assert_allclose(got, reference_weights(image, roi, nu), rtol=1e-12, atol=1e-15)


def test_layout_offimage_roi_diagonal_and_normalisation():
    # Constant image: every valid pair has exp(0) = 1, so the weights expose 1/dist, the
    # #ROI/#pairs factor, ν, ROI masking and the off-image zeros directly.
    h, w, nu = 4, 5, 3.0
    image = np.full((h, w, 3), 77, np.uint8)
    roi = np.ones((h, w), bool)
    roi[0, 0] = False
    got = contrast_weights(image, roi, nu=nu)
    assert np.isfinite(got).all()
    ref = reference_weights(image, roi, nu)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    n_pairs = (ref > 0).sum()
    factor = roi.sum() / n_pairs * nu
    assert got[0, 1, 1] == pytest.approx(factor)  # horizontal
    assert got[1, 1, 1] == pytest.approx(factor)  # vertical
    assert got[2, 1, 1] == pytest.approx(factor / math.sqrt(2))  # diagonal ↘
    assert got[3, 1, 1] == pytest.approx(factor / math.sqrt(2))  # diagonal ↙
    # neighbour off the image
    assert (got[0, :, -1] == 0).all() and (got[1, -1, :] == 0).all()
    assert (got[2, -1, :] == 0).all() and (got[2, :, -1] == 0).all()
    assert (got[3, -1, :] == 0).all() and (got[3, :, 0] == 0).all()
    # the three edges touching the pixel outside the ROI: (0,0)→right, (0,0)→down, (0,0)→↘
    assert got[0, 0, 0] == got[1, 0, 0] == got[2, 0, 0] == 0
    assert got[0, 0, 1] > 0 and got[3, 0, 1] > 0  # (0,1)→right and (0,1)→↙ (1,0) are in the ROI


def test_contrast_scale_by_sigma():
    # Two-colour image: σ² is the mean squared difference, so a contrast edge gets exp(−d²/2σ²).
    image = np.zeros((1, 4, 3))
    image[0, 2:] = 10.0  # one horizontal edge with ‖ΔI‖² = 300 out of 3 pairs
    got = contrast_weights(image)
    sigma2 = 300.0 / 3
    factor = 4 / 3
    np.testing.assert_allclose(got[0, 0], [factor, factor * math.exp(-300 / (2 * sigma2)), factor, 0.0])


def test_no_valid_pair_gives_zeros():
    image = np.random.default_rng(0).integers(0, 256, (3, 3, 3))
    roi = np.zeros((3, 3), bool)
    roi[1, 1] = True  # one pixel: no pair at all
    assert (contrast_weights(image, roi) == 0).all()
    assert (contrast_weights(image, np.zeros((3, 3), bool)) == 0).all()
    assert (contrast_weights(image[:1, :1]) == 0).all()


def test_torch_batch_equals_per_image_numpy():
    rng = np.random.default_rng(1)
    n, h, w = 3, 6, 5
    images = rng.integers(0, 256, (n, h, w, 3)).astype(np.float64)
    images[1] = 42.0  # a constant image in the batch
    rois = rng.random((n, h, w)) < 0.8
    rois[2] = False  # an image without ROI
    batch = contrast_weights_torch(torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(rois), nu=0.5)
    assert batch.shape == (n, 4, h, w) and batch.dtype == torch.float64
    for i in range(n):
        np.testing.assert_allclose(batch[i].numpy(), contrast_weights(images[i], rois[i], nu=0.5), rtol=1e-12)
        np.testing.assert_allclose(batch[i].numpy(), reference_weights(images[i], rois[i], 0.5), rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_torch_dtypes(dtype):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (2, 3, 7, 8)).astype(np.float64)
    ref = contrast_weights_torch(torch.from_numpy(images), None)
    got = contrast_weights_torch(torch.from_numpy(images).to(dtype), None)
    assert got.dtype == dtype
    assert torch.isfinite(got).all()
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3}[dtype]
    torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol)


def test_constant_image_has_no_nan():
    for dtype in (torch.float32, torch.float64):
        got = contrast_weights_torch(torch.full((2, 3, 5, 5), 128.0, dtype=dtype))
        assert torch.isfinite(got).all() and (got[:, 0, :, :-1] > 0).all()


def test_potts_energy_matches_double_loop():
    rng = np.random.default_rng(3)
    for h, w, n_labels in [(5, 6, 3), (1, 7, 2), (6, 1, 4), (4, 4, 5)]:
        labels = rng.integers(0, n_labels, (h, w))
        unary = rng.normal(size=(h, w, n_labels))
        weights = contrast_weights(rng.integers(0, 256, (h, w, 3)), nu=1.7)
        assert potts_energy(labels, unary, weights) == pytest.approx(reference_energy(labels, unary, weights), rel=1e-12)
    # A uniform labelling pays no pairwise cost; a checkerboard pays every horizontal/vertical edge.
    weights = np.ones((4, 3, 3))
    assert potts_energy(np.zeros((3, 3), int), np.zeros((3, 3, 2)), weights) == 0.0
    checker = np.indices((3, 3)).sum(0) % 2
    assert potts_energy(checker, np.zeros((3, 3, 2)), weights) == 12.0
