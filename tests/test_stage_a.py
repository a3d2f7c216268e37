"""Grid-TR's stage-A problems (first-pass initialisations) and its robustness parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydantic import ValidationError

from rtrbench.methods.grid_tr import DEFAULT_PROPOSAL_WEIGHT, GridTRParams
from rtrbench.methods.solvers.potts import contrast_weights, potts_energy
from rtrbench.methods.losses.robust import proposal_weight
from rtrbench.methods.solvers.stage_a import StageAProblem, allowed_labels, initial_labels, solve


def problem(init: str, previous=None):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (12, 14, 3), dtype=np.uint8)
    unary = rng.random((12, 14, 4)).astype(np.float32) * 3
    seeds = np.full((12, 14), 255, np.uint8)
    seeds[2, 2:6], seeds[9, 3:10] = 3, 1  # labels 1 and 3 present: the allowed set
    return StageAProblem("x", image, unary, seeds, previous, 1.0, 5, init)


def test_initialisations():
    p = problem("unary")
    labels = allowed_labels(p.seeds, 4)
    assert labels.tolist() == [1, 3]
    unary_init = initial_labels(p.unary, p.seeds, labels, None, "unary")
    best = np.where(p.unary[..., 1] <= p.unary[..., 3], 1, 3)
    free = p.seeds == 255
    assert (unary_init[free] == best[free]).all()
    lowest = initial_labels(p.unary, p.seeds, labels, None, "lowest")
    assert (lowest[free] == 1).all()  # the reference's x0 = 0 over the restricted labels
    for init in (unary_init, lowest):
        assert (init[~free] == p.seeds[~free]).all()  # seeds on top
    previous = np.full((12, 14), 3, np.uint8)
    assert (initial_labels(p.unary, p.seeds, labels, previous, "lowest")[free] == 3).all()  # later passes


@pytest.mark.parametrize("init", ["unary", "lowest"])
def test_solve_lowers_the_energy_of_its_start(init):
    p = problem(init)
    result = solve(p)
    weights = contrast_weights(p.image, nu=p.nu)
    start = initial_labels(p.unary, p.seeds, allowed_labels(p.seeds, 4), None, init)
    assert result.energy_init == pytest.approx(potts_energy(start, p.unary, weights))
    assert result.energy <= result.energy_init + 1e-9
    assert result.energy == pytest.approx(potts_energy(result.labels, p.unary, weights))
    assert result.seed_violations == 0 and set(np.unique(result.labels)) <= {1, 3}


def test_robustness_is_eps_or_proposal_weight():
    for k in (5, 21):
        assert proposal_weight(GridTRParams().robust_eps(k), k) == pytest.approx(DEFAULT_PROPOSAL_WEIGHT)
        assert proposal_weight(GridTRParams(proposal_weight=0.3).robust_eps(k), k) == pytest.approx(0.3)
    assert GridTRParams(eps=0.9516).robust_eps(21) == 0.9516  # the reference's table stays exact
    with pytest.raises(ValidationError, match="either eps or proposal_weight"):
        GridTRParams(eps=0.5, proposal_weight=0.1)
    with pytest.raises(ValidationError):
        GridTRParams(proposal_weight=0.0)


def test_a_worker_pool_gives_the_inline_proposals(pascal_tree, tmp_path):
    """Large training sets solve stage A in worker processes, small ones inline: same result."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rtrbench.methods.grid_tr import GridTR
    from rtrbench.trainer import Trainer
    from tests.test_trainer import context

    trainer = Trainer(context(pascal_tree, tmp_path, GridTR, **{"methods.grid-tr.params.proposal_weight": 0.1}))
    method, ids = trainer.method, trainer.train_set.ids
    inline = method.stage_a(trainer.model, trainer.train_set, 1, None)
    first = {i: method.passes(i) for i in ids}
    method.passes.keep_only(None)  # the pooled pass starts from nothing too
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pooled = method.stage_a(trainer.model, trainer.train_set, 1, pool)
    for i in ids:
        np.testing.assert_array_equal(method.passes(i), first[i])
    drop = {"stageA_seconds"}
    assert {k: v for k, v in pooled.items() if k not in drop} == {k: v for k, v in inline.items() if k not in drop}


def test_the_stage_a_pool_has_one_worker_per_thread_of_the_run(pascal_tree, tmp_path, monkeypatch):
    import rtrbench.methods.grid_tr as grid_tr
    from rtrbench.trainer import Trainer
    from tests.test_trainer import context

    sizes = []

    class RecordingPool:
        def __init__(self, workers, mp_context):
            sizes.append(workers)

        def shutdown(self, cancel_futures=False):
            pass

    monkeypatch.setattr(grid_tr, "ProcessPoolExecutor", RecordingPool)
    monkeypatch.setattr(grid_tr, "_solve_all", lambda problems, executor, limit: map(grid_tr.solve, problems))
    monkeypatch.setattr(grid_tr, "MIN_IMAGES_FOR_POOL", 1)  # the 6-image tree counts as large
    for threads, expected in ((3, [3]), (1, [])):  # one thread: solved inline, no pool
        sizes.clear()
        ctx = context(pascal_tree, tmp_path / str(threads), grid_tr.GridTR, **{"methods.grid-tr.params.proposal_weight": 0.1})
        trainer = Trainer(dataclasses.replace(ctx, threads=threads))
        trainer.method.on_epoch_start(1, trainer.model, trainer.train_set)
        trainer.method.close()
        assert sizes == expected


def test_the_training_set_of_grid_tr_pickles_for_spawned_loader_workers(pascal_tree, tmp_path):
    """Loader workers under spawn/forkserver receive the dataset pickled, with its proposal source."""
    import pickle

    from rtrbench.methods.grid_tr import GridTR
    from rtrbench.trainer import Trainer
    from tests.test_trainer import context

    trainer = Trainer(context(pascal_tree, tmp_path, GridTR, **{"methods.grid-tr.params.proposal_weight": 0.1}))
    trainer.method.on_epoch_start(1, trainer.model, trainer.train_set)
    trainer.train_set.set_epoch(1)
    copy = pickle.loads(pickle.dumps(trainer.train_set))
    for index in range(len(copy)):
        theirs, ours = copy[index], trainer.train_set[index]
        assert (theirs["proposal"] == ours["proposal"]).all() and (ours["proposal"] != 255).any()
