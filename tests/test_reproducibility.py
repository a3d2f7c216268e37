"""Same command, same machine, same numbers: a run interrupted after its first epoch and resumed
from the epoch checkpoint (so epoch 1 is trained by another Trainer) ends bit-identical to an
uninterrupted run, for every method."""

from __future__ import annotations

import pytest
import torch

from rtrbench.methods.dense_gd import DenseGD
from rtrbench.methods.grid_gd import GridGD
from rtrbench.methods.grid_tr import GridTR
from rtrbench.methods.pce import PCEGD, FullSupervision
from rtrbench.trainer import Trainer
from tests.test_trainer import FakeLogger, context

METHODS = [PCEGD, FullSupervision, GridGD, DenseGD, GridTR]
# Grid-TR: stage A at epoch 1 only, so the resumed epoch 2 must read the stored proposals.
SETTINGS = {
    "train.epochs": 2,
    "methods.grid-tr.params.every": 2,
    "methods.grid-tr.params.proposal_weight": 0.1,
    "methods.dense-gd.params.sigma_xy": 10.0,
}


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_resumed_run_equals_uninterrupted_run_bit_for_bit(method, pascal_tree, tmp_path):
    whole_logger = FakeLogger()
    whole = Trainer(context(pascal_tree, tmp_path / "whole", method, whole_logger, **SETTINGS))
    whole_final = whole.run()

    part = Trainer(context(pascal_tree, tmp_path / "part", method, FakeLogger(), **SETTINGS))
    part._train_epoch(1)
    part._save(1)  # what a run killed during epoch 2 leaves (with Grid-TR's proposals)
    part.method.close()
    resumed_logger = FakeLogger()
    resumed = Trainer(context(pascal_tree, tmp_path / "part", method, resumed_logger, **SETTINGS))
    assert resumed.start_epoch == 1
    final = resumed.run()

    assert resumed_logger.series("train_loss") == whole_logger.series("train_loss")[1:]
    state = resumed.model.state_dict()
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert (final.confusion == whole_final.confusion).all()
