"""Grid-TR killed (SIGKILL) at any moment of stage A, even with a torn proposal file on disk,
resumes to exactly the result of a run that was never interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rtrbench.methods.grid_tr import GridTR
from rtrbench.trainer import Trainer
from tests.conftest import make_pascal_tree
from tests.test_trainer import FakeLogger, context

pytestmark = pytest.mark.slow

# stage A at every epoch: three passes, each starting from the one before
SETTINGS = {"train.epochs": 3, "methods.grid-tr.params.every": 1, "methods.grid-tr.params.proposal_weight": 0.1}


def train(root: Path, workdir: Path) -> tuple[Trainer, FakeLogger]:
    logger = FakeLogger()
    trainer = Trainer(context(root, workdir, GridTR, logger, **SETTINGS))
    trainer.run()
    return trainer, logger


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_pascal_tree(tmp_path_factory.mktemp("data") / "voc")


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory) -> tuple[Trainer, FakeLogger]:
    return train(data, tmp_path_factory.mktemp("whole"))


@pytest.mark.parametrize("point", ["pass1-partial", "pass2-partial", "pass2-committed"])
def test_a_run_killed_in_stage_a_resumes_to_the_uninterrupted_result(point, data, uninterrupted, tmp_path):
    killed = subprocess.run([sys.executable, "-m", "tests.kill_points", str(data), str(tmp_path), point], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if point.endswith("partial"):  # the torn file is on disk, in the unpublished pass
        assert any(p.stat().st_size == 0 for p in (tmp_path / "run" / "proposals").glob(".pass-*/*.png"))

    trainer, logger = train(data, tmp_path)

    whole, whole_logger = uninterrupted
    state = trainer.model.state_dict()
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    stage_a = {k for k, _, _ in whole_logger.metrics if k.startswith("stageA_") and k != "stageA_seconds"}
    for key in ["train_loss", *stage_a]:  # the resumed epochs log what the uninterrupted ones did
        resumed = dict(logger.series(key))
        assert resumed == {step: v for step, v in whole_logger.series(key) if step in resumed}, key
    assert [p.name for p in (tmp_path / "run" / "proposals").iterdir()] == ["pass-0003"]
