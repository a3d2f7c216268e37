"""The soft self-labeling losses: collision cross-entropy and the six Potts relaxations, against
numpy formulas written here from their definitions, identities, and `gradcheck` in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from rtrbench.methods import RELAXATIONS, collision_cross_entropy, potts_relaxation
from rtrbench.methods.losses.grid_potts import grid_potts_loss
from rtrbench.methods.solvers.potts import OFFSETS, contrast_weights_torch, pair_slices


def distributions(*shape, seed=0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g, dtype=dtype) * 2, 1)


def numpy_relaxation(name: str, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The table of the method's docs, pixel by pixel along axis 1."""
    dot = (p * q).sum(1)
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1)
    half_sq = 0.5 * ((p - q) ** 2).sum(1)
    return {
        "bilinear": 1 - dot,
        "quadratic": half_sq,
        "normalized-quadratic": 1 - dot / norms,
        "collision": -np.log(dot),
        "collision-divergence": -np.log(dot / norms),
        "log-quadratic": -np.log(1 - half_sq),
    }[name]


@pytest.mark.parametrize("name", RELAXATIONS)
def test_relaxation_formula_symmetry_and_potts_limits(name):
    p, q = distributions(2, 4, 3, 5, seed=1), distributions(2, 4, 3, 5, seed=2)
    got = potts_relaxation(name, p, q)
    assert got.shape == (2, 3, 5)
    np.testing.assert_allclose(got.numpy(), numpy_relaxation(name, p.numpy(), q.numpy()), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, potts_relaxation(name, q, p))  # a Potts term is symmetric
    eye = torch.eye(4, dtype=torch.float64)[:, :, None]  # K one-hot labels as a 4×4×1 batch
    same = potts_relaxation(name, eye, eye)
    other = potts_relaxation(name, eye, eye.roll(1, 0))
    assert torch.all(same.abs() < 1e-12) and torch.all(other > 0.5)  # [s_i ≠ s_j] at the corners


@pytest.mark.parametrize("name", RELAXATIONS)
def test_relaxation_gradients(name):
    p = distributions(1, 3, 2, 2, seed=3).requires_grad_()
    q = distributions(1, 3, 2, 2, seed=4).requires_grad_()
    assert gradcheck(lambda a, b: potts_relaxation(name, a, b), (p, q))


def test_collision_cross_entropy_formula_and_identities():
    y, s = distributions(2, 5, 4, 4, seed=5), distributions(2, 5, 4, 4, seed=6)
    got = collision_cross_entropy(y, s)
    np.testing.assert_allclose(got.numpy(), -np.log((y.numpy() * s.numpy()).sum(1)), rtol=1e-12)
    torch.testing.assert_close(collision_cross_entropy(y, s, log_p=y.log(), log_q=s.log()), got)
    # = −log cos(y, σ) + ½ (H₂(y) + H₂(σ)), with the Rényi-2 entropy H₂(p) = −log Σ p²
    renyi2 = lambda p: -torch.log((p**2).sum(1))  # noqa: E731
    torch.testing.assert_close(got, potts_relaxation("collision-divergence", y, s) + 0.5 * (renyi2(y) + renyi2(s)))
    # one-hot y: the negative log-likelihood; uniform y: log K whatever σ (no gradient to σ)
    labels = torch.randint(0, 5, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    one_hot = torch.nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).double()
    torch.testing.assert_close(collision_cross_entropy(one_hot, s), -s.log().gather(1, labels[:, None])[:, 0])
    uniform = torch.full_like(y, 0.2)
    torch.testing.assert_close(collision_cross_entropy(uniform, s), torch.full_like(got, np.log(5)))


def test_collision_cross_entropy_from_log_probabilities_is_stable():
    logits = torch.tensor([[[1000.0], [-1000.0], [0.0]]])  # 1×3×1: σ is one-hot to 1e-434
    y = torch.tensor([[[0.0], [1.0], [0.0]]])
    value = collision_cross_entropy(y, torch.softmax(logits, 1), log_q=torch.log_softmax(logits, 1))
    assert value.item() == pytest.approx(2000.0)  # −log σ_1 = 1000 − (−1000), exactly the NLL
    logits = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    y = distributions(2, 4, 3, 3, seed=7)
    assert gradcheck(lambda z: collision_cross_entropy(y, torch.softmax(z, 1), log_q=torch.log_softmax(z, 1)), (logits,))


def test_grid_gd_bilinear_relaxation_is_the_loss_it_always_was():
    """The default relaxation gives the loss of eq. 7/8 as Grid-GD computed it before it had one."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 9, 11, generator=g) * 255
    probs = torch.softmax(torch.randn(2, 4, 9, 11, generator=g), 1)
    roi = torch.ones(2, 9, 11, dtype=torch.bool)
    roi[1, :, 8:] = False
    weights = contrast_weights_torch(images, roi)
    before = torch.zeros(2)
    for d, (dy, dx) in enumerate(OFFSETS):  # Σ w_ij Σ_k q_i^k (1 − q_j^k), the former code
        (sy, sx), (ty, tx) = pair_slices(dy, dx, 9, 11)
        before += (weights[:, d, sy, sx] * (probs[:, :, sy, sx] * (1 - probs[:, :, ty, tx])).sum(1)).sum((1, 2))
    before = (before / roi.flatten(1).sum(1)).mean()
    torch.testing.assert_close(grid_potts_loss(images, probs, roi), before, rtol=1e-6, atol=0)
    assert grid_potts_loss(images, probs, roi, "quadratic") < grid_potts_loss(images, probs, roi)  # ½‖p−q‖² ≤ 1 − pᵀq


def test_unknown_relaxation_is_named():
    with pytest.raises(ValueError, match="unknown Potts relaxation 'cubic'"):
        potts_relaxation("cubic", distributions(1, 2, 1), distributions(1, 2, 1))
