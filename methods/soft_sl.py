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
        # per-batch values kept on the device and read once per epoch (no wait for the GPU per batch)
        self._energies: list[torch.Tensor] = []
        self._timer = DeviceTimer(ctx.device)

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        p = self.params
        with self._timer:
            with torch.no_grad():
                weights = contrast_weights_torch(batch.image, batch.roi)
            problem = SoftLabelProblem(logits.detach(), batch.scribbles, batch.roi, weights, p.eta, p.lam, p.relaxation, p.coupling)
            labels = solve_soft_labels(problem, p.steps, p.step_size)
        self._energies.append(torch.stack([labels.energy_init.mean(), labels.energy.mean()]))
        coupled = free_mean(coupling(p.coupling, labels.y, labels.log_y, logits.float()), problem.free).mean()
        return {
            "seed": self.batch_averaged(partial_cross_entropy(logits, batch.scribbles, batch.roi, self.ctx.world), batch),
            "coupling": p.eta * coupled,
        }

    def epoch_metrics(self) -> dict[str, float]:
        """Per-epoch means of the y-step's energy before and after, and its total time."""
        if not self._energies:
            return {}
        init, final = torch.stack(self._energies).mean(0).tolist()
        self._energies = []
        return {"train_ystep_energy_init": init, "train_ystep_energy": final, "ystep_seconds": self._timer.total()}


class DeviceTimer:
    """Adds up the time of the `with` blocks it wraps: wall time on a CPU; on a GPU, the time
    of the work queued inside them (CUDA events, read by `total` without a wait per block)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._spans: list = []
        self._seconds = 0.0

    def __enter__(self) -> None:
        if self.cuda:
            self._spans.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
            self._spans[-1][0].record()
        else:
            self._started = time.perf_counter()

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self._spans[-1][1].record()
        else:
            self._seconds += time.perf_counter() - self._started

    def total(self) -> float:
        """Seconds since the last call, and start again."""
        if self._spans:
            self._spans[-1][1].synchronize()
            self._seconds += sum(start.elapsed_time(end) for start, end in self._spans) / 1000
        seconds, self._seconds, self._spans = self._seconds, 0.0, []
        return seconds
