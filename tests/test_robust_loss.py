"""Stage-B robust cross-entropy (eq. 24): closed form, gradients, stability, ε = 0."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rtrbench.methods.losses.robust import eps_from_weight, proposal_weight, robust_cross_entropy

K = 4


def closed_form(logits, proposal, seeds, eps):
    """Direct formula with plain softmax (fine for moderate logits), written independently."""
    a = eps / (K - 1)
    b = 1 - K * a
    q = torch.softmax(logits, 1)
    total = torch.zeros((), dtype=logits.dtype)
    n_seeds = n_proposal = 0
    n, _, h, w = logits.shape
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if seeds[i, y, x] != 255:
                    total = total - torch.log(q[i, seeds[i, y, x], y, x])
                    n_seeds += 1
                elif proposal[i, y, x] != 255:
                    total = total - torch.log(a + b * q[i, proposal[i, y, x], y, x])
                    n_proposal += 1
    return total / (n_seeds or max(n_proposal, 1))  # no seed: the mean over proposal pixels


def random_problem(seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(2, K, 3, 4, generator=g, dtype=dtype)
    proposal = torch.randint(0, K, (2, 3, 4), generator=g)
    proposal[torch.rand(2, 3, 4, generator=g) < 0.2] = 255
    seeds = torch.full((2, 3, 4), 255)
    pick = torch.rand(2, 3, 4, generator=g) < 0.3
    seeds[pick] = torch.randint(0, K, (int(pick.sum()),), generator=g)
    return logits, proposal, seeds


@pytest.mark.parametrize("eps", [0.0, 0.3, 0.5, 0.74])
@pytest.mark.parametrize("seed", range(4))
def test_equals_closed_form(eps, seed):
    logits, proposal, seeds = random_problem(seed)
    expected = closed_form(logits, proposal, seeds, eps)
    assert robust_cross_entropy(logits, proposal, seeds, eps).item() == pytest.approx(expected.item(), rel=1e-10)


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_gradcheck(eps):
    logits, proposal, seeds = random_problem(7)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda l: robust_cross_entropy(l, proposal, seeds, eps), (logits,))


def test_eps_zero_is_cross_entropy_over_proposal_and_seeds():
    logits, proposal, seeds = random_problem(3)
    labels = torch.where(seeds != 255, seeds, proposal)
    ce_sum = F.cross_entropy(logits, labels, ignore_index=255, reduction="sum")
    assert robust_cross_entropy(logits, proposal, seeds, 0.0).item() == pytest.approx(ce_sum.item() / int((seeds != 255).sum()))


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_extreme_logits_are_finite_with_correct_gradient(eps):
    logits = torch.tensor([[[[1e4, -1e4]], [[-1e4, 1e4]], [[0.0, 0.0]], [[-1e4, -1e4]]]], dtype=torch.float32, requires_grad=True)
    proposal = torch.tensor([[[1, 255]]])  # pixel 0: proposal says class 1, logit −1e4 (q ≈ 0)
    seeds = torch.tensor([[[255, 1]]])  # pixel 1: seed class 1 with logit +1e4 (q ≈ 1)
    loss = robust_cross_entropy(logits, proposal, seeds, eps)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    if eps == 0.0:  # −log q = 2e4 at pixel 0; d/dlogit = q − onehot
        assert loss.item() == pytest.approx(2e4)
        assert grad[0, :, 0, 0].tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0], abs=1e-6)
    else:  # robust: the wrong proposal costs only −log a and has (almost) no gradient
        assert loss.item() == pytest.approx(-math.log(eps / (K - 1)), rel=1e-5)
        assert grad.abs().max().item() < 1e-6


def test_eps_must_keep_b_positive():
    logits, proposal, seeds = random_problem(0)
    with pytest.raises(ValueError, match="eps < \\(K-1\\)/K"):
        robust_cross_entropy(logits, proposal, seeds, 0.75)


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_a_batch_without_seeds_is_the_mean_over_its_proposal(eps):
    logits, proposal, _ = random_problem(5)
    no_seeds = torch.full_like(proposal, 255)
    expected = closed_form(logits, proposal, no_seeds, eps)
    got = robust_cross_entropy(logits, proposal, no_seeds, eps)
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    # a mean: each robust pixel costs at most −log a, so the batch does too (not a sum over pixels)
    if eps:
        assert got.item() <= -math.log(eps / (K - 1))


# -- the robustness parameter across K ---------------------------------------------------------

# The reference's ε table (K = 21) and the proposal weight r = b/(a + b) each ε gives,
# computed by hand: a = ε/20, b = 1 − 21·a.
REFERENCE_EPS = {1.0: 0.944, 0.8: 0.946, 0.5: 0.9514, 0.3: 0.9516, 0.0: 0.9522}
REFERENCE_R = {1.0: 0.157143, 0.8: 0.124074, 0.5: 0.0211934, 0.3: 0.0169421, 0.0: 0.00397490}


@pytest.mark.parametrize("length", REFERENCE_EPS)
def test_reference_eps_table_maps_to_proposal_weights_and_back(length):
    eps = REFERENCE_EPS[length]
    r = proposal_weight(eps, 21)
    assert r == pytest.approx(REFERENCE_R[length], rel=1e-4)
    assert eps_from_weight(r, 21) == pytest.approx(eps, rel=1e-12)


@pytest.mark.parametrize("k", [2, 5, 21])
@pytest.mark.parametrize("r", [1.0, 0.5, 0.1, 0.01])
def test_proposal_weight_is_the_gradient_ratio_at_q_one(k, r):
    """Independent of the formula: the gradient of −log(a + b·q) at q = 1 relative to that of −log q."""
    eps = eps_from_weight(r, k)
    a = eps / (k - 1)
    b = 1 - k * a
    q = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(-torch.log(a + b * q), q)
    assert -g.item() == pytest.approx(r, rel=1e-9)
    assert eps < (k - 1) / k


def test_same_proposal_weight_means_the_same_weight_for_k5_and_k21():
    # the synth preset's old ε = 0.5 with K = 5 weighs a proposal pixel 0.75 of a seed; the
    # reference's ε at length 0.3 with K = 21 only 0.017
    assert proposal_weight(0.5, 5) == pytest.approx(0.75)
    assert proposal_weight(eps_from_weight(0.017, 5), 5) == pytest.approx(proposal_weight(eps_from_weight(0.017, 21), 21))
