"""Soft self-labeling (Zhang & Boykov, CVPR 2025): soft pseudo-labels y and the network minimise
one joint loss in alternation,

    L(θ, y) = PCE(σ) + η · C(y, σ) + λ · Σ_{(i,j)∈N8} w_ij P(y_i, y_j),

per training batch: a y-step (θ fixed, `solvers.soft_labels`) lowers L over y, then an SGD
step on θ with y fixed lowers PCE + η · C (the Potts term does not depend on θ). Fine-tunes
from the PCE-GD run of the same length and seed, like the other regularized methods.
"""

from __future__ import annotations

import time

import torch
from pydantic import BaseModel, ConfigDict, Field

from rtrbench.methods.base import Batch, Method, MethodContext
from rtrbench.methods.losses.relaxations import Relaxation
from rtrbench.methods.pce import partial_cross_entropy
from rtrbench.methods.solvers.potts import contrast_weights_torch
from rtrbench.methods.solvers.soft_labels import Coupling, SoftLabelProblem, coupling, free_mean, solve_soft_labels


class SoftSLParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    relaxation: Relaxation = "collision-divergence"  # P: the paper's recommendation
    coupling: Coupling = "collision-ce"  # C: the paper's recommendation
    eta: float = Field(0.3, gt=0)  # η, weight of the coupling (the paper: 0.3)
    lam: float = Field(6.0, ge=0)  # λ, weight of the Potts term in the y-step (the paper: 6)
    steps: int = Field(20, ge=0)  # Adam steps of the y-step per batch (ours)
    step_size: float = Field(0.5, gt=0)  # their step size, in logit units (ours)


class SoftSL(Method):
    name = "soft-sl"
    description = "soft self-labeling: soft pseudo-labels by a y-step on a Potts relaxation + collision CE (Zhang & Boykov 2025)"
    Params = SoftSLParams
    init_from = "pce-gd"

    def __init__(self, params: SoftSLParams, ctx: MethodContext) -> None:
        super().__init__(params, ctx)
        self._sums: dict[str, float] = {}

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        p = self.params
        started = time.perf_counter()
        with torch.no_grad():
            weights = contrast_weights_torch(batch.image, batch.roi)
        problem = SoftLabelProblem(logits.detach(), batch.scribbles, batch.roi, weights, p.eta, p.lam, p.relaxation, p.coupling)
        labels = solve_soft_labels(problem, p.steps, p.step_size)
        self._add("ystep_energy_init", labels.energy_init.mean().item())
        self._add("ystep_energy", labels.energy.mean().item())
        self._add("ystep_seconds", time.perf_counter() - started)
        self._add("batches", 1.0)
        coupled = free_mean(coupling(p.coupling, labels.y, labels.log_y, logits.float()), problem.free).mean()
        return {
            "seed": self.batch_averaged(partial_cross_entropy(logits, batch.scribbles, batch.roi), batch),
            "coupling": p.eta * coupled,
        }

    def epoch_metrics(self) -> dict[str, float]:
        """Per-epoch means of the y-step's energy before and after, and its total time."""
        sums, self._sums = self._sums, {}
        n = max(1.0, sums.get("batches", 0.0))
        return {
            "train_ystep_energy_init": sums.get("ystep_energy_init", 0.0) / n,
            "train_ystep_energy": sums.get("ystep_energy", 0.0) / n,
            "ystep_seconds": sums.get("ystep_seconds", 0.0),
        } if sums else {}

    def _add(self, key: str, value: float) -> None:
        self._sums[key] = self._sums.get(key, 0.0) + value
