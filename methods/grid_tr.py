"""Grid-TR (Algorithm 1): robust trust region with α-expansion proposals (stage A) and the
robust cross-entropy against them (stage B); stage A runs every M epochs (amortisation)."""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Literal

import numpy as np
import torch

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rtrbench.datasets.labelio import IGNORE, write_label_png
from rtrbench.errors import ConfigError
from rtrbench.methods.base import Batch, Method, MethodContext
from rtrbench.methods.losses.robust import eps_from_weight, robust_cross_entropy
from rtrbench.methods.solvers.proposal_passes import ProposalPasses
from rtrbench.methods.solvers.stage_a import StageAProblem, StageAResult, solve
from rtrbench.metrics import ConfusionAccumulator

PROB_BATCH = 16  # un-augmented images per forward pass in stage A
# Below this many training images stage A is solved inline: starting the worker processes
# (each imports torch) costs more than a pass over so few images (the smoke preset's 24).
MIN_IMAGES_FOR_POOL = 64


DEFAULT_PROPOSAL_WEIGHT = 0.05  # r; the reference's ε table spans r ≈ 0.004 … 0.16 (K = 21)


class GridTRParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Robustness of stage B, as one of: `proposal_weight` r in (0, 1], the most a proposal
    # pixel weighs against a seed (means the same for any K), or the paper's ε of eq. 24
    # (needs ε < (K−1)/K). Neither: r = DEFAULT_PROPOSAL_WEIGHT. See `rtrbench.methods.losses.robust`.
    proposal_weight: float | None = Field(None, gt=0, le=1)
    eps: float | None = Field(None, ge=0, lt=1)
    lam: float = Field(1.0, gt=0)  # λ: weight of the unary −log q in stage A
    nu: float = Field(10.0, ge=0)  # ν: weight of the 8-grid Potts term in stage A
    every: int = Field(5, ge=1)  # M: stage A once every M epochs
    max_sweeps: int = Field(5, ge=0)  # α-expansion sweeps over the labels
    # Start of the first pass (later passes start from the previous proposal): "unary" = the
    # best allowed label per pixel; "lowest" = the lowest allowed label everywhere, as the
    # reference code does (its x0 is all zeros over the restricted label set).
    init: Literal["unary", "lowest"] = "unary"

    @model_validator(mode="after")
    def _one_robustness(self) -> GridTRParams:
        if self.eps is not None and self.proposal_weight is not None:
            raise ValueError("give either eps or proposal_weight, not both")
        return self

    def robust_eps(self, num_classes: int) -> float:
        if self.eps is not None:
            return self.eps
        return eps_from_weight(self.proposal_weight or DEFAULT_PROPOSAL_WEIGHT, num_classes)


class GridTR(Method):
    name = "grid-tr"
    description = "robust trust region: alpha-expansion proposals on the 8-grid + robust cross-entropy (Alg. 1)"
    Params = GridTRParams
    init_from = "pce-gd"

    def __init__(self, params: GridTRParams, ctx: MethodContext) -> None:
        super().__init__(params, ctx)
        k = ctx.num_classes
        self.eps = params.robust_eps(k)
        if self.eps >= (k - 1) / k:
            raise ConfigError(f"grid-tr: eps {self.eps} must be < (K-1)/K = {(k - 1) / k:.4f} for K = {k} classes")
        self.passes = ProposalPasses(ctx.run_dir / "proposals")
        self._executor: Executor | None = None

    # -- stage B -----------------------------------------------------------------------------
    def extra_maps(self) -> Mapping[str, object]:
        return {"proposal": self.passes}  # the newest complete pass; picklable for loader workers

    def loss(self, logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        seeds = batch.scribbles.masked_fill(~batch.roi, IGNORE)
        proposal = batch.extra["proposal"].masked_fill(~batch.roi, IGNORE)
        return {"robust_ce": self.batch_averaged(robust_cross_entropy(logits, proposal, seeds, self.eps, self.ctx.world), batch)}

    # -- stage A -----------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, model: torch.nn.Module, train_set) -> dict[str, float]:
        """Make sure the pass this epoch trains on exists: the pass of the last due epoch.

        A pass is a function of the model at the start of its epoch, which the checkpoint of
        the epoch before holds; so a pass found complete after a kill is exactly the pass an
        uninterrupted run computes, and is reused (its metrics logged again) rather than solved
        again from a different start.
        """
        due = epoch - (epoch - 1) % self.params.every
        world = self.ctx.world
        latest = self.passes.latest()
        world.barrier()  # every process has read the folder before process 0 changes it
        if latest is not None and latest > due:  # from epochs the checkpoint does not hold
            if world.is_main:
                self.passes.keep_only(None)
            latest = None
        if latest == due:
            return self.passes.metrics(due) if epoch == due else {}
        workers = self.ctx.threads if len(train_set) >= MIN_IMAGES_FOR_POOL else 1
        return self.stage_a(model, train_set, due, self._pool(workers))

    def stage_a(self, model: torch.nn.Module, train_set, epoch: int, executor: Executor | None) -> dict[str, float]:
        """One pass over the training set, published as the pass of `epoch`; its metrics returned.
        With several processes each solves every `world.size`-th image into the same private
        folder, and process 0 publishes the pass once all have written."""
        started = time.perf_counter()
        world = self.ctx.world
        folder = world.broadcast(self.passes.begin(epoch) if world.is_main else None)
        k = self.ctx.num_classes
        conf, network_conf = ConfusionAccumulator(k), ConfusionAccumulator(k)
        totals = {"energy_init": 0.0, "energy": 0.0, "changed": 0, "pixels": 0, "violations": 0}
        gts: dict[str, np.ndarray] = {}
        problems = self._problems(model, train_set, gts, network_conf)
        for result in _solve_all(problems, executor, 4 * self.ctx.threads):
            write_label_png(folder / f"{result.image_id}.png", result.labels)  # private until committed
            conf.update(gts.pop(result.image_id), result.labels)
            totals["energy_init"] += result.energy_init
            totals["energy"] += result.energy
            totals["changed"] += result.changed
            totals["pixels"] += result.labels.size
            totals["violations"] += result.seed_violations
        if world.size > 1:  # the sums over every process's images
            packed = world.total(torch.tensor([*totals.values(), *conf.matrix.ravel(), *network_conf.matrix.ravel()], dtype=torch.float64))
            totals = dict(zip(totals, packed[: len(totals)].tolist()))
            conf.matrix, network_conf.matrix = packed[len(totals) :].view(2, k, k).long().numpy()
        metrics = {
            "stageA_energy_init": totals["energy_init"],
            "stageA_energy": totals["energy"],
            "stageA_changed_frac": totals["changed"] / max(1, totals["pixels"]),
            "stageA_seconds": time.perf_counter() - started,
            "stageA_seed_violations": float(totals["violations"]),
            "stageA_proposal_miou": conf.mean_iou(),
            # the network's own argmax on the same images: the baseline stage A must beat
            "stageA_network_miou": network_conf.mean_iou(),
        }
        if world.is_main:  # the sums above waited for every process
            self.passes.commit(folder, epoch, metrics)
        world.barrier()
        return metrics

    def _problems(
        self, model: torch.nn.Module, train_set, gts: dict[str, np.ndarray], network_conf: ConfusionAccumulator
    ) -> Iterator[StageAProblem]:
        """Stage-A problems in order; −log q from the network in eval mode, batched by image size.
        The network's argmax is scored against the GT on the way (`network_conf`)."""
        p = self.params
        was_training = model.training
        model.eval()
        try:
            world = self.ctx.world
            for start in range(0, len(train_set), PROB_BATCH):
                samples = [train_set.load(i) for i in range(start, min(start + PROB_BATCH, len(train_set)))]
                # every process runs the network on the same batches (a prediction can round
                # differently in another batch), then keeps its own images
                mine = [
                    pair for i, pair in enumerate(zip(samples, self._neg_log_q(model, samples)), start)
                    if i % world.size == world.rank
                ]  # fmt: skip
                for sample, neg_log_q in mine:
                    gts[sample.image_id] = sample.maps["gt"]
                    network_conf.update(sample.maps["gt"], neg_log_q.argmin(-1))
                    previous = sample.maps.get("proposal")
                    has_previous = previous is not None and (previous != IGNORE).all()
                    yield StageAProblem(
                        sample.image_id, sample.image, p.lam * neg_log_q, sample.maps["scribbles"],
                        previous if has_previous else None, p.nu, p.max_sweeps, p.init,
                    )  # fmt: skip
        finally:
            model.train(was_training)

    @torch.no_grad()
    def _neg_log_q(self, model: torch.nn.Module, samples) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(samples)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(samples):
            by_size.setdefault(s.image.shape[:2], []).append(i)
        for indices in by_size.values():
            images = torch.from_numpy(np.stack([samples[i].image for i in indices])).permute(0, 3, 1, 2).float()
            log_q = torch.log_softmax(model(images.to(self.ctx.device)), 1)
            # contiguous H×W×K arrays: sums over them then run in one order inline and in the pool
            for i, lq in zip(indices, (-log_q).permute(0, 2, 3, 1).float().contiguous().cpu().numpy()):
                out[i] = lq
        return out

    def _pool(self, workers: int) -> Executor | None:
        """Worker processes for stage A (None: solve inline), started once per run."""
        if workers > 1 and self._executor is None:
            # spawn: forking a process that runs torch threads can deadlock the children
            # (the solvers are single-threaded numpy and PyMaxflow: one worker per CPU)
            self._executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        return self._executor if workers > 1 else None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None


def _solve_all(problems: Iterator[StageAProblem], executor: Executor | None, limit: int) -> Iterator[StageAResult]:
    """Solve in order; with an executor, keep at most `limit` problems in flight."""
    if executor is None:
        yield from map(solve, problems)
        return
    pending: deque[Future] = deque()
    for problem in problems:
        pending.append(executor.submit(solve, problem))
        if len(pending) >= limit:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()

