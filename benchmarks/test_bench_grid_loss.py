"""Grid Potts loss forward+backward: the shifted-slice implementation vs the index-pair
reference of the tests (gathers over enumerated pairs), with plain cross-entropy as the scale
of what a training step already pays.

Run: ``pytest benchmarks --benchmark-enable``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rtrbench.methods.losses.grid_potts import grid_potts_loss
from tests.test_grid_loss import reference

SHAPES = {"synth-8x5x96": (8, 5, 96, 96), "voc-4x21x256": (4, 21, 256, 256)}


def inputs(n, k, h, w):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, h, w, generator=g) * 255
    logits = torch.randn(n, k, h, w, generator=g, requires_grad=True)
    roi = torch.ones(n, h, w, dtype=torch.bool)
    labels = torch.randint(0, k, (n, h, w), generator=g)
    return images, logits, roi, labels


def grid(images, logits, roi, labels):
    return grid_potts_loss(images, torch.softmax(logits, 1), roi)


def pairs_reference(images, logits, roi, labels):
    return reference(images, torch.softmax(logits, 1), roi)


def cross_entropy(images, logits, roi, labels):
    return F.cross_entropy(logits, labels)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("loss", [grid, pairs_reference, cross_entropy], ids=["grid", "pairs-reference", "cross-entropy"])
def test_grid_loss_forward_backward(benchmark, shape, loss):
    benchmark.group = f"grid loss fwd+bwd {shape}"
    args = inputs(*SHAPES[shape])

    def step():
        args[1].grad = None
        loss(*args).backward()

    benchmark(step)
    assert torch.isfinite(args[1].grad).all()
