"""The y-step of soft self-labeling: soft pseudo-labels y that lower the joint loss with the
network fixed (Zhang & Boykov, CVPR 2025; the solver is our choice, see docs/methods.md).

    E(y) = η · C(y, σ) + λ · Σ_{(i,j)∈N8} w_ij P(y_i, y_j) / #ROI        (per image, then averaged)

with C the coupling averaged over the free pixels (in the ROI, not seeds) and P a Potts
relaxation. Seeds are one-hot and fixed; the free y are softmax(z), z starting at the
network's logits (y⁰ = σ), moved by Adam for a few steps; the lowest-energy iterate is kept,
so the y-step never raises E. fp32, batched over images and the four pair directions, any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from rtrbench.datasets.labelio import IGNORE
from rtrbench.methods.losses.grid_potts import grid_potts_energy
from rtrbench.methods.losses.relaxations import collision_cross_entropy
from rtrbench.methods.solvers.potts import OFFSETS, pair_slices

Coupling = Literal["collision-ce", "ce", "reverse-ce"]
COUPLINGS: tuple[str, ...] = get_args(Coupling)
LOG_Y_FLOOR = -18.0  # reverse CE takes log y: y is held above e^−18 ≈ 1.5e-8 there (as the paper needs)


def coupling(name: str, y: torch.Tensor, log_y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """H(y, σ) per pixel (N×H×W) for σ = softmax(logits): collision CE −log Σ y σ, CE −Σ y log σ
    (σ learns y's uncertainty) or reverse CE −Σ σ log y (y copies σ)."""
    log_sigma = torch.log_softmax(logits, 1)
    if name == "collision-ce":
        return collision_cross_entropy(y, log_sigma.exp(), log_p=log_y, log_q=log_sigma)
    if name == "ce":
        return -(y * log_sigma).sum(1)
    if name == "reverse-ce":
        return -(log_sigma.exp() * log_y.clamp_min(LOG_Y_FLOOR)).sum(1)
    raise ValueError(f"unknown coupling {name!r}; expected one of {', '.join(COUPLINGS)}")


def free_mean(values: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Per image, the mean of `values` (N×H×W) over the free pixels; 0 where there are none."""
    return (values * free).flatten(1).sum(1) / free.flatten(1).sum(1).clamp(min=1)


class SoftLabelProblem:
    """One batch's y-step: the network's logits (N×K×H×W, detached), seeds (N×H×W, 255 free),
    ROI (N×H×W bool) and contrast weights (N×4×H×W, `contrast_weights_torch`); in fp32."""

    def __init__(
        self, logits: torch.Tensor, seeds: torch.Tensor, roi: torch.Tensor, weights: torch.Tensor,
        eta: float, lam: float, relaxation: str = "collision-divergence", coupling: str = "collision-ce",
    ) -> None:  # fmt: skip
        self.logits, self.seeds, self.roi = logits.detach().float(), seeds, roi
        self.weights, self.eta, self.lam = weights.float(), eta, lam
        self.relaxation, self.coupling = relaxation, coupling
        self.free = roi & (seeds == IGNORE)
        # seeds as fixed log-labels: 0 on the seed's class, −inf elsewhere (exact; no gradient)
        self.seeded = (roi & (seeds != IGNORE))[:, None]
        k = logits.shape[1]
        one_hot = torch.nn.functional.one_hot(seeds.clamp(max=k - 1), k).permute(0, 3, 1, 2)
        self.log_seed = torch.log(one_hot.to(self.logits.dtype))
        self.log_sigma = torch.log_softmax(self.logits, 1)
        # per image, as N×1×1×1: the counts of free and of ROI pixels (at least 1)
        self.n_free, self.n_roi = (m.flatten(1).sum(1).clamp(min=1).view(-1, 1, 1, 1) for m in (self.free, roi))

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """E of y = labels(z), per image (N values)."""
        y, log_y = self.labels(z)
        coupled = free_mean(coupling(self.coupling, y, log_y, self.logits), self.free)
        return self.eta * coupled + self.lam * grid_potts_energy(y, self.weights, self.roi, self.relaxation)

    def energy_and_gradient(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E per image and ∂(Σ E)/∂z: in closed form for collision-divergence with the collision
        CE (the defaults; 2.5× faster than autograd, which checks it in the tests), else by autograd."""
        if (self.relaxation, self.coupling) != ("collision-divergence", "collision-ce"):
            with torch.enable_grad():
                z = z.detach().requires_grad_(True)
                energy = self.energy(z)
                return energy.detach(), torch.autograd.grad(energy.sum(), z)[0]
        return self._collision_divergence_energy_and_gradient(z)

    def _collision_divergence_energy_and_gradient(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E = η/#free Σ_free −log(y·σ) + λ/#ROI Σ_(i,j) w_ij (−log û_i·û_j), û = y/‖y‖, and
        ∂E/∂z = g − y Σ_k g_k for g = ∂E/∂log y (log_softmax), 0 at the seeds (fixed)."""
        tiny = torch.finfo(z.dtype).tiny
        y, log_y = self.labels(z)
        n_free, n_roi = self.n_free.to(z.dtype), self.n_roi.to(z.dtype)
        # coupling −log Σ_k y_k σ_k over the free pixels, from the logs as `collision_cross_entropy`;
        # its gradient in log y is −y_k σ_k / Σ y σ (a softmax of log y + log σ)
        joint = log_y + self.log_sigma
        coupled = -torch.logsumexp(joint, 1, keepdim=True)
        free = self.free[:, None]
        energy = self.eta * (coupled * free).sum((1, 2, 3)) / n_free.flatten()
        grad_log_y = -(self.eta / n_free) * free * torch.softmax(joint, 1)
        # Potts: per direction, the pair's cosine; the gradient reaches both pixels of each pair
        norm = y.norm(dim=1, keepdim=True).clamp_min(tiny)
        unit = y / norm
        grad_unit = torch.zeros_like(unit)
        h, w = z.shape[-2:]
        potts = z.new_zeros(z.shape[0])
        for d, (dy, dx) in enumerate(OFFSETS):
            (sy, sx), (ty, tx) = pair_slices(dy, dx, h, w)
            a, b = unit[:, :, sy, sx], unit[:, :, ty, tx]
            cos = (a * b).sum(1, keepdim=True)
            safe = cos.clamp_min(tiny)
            weight = self.weights[:, d : d + 1, sy, sx]
            potts += (weight * -torch.log(safe)).sum((1, 2, 3))
            coef = weight * (cos > tiny) / safe  # the clamp's gradient is 0 below it
            grad_unit[:, :, sy, sx] -= coef * b
            grad_unit[:, :, ty, tx] -= coef * a
        energy = energy + self.lam * potts / n_roi.flatten()
        grad_unit *= self.lam / n_roi
        grad_y = (grad_unit - (grad_unit * unit).sum(1, keepdim=True) * unit) / norm * (norm > tiny)
        grad_log_y += y * grad_y
        grad_z = grad_log_y - y * grad_log_y.sum(1, keepdim=True)  # through log_softmax
        return energy, torch.where(self.seeded, 0.0, grad_z)

    def labels(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y and log y: softmax(z) at free pixels, one-hot at the seeds (off the ROI: anything,
        it has no weight)."""
        log_y = torch.where(self.seeded, self.log_seed, torch.log_softmax(z, 1))
        return log_y.exp(), log_y


@dataclass(frozen=True)
class SoftLabels:
    y: torch.Tensor  # N×K×H×W, detached
    log_y: torch.Tensor  # its log (−inf off a seed's label)
    energy_init: torch.Tensor  # E(σ) per image
    energy: torch.Tensor  # E(y) per image, ≤ energy_init


def solve_soft_labels(problem: SoftLabelProblem, steps: int, step_size: float) -> SoftLabels:
    """`steps` Adam steps on z from the logits (step size in logit units); the best iterate per image."""
    z = problem.logits.clone()
    optimiser = torch.optim.Adam([z], lr=step_size)
    best_z = z.clone()
    # images are independent: the gradient of the sum of their energies is each one's
    energy, z.grad = problem.energy_and_gradient(z)
    energy_init = best = energy
    for step in range(steps):
        optimiser.step()
        if step == steps - 1:
            energy = problem.energy(z)  # the last iterate needs no gradient
        else:
            energy, z.grad = problem.energy_and_gradient(z)
        better = energy < best
        best = torch.where(better, energy, best)
        best_z[better] = z[better]
    y, log_y = problem.labels(best_z)
    return SoftLabels(y, log_y, energy_init, best)
