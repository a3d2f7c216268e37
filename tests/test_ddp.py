"""One run on two processes (DistributedDataParallel over gloo, on the CPU): an epoch gives the
one-process weights, and `rtrbench run --nproc-per-run 2` trains and tracks a run."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mlflow import MlflowClient

from rtrbench.config import Preset, resolve_run_config
from rtrbench.distributed import NullLogger
from rtrbench.errors import ConfigError
from rtrbench.methods.solvers.proposal_passes import ProposalPasses
from rtrbench.methods.world import World
from rtrbench.metrics import DEFAULT_TRIMAP_WIDTHS
from rtrbench.progress import ProgressView
from rtrbench.registry import get_method
from rtrbench.trainer import RunContext, Trainer
from tests.cli_helpers import rtrbench, runs_of
from tests.conftest import make_pascal_tree

TINY = Preset.model_validate(
    {
        "data": {"crop_size": 32, "scale_min": 0.8, "scale_max": 1.2},
        "model": {"width_mult": 0.25, "decoder_channels": 16},
        "train": {"epochs": 1, "batch_size": 2, "lr": 0.01},
        "methods": {"grid-tr": {"params": {"every": 1, "proposal_weight": 0.1}}},
    }
)


def _trainer(root: Path, run_dir: Path, method: str, world: World) -> Trainer:
    cfg = resolve_run_config(TINY, method, 1.0, 0, {"init": "scratch"})
    ctx = RunContext(cfg, get_method(method), root, run_dir, torch.device("cpu"), NullLogger(), ProgressView(enabled=False), None, 1, world)
    # float64 (built so, as DDP sizes its gradient buckets for the parameters it is given):
    # train-mode BatchNorm over these tiny crops turns float32 rounding, which the processes'
    # split sums change, into percent-level differences of the gradient
    torch.set_default_dtype(torch.float64)
    try:
        trainer = Trainer(ctx)
    finally:
        torch.set_default_dtype(torch.float32)
    to_batch = trainer._to_batch

    def double_batch(raw):
        batch = to_batch(raw)
        batch.image = batch.image.double()
        return batch

    trainer._to_batch = double_batch
    return trainer


def _epoch_on_two_processes(rank: int, port: int, root: Path, run_dir: Path, method: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        trainer = _trainer(root, run_dir, method, World(rank, 2))
        trainer._train_epoch(1)
        state = {name: value.clone() for name, value in trainer.model.state_dict().items()}
        trainer.model.float()  # the val images are float32
        result = trainer._evaluate(DEFAULT_TRIMAP_WIDTHS, keep=trainer.val_set.ids[:2])
        if rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"state": state, "eval": result}, run_dir / "ddp.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pce-gd", "grid-tr"])
def test_an_epoch_on_two_processes_gives_the_one_process_weights(tmp_path, method):
    """Same global batches in the same order, global-batch BatchNorm and dropout masks, losses
    over global counts, Grid-TR's stage A by process 0: after an epoch (3 steps of the global
    batch 2, one image per process) every weight and BatchNorm statistic equals the one-process
    run's up to rounding. Tolerance: this training amplifies rounding ~1e8-fold in an epoch
    (a 1e-15 relative change of the initial weights moves weights by 3e-7; two processes
    measured 3e-9 from one); a wrong order, count, statistic or mask moves them by 1e-3 to 10."""
    root = make_pascal_tree(tmp_path / "voc")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_epoch_on_two_processes, args=(port, root, tmp_path / "ddp", method), nprocs=2)
    saved = torch.load(tmp_path / "ddp" / "ddp.pt", weights_only=False)
    distributed = saved["state"]
    one = _trainer(root, tmp_path / "one", method, World())
    one._train_epoch(1)
    for name, value in one.model.state_dict().items():
        torch.testing.assert_close(distributed[name], value, rtol=0, atol=1e-6, msg=lambda m: f"{name}: {m}")
    # the sharded evaluation (each process every second val image, confusions summed, the
    # previews scored by process 0) scores the same weights as one process does
    one.model.load_state_dict(distributed)
    one.model.float()
    expected = one._evaluate(DEFAULT_TRIMAP_WIDTHS, keep=one.val_set.ids[:2])
    result = saved["eval"]
    assert (result.confusion == expected.confusion).all() and result.trimap == expected.trimap
    assert result.predictions.keys() == expected.predictions.keys()
    assert all((result.predictions[k] == expected.predictions[k]).all() for k in expected.predictions)
    if method == "grid-tr":  # stage A split between the processes: the same pass, the same sums
        passes = [ProposalPasses(tmp_path / d / "proposals") for d in ("ddp", "one")]
        assert [p.latest() for p in passes] == [1, 1]
        for image_id in one.train_set.ids:
            assert (passes[0](image_id) == passes[1](image_id)).all(), image_id
        metrics = [{k: v for k, v in p.metrics(1).items() if k != "stageA_seconds"} for p in passes]
        assert metrics[0] == pytest.approx(metrics[1], rel=1e-12)


@pytest.mark.slow
def test_nproc_per_run_trains_one_tracked_run(tmp_path):
    args = ("run", "--preset", "smoke", "--methods", "pce-gd", "--lengths", "1", "--seeds", "0", "--epochs", "1", "--quiet")
    result = rtrbench(tmp_path, *args, "--nproc-per-run", "2", "--executor", "local", "--threads", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    client, runs = runs_of(tmp_path)
    [run] = runs
    assert run.info.status == "FINISHED" and run.data.tags["world_size"] == "2"
    assert "val_miou" in run.data.metrics and [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1]
    assert (tmp_path / "runs" / run.data.tags["config_hash"] / "final" / "model.pt").is_file()


def test_the_global_batch_must_split_evenly(tmp_path):
    with pytest.raises(ConfigError, match="train.batch_size 2: not divisible by the 3 processes of the run"):
        _trainer(make_pascal_tree(tmp_path / "voc"), tmp_path / "run", "pce-gd", World(0, 3))
