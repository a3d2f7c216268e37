"""One run trained by several processes with DistributedDataParallel (`--nproc-per-run N`).

The processes are started by torch's elastic launcher (what `torchrun` runs) on this machine:
`nccl` on GPUs (one per process), `gloo` on CPUs. They compute the one-process gradient of the
same global batches: each takes an equal, contiguous share of every batch of the one-process
order, BatchNorm's statistics are those of the global batch, and the losses divide by global
counts (`rtrbench.methods.world`). Process 0 logs to MLflow and writes the run's files.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from rtrbench.config import RunConfig
from rtrbench.errors import RtrbenchError
from rtrbench.methods.world import World


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """The batches of epoch `epoch` (set before each epoch) as (epoch, index) items, so that
    loader workers living across epochs know it: the order `DataLoader(shuffle=True,
    generator=seeded with seed_of(epoch))` gives (it draws its workers' base seed from that
    generator first), cut into batches, and under DDP this process's equal, contiguous share
    of each."""

    def __init__(self, n: int, batch_size: int, drop_last: bool, world: World, seed_of) -> None:
        self.n, self.batch_size, self.drop_last, self.world, self.seed_of = n, batch_size, drop_last, world, seed_of
        self.epoch = 1

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(self.seed_of(self.epoch))
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # the loader's base-seed draw
        order = torch.randperm(self.n, generator=generator).tolist()
        share = self.batch_size // self.world.size
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            mine = batch[self.world.rank * share : (self.world.rank + 1) * share] if self.world.size > 1 else batch
            yield [(self.epoch, i) for i in mine]

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes; its gradient is the sum of theirs (each process's loss depends
    on every process's input through the sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the global batch: mean and variance from sums all-reduced over the
    processes, with their gradients (torch's SyncBatchNorm runs on GPUs only). Its collectives
    go through their own process group: in the backward pass they would otherwise interleave
    with DDP's asynchronous gradient reductions in a different order on each process."""

    group = None  # set by `synchronise`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        count = torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype, device=x.device)
        dist.all_reduce(count, group=self.group)
        mean = _AllReduceSum.apply(x.sum((0, 2, 3)), self.group) / count
        centred = x - mean.view(1, -1, 1, 1)
        var = _AllReduceSum.apply(centred.square().sum((0, 2, 3)), self.group) / count
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * count / (count - 1).clamp(min=1), alpha=m)
            self.num_batches_tracked.add_(1)
        scale = self.weight / torch.sqrt(var + self.eps)
        return centred * scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class GlobalDropout(nn.Dropout):
    """Dropout drawing the mask of the whole global batch, as one process would, and applying
    this process's slice of it: the same masks as the one-process run on a CPU (where
    `F.dropout` is `x * bernoulli(1 − p) / (1 − p)` in memory order, batch outermost)."""

    def __init__(self, p: float, world: World) -> None:
        super().__init__(p)
        self.world = world

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.shape[0]
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format
        noise = torch.empty((n * self.world.size, *x.shape[1:]), dtype=x.dtype, device=x.device, memory_format=layout)
        noise.bernoulli_(1 - self.p).div_(1 - self.p)
        return x * noise[self.world.rank * n : (self.world.rank + 1) * n]


def synchronise(model: nn.Module, device: torch.device, world: World) -> nn.Module:
    """`model` with every BatchNorm2d computing global-batch statistics (same parameters and
    buffers) and every Dropout drawing the global batch's mask."""
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    _replace(model, world, dist.new_group() if device.type != "cuda" else None)
    return model


def _replace(model: nn.Module, world: World, group) -> None:
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            bn = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            bn.group = group
            bn.weight, bn.bias = child.weight, child.bias
            bn.running_mean, bn.running_var, bn.num_batches_tracked = child.running_mean, child.running_var, child.num_batches_tracked
            setattr(model, name, bn)
        elif type(child) is nn.Dropout:
            setattr(model, name, GlobalDropout(child.p, world))
        else:
            _replace(child, world, group)


class NullLogger:
    """The tracking of processes other than 0: nothing."""

    run_id = None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass


@dataclass(frozen=True)
class RankJob:
    """What each process needs to build its part of the run (picklable)."""

    cfg: RunConfig
    method: str
    data_root: Path
    run_dir: Path
    device: str  # "cpu" or "cuda"
    tracking_uri: str
    experiment: str
    run_id: str
    init_checkpoint: Path | None
    threads: int


def train_distributed(job: RankJob, nproc: int):
    """Train `job` with `nproc` processes; the final evaluation of process 0 (an EvalResult)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex, rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0", max_restarts=0, start_method="spawn", monitor_interval=0.1,
    )  # fmt: skip
    try:
        return elastic_launch(config, _rank_main)(job)[0]
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = failure.message if isinstance(failure.message, str) else failure.message.get("message", "")
        raise RtrbenchError(f"{job.cfg.run_name}: process {rank} of {nproc} failed: {_last_line(message) or f'exit code {failure.exitcode}'}") from None


def _last_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _rank_main(job: RankJob):
    """One process of a distributed run (started by the elastic launcher)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_train_rank)(job)


def _train_rank(job: RankJob):
    from rtrbench.progress import ProgressView
    from rtrbench.registry import get_method
    from rtrbench.tracking import RunLogger, Tracking
    from rtrbench.trainer import RunContext, Trainer

    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}" if job.device == "cuda" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        world = World(rank, size)
        logger = RunLogger(Tracking(job.tracking_uri, job.experiment).client, job.run_id) if world.is_main else NullLogger()
        ctx = RunContext(
            job.cfg, get_method(job.method), job.data_root, job.run_dir, device, logger, ProgressView(enabled=False),
            job.init_checkpoint, job.threads, world,
        )  # fmt: skip
        result = Trainer(ctx).run()
        return result if world.is_main else None
    finally:
        dist.destroy_process_group()
