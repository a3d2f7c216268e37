"""Bilateral filter and dense CRF loss: torch lattice vs pydensecrf (Krähenbühl's C++ lattice).

Run: ``pytest benchmarks --benchmark-enable`` (the project's addopts disable benchmarks by
default). Lattice construction is always included: both backends build it per call (the
loss builds one lattice per step and uses it for the forward and the backward).

The torch backend runs with torch's default intra-op threads and with 1 thread; pydensecrf is
single-threaded. On a busy machine, multi-threaded torch suffers from OpenMP hand-offs to
descheduled threads; compare the 1-thread rows there.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from rtrbench.methods.solvers.bilateral import bilateral_filter, bilateral_filter_batch
from rtrbench.methods.losses.dense_crf import dense_crf_loss

THREADS = {"default": torch.get_num_threads(), "1thread": 1}


def natural_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A real photo when scikit-image's sample data is there (lattice size depends on content)."""
    try:
        import skimage.data
        import skimage.transform

        photo = np.rot90(skimage.data.astronaut(), seed)  # a different view per batch item
        return skimage.transform.resize(photo, (h, w), anti_aliasing=True).astype(np.float32) * 255
    except Exception:  # pragma: no cover - fallback: blocks + noise
        rng = np.random.default_rng(seed)
        blocks = np.kron(rng.uniform(0, 255, (8, 8, 3)), np.ones((h // 8 + 1, w // 8 + 1, 1)))[:h, :w]
        return (blocks + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.float32)


def backends():
    torch_rows = [pytest.param(("torch", t), id=f"torch-{t}") for t in THREADS]
    return torch_rows + [pytest.param(("pydensecrf", "1thread"), id="pydensecrf")]


@pytest.mark.parametrize("sigma_xy", [50.0, 100.0])
@pytest.mark.parametrize("backend", backends())
def test_bilateral_256_k21(benchmark, backend, sigma_xy):
    name, nthreads = backend
    benchmark.group = f"bilateral 256x256 K=21 sigma_rgb=15 sigma_xy={sigma_xy:g}"
    image = natural_image(256, 256)
    values = np.random.default_rng(0).dirichlet(np.ones(21), 256 * 256).T.reshape(21, 256, 256).astype(np.float32)
    image_t, values_t = torch.from_numpy(image), torch.from_numpy(values)
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]  # other processes skew timings
    old = torch.get_num_threads()
    torch.set_num_threads(THREADS[nthreads])
    try:
        out = benchmark(bilateral_filter, image_t, values_t, 15.0, sigma_xy, backend=name)
    finally:
        torch.set_num_threads(old)
    assert out.shape == (21, 256, 256)


def loss_inputs(n: int, size: int, device: str = "cpu"):
    images = torch.stack([torch.from_numpy(natural_image(size, size, seed=i)).permute(2, 0, 1) for i in range(n)])
    logits = torch.randn(n, 21, size, size, generator=torch.Generator().manual_seed(0))
    roi = torch.ones(n, size, size, dtype=torch.bool)
    return images.to(device), logits.to(device), roi.to(device)


def loss_step(images, logits, roi, backend):
    logits = logits.detach().requires_grad_()
    loss = dense_crf_loss(images, torch.softmax(logits, 1), roi, backend=backend)
    loss.backward()
    if logits.is_cuda:
        torch.cuda.synchronize()
    return logits.grad


@pytest.mark.parametrize("size", [96, 256])
@pytest.mark.parametrize("backend", backends())
def test_dense_loss_forward_backward_batch4(benchmark, backend, size):
    name, nthreads = backend
    benchmark.group = f"dense CRF loss fwd+bwd batch 4 x {size}x{size} K=21 (scale 0.5)"
    images, logits, roi = loss_inputs(4, size)
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]
    old = torch.get_num_threads()
    torch.set_num_threads(THREADS[nthreads])
    try:
        grad = benchmark(loss_step, images, logits, roi, name)
    finally:
        torch.set_num_threads(old)
    assert grad.shape == logits.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bilateral_batch_cuda(benchmark):
    benchmark.group = "CUDA"
    images = torch.from_numpy(natural_image(256, 256)).permute(2, 0, 1)[None].repeat(4, 1, 1, 1).cuda()
    values = torch.rand(4, 21, 256, 256, device="cuda")

    def run():
        out = bilateral_filter_batch(images, values, 15.0, 50.0)
        torch.cuda.synchronize()
        return out

    assert benchmark(run).shape == values.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("size", [96, 256])
def test_dense_loss_cuda(benchmark, size):
    benchmark.group = "CUDA"
    images, logits, roi = loss_inputs(4, size, "cuda")
    assert benchmark(loss_step, images, logits, roi, "torch").shape == logits.shape
