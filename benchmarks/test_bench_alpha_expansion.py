"""α-expansion on 256×256 photo-like problems: our PyMaxflow back-end against GCO v3, side by side.

    pytest benchmarks --benchmark-enable

Groups ``<regime>-L<labels>`` hold the two back-ends; ``extra_info`` records the energy reached,
the number of sweeps and the seconds of each sweep (from an untimed run with ``on_sweep``; the
first sweep includes the set-up, for GCO the init trick). Both back-ends start from the same
labelling (argmin of the unary with seeds applied) and sweep the labels in the same order.

Regimes (image, strokes and ground truth from the synthetic generator):

* ``grid-tr`` — stage A of Grid-TR with the reference settings: λ = 0.1, ν = 100, seeds from
  the strokes; pairwise terms dominate, so few sweeps.
* ``weak-unary`` — λ = 0.1 on random smoothed logits, ν = 1, no seeds: unaries and pairwise
  terms of similar size, many labels change per move, max-flows are long.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from rtrbench.datasets.specs import SynthConfig
from rtrbench.datasets.scribbles import rasterize_strokes
from rtrbench.datasets.synth import render_sample
from rtrbench.methods.solvers.alpha_expansion import alpha_expansion
from rtrbench.methods.solvers.potts import contrast_weights, potts_energy

gco = pytest.importorskip("gco")

SIZE = 256
MAX_SWEEPS = 5


def _neg_log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return np.log(np.exp(shifted).sum(-1, keepdims=True)) - shifted


def _smooth_noise(rng: np.random.Generator, n_labels: int, sigma: float) -> np.ndarray:
    noise = gaussian_filter(rng.normal(size=(SIZE, SIZE, n_labels)), (sigma, sigma, 0))
    return noise / noise.std()


@functools.lru_cache(maxsize=None)
def problem(regime: str, n_labels: int):
    """(unary, weights, seeds) — deterministic."""
    sample = render_sample(SynthConfig(size=SIZE, classes=n_labels), "train", 0)
    rng = np.random.default_rng(n_labels)
    if regime == "grid-tr":
        # A blurry, noisy "network output" that knows the ground truth a little.
        onehot = (sample.gt[..., None] == np.arange(n_labels)).astype(float)
        logits = 2.0 * gaussian_filter(onehot, (3, 3, 0)) + 2.0 * _smooth_noise(rng, n_labels, 4.0)
        return 0.1 * _neg_log_softmax(logits), contrast_weights(sample.image, nu=100.0), rasterize_strokes(sample.strokes, (SIZE, SIZE))
    if regime == "weak-unary":
        return 0.1 * _neg_log_softmax(_smooth_noise(rng, n_labels, 6.0)), contrast_weights(sample.image, nu=1.0), None
    raise ValueError(regime)


@pytest.mark.parametrize("backend", ["maxflow", "gco"])
@pytest.mark.parametrize("n_labels", [4, 8])
@pytest.mark.parametrize("regime", ["grid-tr", "weak-unary"])
def test_alpha_expansion_256(benchmark, regime, n_labels, backend):
    unary, weights, seeds = problem(regime, n_labels)
    benchmark.group = f"{regime}-L{n_labels}"

    def run():
        return alpha_expansion(unary, weights, seeds, max_sweeps=MAX_SWEEPS, backend=backend)

    labels = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)

    stamps = [time.perf_counter()]
    alpha_expansion(unary, weights, seeds, max_sweeps=MAX_SWEEPS, backend=backend, on_sweep=lambda *_: stamps.append(time.perf_counter()))
    benchmark.extra_info.update(
        backend=backend,
        energy=potts_energy(labels, unary, weights),
        sweeps=len(stamps) - 1,
        sweep_seconds=[round(b - a, 4) for a, b in zip(stamps, stamps[1:])],
    )
    if seeds is not None:
        assert (labels[seeds != 255] == seeds[seeds != 255]).all()
