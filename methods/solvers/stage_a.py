"""Stage A of Grid-TR: proposals s* = argmin_s Σ λ(−log q_i(s_i)) + Σ_{N8} ν w_ij [s_i ≠ s_j].

One problem per training image, solved by α-expansion in a pool of worker processes; the
network's probabilities are computed beforehand in the main process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtrbench.datasets.labelio import IGNORE
from rtrbench.methods.solvers.alpha_expansion import alpha_expansion
from rtrbench.methods.solvers.potts import contrast_weights, potts_energy


@dataclass(frozen=True)
class StageAProblem:
    image_id: str
    image: np.ndarray  # H×W×3 uint8, un-augmented
    unary: np.ndarray  # H×W×K float32: λ·(−log q)
    seeds: np.ndarray  # H×W uint8, 255 = free
    previous: np.ndarray | None  # the image's last proposal (H×W uint8), if any
    nu: float
    max_sweeps: int
    init: str = "unary"  # first pass: "unary" (best allowed label) or "lowest" (lowest allowed label)


@dataclass(frozen=True)
class StageAResult:
    image_id: str
    labels: np.ndarray  # H×W uint8 proposal
    energy_init: float  # energy of the starting labelling under the current unary
    energy: float
    changed: int  # pixels whose label differs from the previous proposal (or from the init)
    seed_violations: int


def allowed_labels(seeds: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels present in the scribbles; all classes when fewer than two are present."""
    present = np.unique(seeds[seeds != IGNORE])
    return present if len(present) >= 2 else np.arange(num_classes)


def initial_labels(
    unary: np.ndarray, seeds: np.ndarray, labels: np.ndarray, previous: np.ndarray | None, mode: str = "unary"
) -> np.ndarray:
    """The previous proposal where it is valid, else the best allowed label per pixel (mode
    "unary") or the lowest allowed label (mode "lowest"); seeds on top."""
    if mode == "lowest":
        init = np.full(unary.shape[:2], labels.min(), np.int64)
    else:
        init = labels[np.argmin(unary[..., labels], axis=-1)]
    if previous is not None:
        valid = np.isin(previous, labels)
        init = np.where(valid, previous, init)
    return np.where(seeds != IGNORE, seeds, init).astype(np.int64)


def solve(problem: StageAProblem) -> StageAResult:
    """Runs in a worker process: no torch, numpy arrays in and out."""
    k = problem.unary.shape[-1]
    weights = contrast_weights(problem.image, nu=problem.nu)
    labels = allowed_labels(problem.seeds, k)
    init = initial_labels(problem.unary, problem.seeds, labels, problem.previous, problem.init)
    out = alpha_expansion(problem.unary, weights, problem.seeds, labels, init, problem.max_sweeps)
    seeded = problem.seeds != IGNORE
    return StageAResult(
        problem.image_id,
        out.astype(np.uint8),
        potts_energy(init, problem.unary, weights),
        potts_energy(out, problem.unary, weights),
        int((out != (init if problem.previous is None else problem.previous)).sum()),
        int((out[seeded] != problem.seeds[seeded]).sum()),
    )
