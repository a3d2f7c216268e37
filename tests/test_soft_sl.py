"""Soft self-labeling: the y-step never raises its energy and keeps seeds one-hot (random
batches, every relaxation and coupling); the method's terms; its epoch metrics."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrbench.methods import RELAXATIONS
from rtrbench.methods.base import Batch, MethodContext
from rtrbench.methods.soft_sl import SoftSL, SoftSLParams
from rtrbench.methods.solvers.potts import contrast_weights_torch
from rtrbench.methods.solvers.soft_labels import COUPLINGS, SoftLabelProblem, solve_soft_labels


def random_problem(seed: int, relaxation: str, coupling: str, k: int = 4) -> SoftLabelProblem:
    g = torch.Generator().manual_seed(seed)
    n, h, w = 2, 7, 9
    images = torch.rand(n, 3, h, w, generator=g) * 255
    logits = torch.randn(n, k, h, w, generator=g) * 3
    seeds = torch.full((n, h, w), 255, dtype=torch.long)
    marked = torch.rand(n, h, w, generator=g) < 0.15
    seeds[marked] = torch.randint(0, k, (int(marked.sum()),), generator=g)
    roi = torch.ones(n, h, w, dtype=torch.bool)
    roi[1, :, 7:] = False  # crop padding in the second image
    return SoftLabelProblem(logits, seeds, roi, contrast_weights_torch(images, roi), 0.3, 6.0, relaxation, coupling)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), relaxation=st.sampled_from(RELAXATIONS), coupling=st.sampled_from(COUPLINGS),
       step_size=st.sampled_from([0.05, 0.5, 5.0]))  # fmt: skip
def test_the_y_step_never_raises_the_energy_and_keeps_seeds_one_hot(seed, relaxation, coupling, step_size):
    problem = random_problem(seed, relaxation, coupling)
    result = solve_soft_labels(problem, steps=4, step_size=step_size)
    assert torch.all(result.energy <= result.energy_init)
    y = result.y
    assert torch.allclose(y.sum(1), torch.ones_like(y[:, 0])) and y.min() >= 0
    seeded = (problem.seeds != 255) & problem.roi
    one_hot = torch.nn.functional.one_hot(problem.seeds.clamp(max=3), 4).permute(0, 3, 1, 2).float()
    assert torch.equal(y.permute(0, 2, 3, 1)[seeded], one_hot.permute(0, 2, 3, 1)[seeded])
    # the reported energy is the energy of the labels returned (recomputed from them)
    z = torch.log(y.clamp_min(1e-30))
    torch.testing.assert_close(problem.energy(z), result.energy, rtol=1e-4, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_the_closed_form_gradient_is_autograds(seed, scale):
    """The default pair (collision-divergence, collision CE) has its gradient in closed form:
    autograd through `energy`, in float64, gives the same energy and gradient, from logits
    near uniform to nearly one-hot ones."""
    problem = random_problem(seed, "collision-divergence", "collision-ce")
    problem = SoftLabelProblem(
        problem.logits.double() * scale / 3, problem.seeds, problem.roi, problem.weights.double(), 0.3, 6.0,
    )  # fmt: skip
    z = (problem.logits + torch.randn(problem.logits.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)).requires_grad_(True)
    energy = problem.energy(z)
    expected = torch.autograd.grad(energy.sum(), z)[0]
    closed, gradient = problem.energy_and_gradient(z.detach())
    torch.testing.assert_close(closed, energy.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gradient, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("relaxation", RELAXATIONS)
def test_the_y_step_lowers_the_energy_from_the_network_start(relaxation):
    problem = random_problem(0, relaxation, "collision-ce")
    result = solve_soft_labels(problem, steps=20, step_size=0.5)
    assert torch.all(result.energy < result.energy_init - 1e-3)


def test_soft_sl_trains_the_seed_and_coupling_terms_and_reports_its_y_step():
    problem = random_problem(1, "collision-divergence", "collision-ce")
    images = torch.rand(2, 3, 7, 9) * 255
    logits = problem.logits.clone().requires_grad_(True)
    batch = Batch(images, problem.seeds, problem.seeds, problem.roi, ["a", "b"])
    method = SoftSL(SoftSLParams(steps=5), MethodContext(4, ("a", "b", "c", "d"), torch.device("cpu"), None))
    terms = method.loss(logits, batch)
    assert set(terms) == {"seed", "coupling"} and all(t.requires_grad for t in terms.values())
    sum(terms.values()).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    metrics = method.epoch_metrics()
    assert metrics["train_ystep_energy"] <= metrics["train_ystep_energy_init"] and metrics["ystep_seconds"] > 0
    assert method.epoch_metrics() == {}  # gathered per epoch
