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

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """E of y = labels(z), per image (N values)."""
        y, log_y = self.labels(z)
        coupled = free_mean(coupling(self.coupling, y, log_y, self.logits), self.free)
        return self.eta * coupled + self.lam * grid_potts_energy(y, self.weights, self.roi, self.relaxation)

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
    z = problem.logits.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=step_size)
    best_z = z.detach().clone()
    with torch.enable_grad():
        energy = problem.energy(z)
        energy_init = best = energy.detach().clone()
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            energy.sum().backward()  # images are independent: the sum's gradient is each one's
            optimiser.step()
            energy = problem.energy(z)
            better = energy.detach() < best
            best = torch.where(better, energy.detach(), best)
            best_z[better] = z.detach()[better]
    y, log_y = problem.labels(best_z)
    return SoftLabels(y.detach(), log_y.detach(), energy_init, best)
