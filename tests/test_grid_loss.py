"""Grid Potts loss (bilinear relaxation on the 8-grid): reference, invariances, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from rtrbench.methods.losses.grid_potts import grid_potts_loss


def reference(images, probs, roi):
    """Independent formulation: enumerate all 8-neighbour pairs by index arithmetic on flat
    arrays (each unordered pair once), weights from scratch, average over valid pairs."""
    n, k, h, w = probs.shape
    losses = []
    for b in range(n):
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        pairs_i, pairs_j, dists = [], [], []
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            ok = (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
            i = (ys * w + xs)[ok]
            j = ((ys + dy) * w + xs + dx)[ok]
            keep = roi[b].flatten()[i] & roi[b].flatten()[j]
            pairs_i.append(i[keep])
            pairs_j.append(j[keep])
            dists.append(torch.full((int(keep.sum()),), math.hypot(dy, dx), dtype=probs.dtype))
        i, j, dist = torch.cat(pairs_i), torch.cat(pairs_j), torch.cat(dists)
        colours = images[b].flatten(1).T.to(probs.dtype)
        d2 = ((colours[i] - colours[j]) ** 2).sum(1)
        sigma2 = d2.mean()
        wij = torch.exp(-d2 / (2 * sigma2)) / dist
        q = probs[b].flatten(1).T
        potts = (q[i] * (1 - q[j])).sum(1)
        losses.append((wij * potts).sum() / len(i))
    return torch.stack(losses).mean()


def random_inputs(seed, n=2, k=3, h=7, w=9, dtype=torch.float64, roi_fraction=0.8):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, h, w, generator=g, dtype=dtype) * 255
    probs = torch.softmax(torch.randn(n, k, h, w, generator=g, dtype=dtype) * 2, 1)
    roi = torch.rand(n, h, w, generator=g) < roi_fraction
    return images, probs, roi


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_pairwise_reference(seed, dtype):
    images, probs, roi = random_inputs(seed, dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert grid_potts_loss(images, probs, roi).item() == pytest.approx(reference(images, probs, roi).item(), rel=tol)


def test_zero_for_constant_segmentation():
    images, _, roi = random_inputs(1)
    probs = torch.zeros(2, 3, 7, 9, dtype=torch.float64)
    probs[:, 2] = 1
    assert grid_potts_loss(images, probs, roi).item() == 0.0


def test_cuts_along_image_edges_cost_less():
    # two flat regions: a segmentation cut along the colour edge is cheaper than one across
    images = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    images[..., 4:] = 255
    images += torch.rand(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    roi = torch.ones(1, 8, 8, dtype=torch.bool)
    along, across = torch.zeros(1, 2, 8, 8, dtype=torch.float64), torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    along[:, 0, :, :4], along[:, 1, :, 4:] = 1, 1
    across[:, 0, :4], across[:, 1, 4:] = 1, 1
    assert grid_potts_loss(images, along, roi) < grid_potts_loss(images, across, roi) / 10


def test_gradcheck_float64():
    images, probs, roi = random_inputs(2, n=1, k=3, h=4, w=5)
    logits = torch.log(probs).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda l: grid_potts_loss(images, torch.softmax(l, 1), roi), (logits,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    images, probs, roi = random_inputs(3, dtype=torch.float32)
    cpu = grid_potts_loss(images, probs, roi)
    gpu = grid_potts_loss(images.cuda(), probs.cuda(), roi.cuda())
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-5)
