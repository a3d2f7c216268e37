"""α-expansion against brute force (tiny grids), the Potts factor-2 bound and GCO v3."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rtrbench.methods.solvers.alpha_expansion import _gco_problem, alpha_expansion
from rtrbench.methods.solvers.potts import OFFSETS, pair_slices, potts_energy

try:
    import gco  # noqa: F401

    HAVE_GCO = True
except ImportError:
    HAVE_GCO = False
needs_gco = pytest.mark.skipif(not HAVE_GCO, reason="gco-wrapper (extra 'reference') not installed")

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def brute_force(unary, weights, seeds=None, labels=None) -> float:
    """Minimum energy over every labelling obeying seeds and allowed labels (vectorised)."""
    h, w, n_labels = unary.shape
    allowed = np.arange(n_labels) if labels is None else np.array(sorted(labels))
    n = h * w
    all_lab = allowed[np.indices((allowed.size,) * n).reshape(n, -1).T].reshape(-1, h, w)
    if seeds is not None:
        fixed = seeds != 255
        all_lab = all_lab[(all_lab[:, fixed] == seeds[fixed]).all(1)]
    energy = np.take_along_axis(unary[None], all_lab[..., None], axis=3)[..., 0].sum((1, 2))
    for d, (dy, dx) in enumerate(OFFSETS):
        src, dst = pair_slices(dy, dx, h, w)
        energy = energy + (weights[d][src][None] * (all_lab[:, src[0], src[1]] != all_lab[:, dst[0], dst[1]])).sum((1, 2))
    return float(energy.min())


def valid_weights(raw: np.ndarray) -> np.ndarray:
    """Zero the entries whose neighbour is off the image (the layout's contract)."""
    _, h, w = raw.shape
    out = np.zeros_like(raw)
    for d, (dy, dx) in enumerate(OFFSETS):
        src, _ = pair_slices(dy, dx, h, w)
        out[d][src] = raw[d][src]
    return out


@st.composite
def small_problem(draw, max_h=3, max_w=4, n_labels=2, nonneg=False, max_seeds=3):
    h = draw(st.integers(1, max_h))
    w = draw(st.integers(1, max_w))
    lo = 0.0 if nonneg else -3.0
    floats = st.floats(lo, 3.0, allow_nan=False, allow_subnormal=False)
    unary = draw(hnp.arrays(np.float64, (h, w, n_labels), elements=floats))
    weights = valid_weights(draw(hnp.arrays(np.float64, (4, h, w), elements=st.floats(0.0, 3.0, allow_subnormal=False))))
    seeds = np.full((h, w), 255, np.uint8)
    for _ in range(draw(st.integers(0, max_seeds))):
        y, x = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        seeds[y, x] = draw(st.integers(0, n_labels - 1))
    return unary, weights, seeds


def random_problem(seed: int, h: int, w: int, n_labels: int, seed_frac: float = 0.05, nu: float = 1.0):
    """Continuous random costs (exact ties have probability 0)."""
    rng = np.random.default_rng(seed)
    unary = rng.random((h, w, n_labels)) * 2.0
    weights = valid_weights(rng.random((4, h, w)) * nu)
    seeds = np.where(rng.random((h, w)) < seed_frac, rng.integers(0, n_labels, (h, w)), 255).astype(np.uint8)
    return unary, weights, seeds


def tol(energy: float) -> float:
    return 1e-9 * (1.0 + abs(energy))


# --------------------------------------------------------------------------------------- exactness


@FAST
@given(small_problem(n_labels=2))
def test_two_labels_reach_the_global_minimum(problem):
    # With two labels, a labelling that no expansion move improves is a global minimum of the
    # (submodular) energy, seeds included.
    unary, weights, seeds = problem
    best = brute_force(unary, weights, seeds)
    for s in (None, seeds):
        out = alpha_expansion(unary, weights, seeds=s, max_sweeps=20)
        energy = potts_energy(out, unary, weights)
        assert energy <= (best if s is not None else brute_force(unary, weights)) + tol(energy)


@FAST
@given(small_problem(max_h=3, max_w=3, n_labels=4, nonneg=True), st.integers(3, 4))
def test_multilabel_within_factor_two_of_optimum(problem, n_used):
    unary, weights, seeds = problem
    unary = unary[:, :, :n_used]
    seeds = np.where(seeds < n_used, seeds, 255).astype(np.uint8)
    best = brute_force(unary, weights, seeds)
    out = alpha_expansion(unary, weights, seeds=seeds, max_sweeps=20)
    energy = potts_energy(out, unary, weights)
    assert best - tol(best) <= energy <= 2.0 * best + tol(best)


def test_finds_obvious_segmentation():
    # Two flat halves with a strong contrast edge and noisy unaries: the Potts term cleans it up.
    rng = np.random.default_rng(0)
    truth = np.zeros((20, 20), int)
    truth[:, 10:] = 1
    unary = np.stack([(truth != k) * 1.0 for k in range(2)], -1) + rng.random((20, 20, 2)) * 1.5
    weights = valid_weights(np.ones((4, 20, 20)))
    weights[0][:, 9] = 0.0  # cheap cut between the halves
    weights[2][:, 9] = weights[3][:, 10] = 0.0
    out = alpha_expansion(unary, weights)
    np.testing.assert_array_equal(out, truth)


# ------------------------------------------------------------------------------------------- GCO


def gco_tolerance(unary, weights, seeds, allowed, energy) -> float:
    """1e-6 relative, plus twice GCO's integer rounding of one labelling's energy.

    GCO minimises the energy with every term rounded to a multiple of 1/scale, i.e. off by at most
    0.5/scale per term; the two runs follow the same moves unless a rounding flips a near-tie.
    """
    seeded = seeds != 255
    data, _, _, ew, scale = _gco_problem(unary, weights, seeded, seeds.astype(np.int64), np.asarray(allowed))
    n_terms = data.shape[0] + ew.size
    return 1e-6 * abs(energy) + 2 * 0.5 * n_terms / scale


@needs_gco
@FAST
@given(
    st.integers(0, 2**32 - 1),
    st.integers(2, 12),
    st.integers(2, 12),
    st.integers(3, 6),
    st.sampled_from([0.3, 1.0, 3.0]),
)
def test_never_worse_than_gco(seed, h, w, n_labels, nu):
    unary, weights, seeds = random_problem(seed, h, w, n_labels, nu=nu)
    ours = alpha_expansion(unary, weights, seeds=seeds, backend="maxflow")
    ref = alpha_expansion(unary, weights, seeds=seeds, backend="gco")
    e_ours, e_ref = potts_energy(ours, unary, weights), potts_energy(ref, unary, weights)
    assert e_ours <= e_ref + gco_tolerance(unary, weights, seeds, range(n_labels), e_ref)
    fixed = seeds != 255
    np.testing.assert_array_equal(ref[fixed], seeds[fixed])


@needs_gco
def test_gco_backend_matches_on_a_photo_like_problem():
    rng = np.random.default_rng(5)
    unary, weights, seeds = random_problem(7, 40, 40, 5, nu=2.0)
    labels = [0, 2, 3, 4]
    seeds = np.where(seeds == 1, 255, seeds).astype(np.uint8)
    init = rng.integers(0, 5, (40, 40))
    outs = {b: alpha_expansion(unary, weights, seeds, labels, init, backend=b) for b in ("maxflow", "gco")}
    energies = {b: potts_energy(o, unary, weights) for b, o in outs.items()}
    assert energies["maxflow"] <= energies["gco"] + gco_tolerance(unary, weights, seeds, labels, energies["gco"])
    for out in outs.values():
        assert set(np.unique(out)) <= set(labels)
        np.testing.assert_array_equal(out[seeds != 255], seeds[seeds != 255])


@needs_gco
def test_gco_max_sweeps_zero_and_single_label_return_the_repaired_init():
    unary, weights, seeds = random_problem(1, 6, 7, 3)
    init = np.zeros((6, 7), int)
    for backend in ("maxflow", "gco"):
        out0 = alpha_expansion(unary, weights, seeds, init=init, max_sweeps=0, backend=backend)
        np.testing.assert_array_equal(out0, np.where(seeds != 255, seeds, 0))
    only = alpha_expansion(unary, weights, labels=[2], backend="gco")
    assert (only == 2).all()


def test_gco_missing_gives_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gco", None)  # makes `import gco` raise ImportError
    unary, weights, _ = random_problem(0, 3, 3, 2)
    with pytest.raises(ImportError, match="reference"):
        alpha_expansion(unary, weights, backend="gco")


# ----------------------------------------------------------------------------- constraints & API


@pytest.mark.parametrize("backend", ["maxflow", pytest.param("gco", marks=needs_gco)])
def test_seeds_and_labels_are_respected(backend):
    unary, weights, _ = random_problem(3, 15, 16, 6, nu=2.0)
    seeds = np.full((15, 16), 255, np.uint8)
    seeds[2:5, 3] = 4
    seeds[10, 5:12] = 1
    # Seeds against the data: the unary strongly prefers label 0 everywhere.
    unary[..., 0] -= 5.0
    unary -= unary.min()
    out = alpha_expansion(unary, weights, seeds=seeds, labels=[0, 1, 4, 5], backend=backend)
    assert out.dtype == np.int64 and out.shape == (15, 16)
    assert (out[2:5, 3] == 4).all() and (out[10, 5:12] == 1).all()
    assert set(np.unique(out)) <= {0, 1, 4, 5}


def test_seed_labels_outside_allowed_raise():
    unary, weights, _ = random_problem(0, 4, 4, 5)
    seeds = np.full((4, 4), 255, np.uint8)
    seeds[0, 0], seeds[1, 1], seeds[2, 2] = 3, 4, 0
    with pytest.raises(ValueError, match=r"\[3, 4\]"):
        alpha_expansion(unary, weights, seeds=seeds, labels=[0, 1])
    seeds[3, 3] = 9  # not even a label
    with pytest.raises(ValueError, match="9"):
        alpha_expansion(unary, weights, seeds=seeds)
    with pytest.raises(ValueError):
        alpha_expansion(unary, weights, labels=[0, 7])
    with pytest.raises(ValueError):
        alpha_expansion(unary, weights, backend="nope")
    with pytest.raises(ValueError):
        alpha_expansion(unary, -weights)


def test_init_is_repaired_and_returned_with_zero_sweeps():
    unary, weights, _ = random_problem(2, 5, 6, 4)
    seeds = np.full((5, 6), 255, np.uint8)
    seeds[0, :3] = 2
    init = np.full((5, 6), 1)
    init[4, :] = 3  # label 3 is not allowed below
    out = alpha_expansion(unary, weights, seeds=seeds, labels=[0, 1, 2], init=init, max_sweeps=0)
    expected = init.copy()
    expected[4, :] = np.argmin(unary[4, :, :3], axis=1)  # disallowed -> best allowed label
    expected[0, :3] = 2
    np.testing.assert_array_equal(out, expected)
    default = alpha_expansion(unary, weights, max_sweeps=0)
    np.testing.assert_array_equal(default, unary.argmin(2))


def test_energy_never_increases_and_stops_without_improvement():
    unary, weights, seeds = random_problem(4, 30, 30, 5, nu=3.0)
    init = np.random.default_rng(4).integers(0, 5, (30, 30))
    e0 = potts_energy(np.where(seeds != 255, seeds, init), unary, weights)
    log = []
    out = alpha_expansion(unary, weights, seeds, init=init, max_sweeps=50, on_sweep=lambda s, lab, e: log.append((s, lab, e)))
    energies = [e0] + [e for _, _, e in log]
    assert all(b <= a for a, b in zip(energies, energies[1:]))
    assert energies[-1] < e0
    for _, lab, e in log:
        assert e == pytest.approx(potts_energy(lab, unary, weights), rel=1e-12)
    assert len(log) < 50  # converged, did not run out of sweeps
    # Prefix property: fewer sweeps stop on the same path.
    for k in range(1, len(log) + 1):
        np.testing.assert_array_equal(alpha_expansion(unary, weights, seeds, init=init, max_sweeps=k), log[k - 1][1])
    # From a converged labelling, one sweep finds nothing and stops.
    again = []
    out2 = alpha_expansion(unary, weights, seeds, init=out, max_sweeps=50, on_sweep=lambda s, lab, e: again.append(e))
    np.testing.assert_array_equal(out2, out)
    assert len(again) == 1


@needs_gco
def test_gco_sweeps_log_true_energies():
    unary, weights, seeds = random_problem(6, 20, 20, 4, nu=3.0)
    log = []
    out = alpha_expansion(unary, weights, seeds, backend="gco", max_sweeps=50, on_sweep=lambda s, lab, e: log.append(e))
    assert 1 <= len(log) < 50
    assert all(b <= a + 1e-9 for a, b in zip(log, log[1:]))
    assert log[-1] == pytest.approx(potts_energy(out, unary, weights))


@needs_gco
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gco_starts_from_the_same_init_and_follows_the_same_moves(seed):
    # Same start, same label order, continuous costs: after one sweep both back-ends agree
    # (up to GCO's rounding), which they would not if GCO had not started from `init`.
    unary, weights, seeds = random_problem(seed, 16, 16, 4, nu=2.0)
    init = np.random.default_rng(seed).integers(0, 4, (16, 16))
    e = {
        b: potts_energy(alpha_expansion(unary, weights, seeds, init=init, max_sweeps=1, backend=b), unary, weights)
        for b in ("maxflow", "gco")
    }
    assert abs(e["maxflow"] - e["gco"]) <= gco_tolerance(unary, weights, seeds, range(4), e["gco"])
