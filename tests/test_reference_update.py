"""The `pascal` preset reproduces the reference code's parameter update, not just its numbers.

One and two SGD steps of the trainer (momentum, weight decay, head lr ×10, poly schedule) on a
batch of N = 3 images are compared with a hand-written reference: the reference's losses
(`SegmentationLosses(batch_average=True)`: mean over labelled pixels, then ÷ N; Grid-TR's
`nll_error_loss`: Σ over labelled pixels ÷ #seeds ÷ N), their autograd gradient, and torch's
documented SGD formula written out (d = g + wd·θ; buf = d, then buf = m·buf + d; θ −= lr·buf).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from rtrbench.config import Preset, load_preset, resolve_run_config
from rtrbench.methods import PCEGD
from rtrbench.methods.base import Batch
from rtrbench.methods.grid_tr import GridTR
from rtrbench.progress import ProgressView
from rtrbench.trainer import RunContext, Trainer
from tests.test_trainer import FakeLogger

N = 3
EPS = 0.4


def pascal_like(method: str) -> Preset:
    """The pascal preset's optimiser settings on a tiny network and crop."""
    pascal = load_preset("pascal").train
    keys = ("lr", "head_lr_mult", "momentum", "weight_decay", "poly_power", "batch_average")
    train = {k: pascal[k] for k in keys} | {"epochs": 2, "batch_size": N}
    params = {"grid-tr": {"eps": EPS}}.get(method, {})
    return Preset.model_validate(
        {
            "data": {"crop_size": 32, "scale_min": 1.0, "scale_max": 1.0, "flip": False},
            "model": {"width_mult": 0.25, "decoder_channels": 16},
            "train": train,
            "methods": {method: {"params": params}},
        }
    )


def reference_loss(method: str, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    n, k = logits.shape[:2]
    log_q = F.log_softmax(logits, 1).permute(0, 2, 3, 1)  # N×H×W×K
    seeds = batch.scribbles.masked_fill(~batch.roi, 255)
    seeded = seeds != 255
    seed_ll = log_q[seeded].gather(1, seeds[seeded][:, None])[:, 0]
    if method == "pce-gd":
        return -seed_ll.mean() / n
    a = EPS / (k - 1)
    b = 1 - k * a
    proposal = batch.extra["proposal"].masked_fill(~batch.roi, 255)
    other = (proposal != 255) & ~seeded
    prop_q = log_q[other].gather(1, proposal[other][:, None])[:, 0].exp()
    return (-seed_ll.sum() - torch.log(a + b * prop_q).sum()) / seeded.sum() / n


def batch_of(trainer: Trainer, start: int, with_proposal: bool) -> Batch:
    from rtrbench.datasets.voc import collate

    raw = collate([trainer.train_set[i] for i in range(start, start + N)])
    batch = trainer._to_batch(raw)
    batch.image = batch.image.to(next(trainer.model.parameters()).dtype)
    if with_proposal:  # a proposal that disagrees with the GT here and there
        batch.extra["proposal"] = torch.where(torch.rand(batch.gt.shape) < 0.2, (batch.gt + 1) % 3, batch.gt)
    return batch


@pytest.mark.parametrize("method", [PCEGD, GridTR])
def test_two_sgd_steps_equal_the_reference_update(method, pascal_tree, tmp_path):
    cfg = resolve_run_config(pascal_like(method.name), method.name, 1.0, 0)
    assert cfg.train.batch_average  # the pascal preset follows the reference's loss scaling
    ctx = RunContext(cfg, method, pascal_tree, tmp_path / "run", torch.device("cpu"), FakeLogger(), ProgressView(enabled=False))
    trainer = Trainer(ctx)
    # float64: BatchNorm over a tiny batch amplifies float32 rounding between the two updates
    # (1e-7 in the weights became 1e-2 in the next gradient), which would hide real differences
    trainer.model.double()
    t = cfg.train
    total_iters = trainer.iters_per_epoch * t.epochs
    head = {id(p) for p in trainer.model.head_parameters()}

    reference = copy.deepcopy(trainer.model)
    params = list(reference.parameters())
    momentum: list[torch.Tensor | None] = [None] * len(params)
    for step in range(2):
        batch = batch_of(trainer, step * N, method is GridTR)
        torch.manual_seed(step)  # the same dropout mask in both forward passes
        grads = torch.autograd.grad(reference_loss(method.name, reference(batch.image), batch), params)
        lr = t.lr * (1 - step / total_iters) ** t.poly_power
        with torch.no_grad():
            for i, (p, g, mine) in enumerate(zip(params, grads, trainer.model.parameters())):
                d = g + t.weight_decay * p
                momentum[i] = d.clone() if momentum[i] is None else t.momentum * momentum[i] + d
                p -= (lr * t.head_lr_mult if id(mine) in head else lr) * momentum[i]
        torch.manual_seed(step)
        trainer.train_step(batch)
        for (name, mine), theirs in zip(trainer.model.named_parameters(), params):
            torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-12, msg=lambda m: f"{name} after step {step + 1}: {m}")


def test_without_batch_average_the_step_is_n_times_larger(pascal_tree, tmp_path):
    """The flag is what makes the difference: one step's change of the classifier weights."""
    changes = []
    for flag in (True, False):
        cfg = resolve_run_config(pascal_like("pce-gd"), "pce-gd", 1.0, 0, {"train.batch_average": flag, "train.weight_decay": 0.0})
        ctx = RunContext(cfg, PCEGD, pascal_tree, tmp_path / f"run{flag}", torch.device("cpu"), FakeLogger(), ProgressView(enabled=False))
        trainer = Trainer(ctx)
        # float64: in float32 a weight's change, read as (w + δ) − w, is off by up to an ulp of w
        trainer.model.double()
        before = trainer.model.classifier.weight.detach().clone()
        torch.manual_seed(0)
        trainer.train_step(batch_of(trainer, 0, False))
        changes.append(trainer.model.classifier.weight.detach() - before)
    torch.testing.assert_close(changes[1], N * changes[0], rtol=1e-4, atol=1e-8)
    assert math.isfinite(float(changes[0].abs().sum()))
