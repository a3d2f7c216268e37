"""The shared training loop: schedule, logging schema, non-finite losses, checkpoints and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rtrbench.checkpoint import load_checkpoint, save_checkpoint
from rtrbench.config import Preset, resolve_run_config
from rtrbench.datasets.labelio import read_label_png, write_label_png
from rtrbench.datasets.voc import collate
from rtrbench.errors import DataError, NonFiniteLossError
from rtrbench.methods import Method, PCEGD
from rtrbench.metrics import DEFAULT_TRIMAP_WIDTHS
from rtrbench.progress import ProgressView
from rtrbench.distributed import EpochBatches
from rtrbench.methods.world import World
from rtrbench.trainer import AMP_DTYPES, LAST_CHECKPOINT, RunContext, Trainer, poly_factor

TINY = Preset.model_validate(
    {
        "data": {"crop_size": 32, "scale_min": 0.8, "scale_max": 1.2},
        "model": {"width_mult": 0.25, "decoder_channels": 16},
        "train": {"epochs": 2, "batch_size": 3, "lr": 0.01, "eval_every": 1},
    }
)


class FakeLogger:
    run_id = "fake"

    def __init__(self):
        self.metrics: list[tuple[str, float, int]] = []
        self.artifacts: list[tuple[str, str | None]] = []

    def log_metrics(self, metrics, step):
        self.metrics += [(k, float(v), step) for k, v in metrics.items()]

    def log_artifact(self, path, artifact_path=None):
        assert path.is_file()
        self.artifacts.append((path.name, artifact_path))

    def series(self, key):
        return [(step, value) for k, value, step in self.metrics if k == key]


def context(root, tmp_path, method=PCEGD, logger=None, **overrides):
    cfg = resolve_run_config(TINY, method.name, 1.0, 0, overrides)
    return RunContext(cfg, method, root, tmp_path / "run", torch.device("cpu"), logger or FakeLogger(), ProgressView(enabled=False))


def test_poly_schedule():
    assert poly_factor(0, 100, 0.9) == 1.0
    assert poly_factor(50, 100, 0.9) == pytest.approx(0.5**0.9)
    assert poly_factor(100, 100, 0.9) == 0.0


def test_run_logs_the_schema(pascal_tree, tmp_path):
    val_scribbles = np.full((40, 48), 255, np.uint8)
    val_scribbles[5, 5:20] = 1
    write_label_png(pascal_tree / "pascal_2012_scribble" / "va1.png", val_scribbles)  # one val image has scribbles
    ctx = context(pascal_tree, tmp_path)
    trainer = Trainer(ctx)
    groups = trainer.optimizer.param_groups
    assert groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])  # head lr is 10× the backbone's
    result = trainer.run()
    log = ctx.logger
    for key in ("train_loss", "train_ce_loss", "lr", "epoch_seconds"):
        assert [step for step, _ in log.series(key)] == [1, 2], key
    assert [step for step, _ in log.series("val_miou")] == [1, 2]
    assert log.series("val_miou")[-1][1] == pytest.approx(result.miou)
    assert [step for step, _ in log.series("trimap_miou")] == list(DEFAULT_TRIMAP_WIDTHS)
    assert {k for k, _, _ in log.metrics if k.startswith("iou_")} == {"iou_background", "iou_square", "iou_bar"}
    assert log.series("lr")[0][1] < 0.01  # the poly schedule decays within the first epoch
    names = {name for name, folder in log.artifacts if folder is None}
    assert names == {"config.json", "confusion.csv", "trimap.csv", "class_iou.csv", "predictions.png"}
    assert ("model.pt", "checkpoint") in log.artifacts
    previews = {name for name, folder in log.artifacts if folder == "preview"}
    assert previews == {f"va{i}_{s}" for i in range(3) for s in ("image.jpg", "gt.png", "pred.png")} | {"va1_scribbles.png"}
    pred = read_label_png(tmp_path / "run" / "final" / "preview" / "va2_pred.png")
    assert pred.shape == (40, 48) and pred.max() < 3
    assert np.array_equal(read_label_png(tmp_path / "run" / "final" / "preview" / "va1_scribbles.png"), val_scribbles)
    assert 0.0 <= result.miou <= 1.0


class NaNMethod(Method):
    name = "nan"
    description = "returns NaN on purpose"

    def loss(self, logits, batch):
        return {"ce": logits.mean() * 0, "reg": logits.sum() * math.nan}


def test_non_finite_loss_stops_with_batch_and_term(pascal_tree, tmp_path):
    with pytest.raises(NonFiniteLossError) as info:
        Trainer(context(pascal_tree, tmp_path, NaNMethod)).run()
    message = str(info.value)
    assert "loss term 'reg' is nan at epoch 1, batch 0" in message and "images tr" in message


def test_resume_from_last_checkpoint_gives_the_same_model(pascal_tree, tmp_path):
    full = Trainer(context(pascal_tree, tmp_path / "a"))
    full.run()
    # Stop after epoch 1 (the checkpoint an interrupted run leaves), then resume to epoch 2.
    part = Trainer(context(pascal_tree, tmp_path / "b", **{"train.epochs": 2}))
    part._train_epoch(1)
    part._save(1)
    resumed = Trainer(context(pascal_tree, tmp_path / "b"))
    assert resumed.start_epoch == 1
    resumed.run()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_checkpoint_of_another_config_is_not_reused(pascal_tree, tmp_path):
    ctx = context(pascal_tree, tmp_path)
    save_checkpoint(ctx.run_dir / LAST_CHECKPOINT, {"epoch": 1, "config_hash": "other"})
    assert Trainer(ctx).start_epoch == 0


def test_checkpoint_round_trip_is_atomic(tmp_path):
    state = {"epoch": 3, "model": {"w": torch.arange(4.0)}}
    path = tmp_path / "ck" / "last.pt"
    save_checkpoint(path, state)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], state["model"]["w"])
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="last.pt: cannot read checkpoint"):
        load_checkpoint(path)


def test_runtime_keys_change_neither_the_hash_nor_the_weights(pascal_tree, tmp_path):
    """Intermediate evaluations and the decoded-file cache are left out of the run's identity:
    a run evaluated every epoch and without a cache ends with the same weights, bit for bit."""
    plain = context(pascal_tree, tmp_path / "a", **{"train.eval_every": 5, "data.cache_mb": 0})
    other = context(pascal_tree, tmp_path / "b", **{"train.eval_every": 1, "data.cache_mb": 64})
    assert plain.cfg.config_hash() == other.cfg.config_hash()
    a, b = Trainer(plain), Trainer(other)
    a.run()
    b.run()
    assert len(other.logger.series("val_miou")) == 2 and len(plain.logger.series("val_miou")) == 1
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name


def test_channels_last_computes_the_same_step_up_to_rounding(pascal_tree, tmp_path):
    """NHWC is a memory layout: one step's loss and gradients in NHWC are as close to a float64
    reference as NCHW's float32 ones (kernels sum in another order, so not bit-equal); and
    the layout is part of the run's hash."""
    nchw = Trainer(context(pascal_tree, tmp_path / "a", **{"train.channels_last": False}))
    nhwc = Trainer(context(pascal_tree, tmp_path / "b"))
    exact = Trainer(context(pascal_tree, tmp_path / "c", **{"train.channels_last": False}))
    assert nchw.ctx.cfg.config_hash() != nhwc.ctx.cfg.config_hash()
    assert nhwc.model.classifier.weight.is_contiguous(memory_format=torch.channels_last)
    for trainer in (nhwc, exact):
        trainer.model.load_state_dict(nchw.model.state_dict())
    exact.model.double()
    raw = next(iter(torch.utils.data.DataLoader(nchw.train_set, batch_size=3, collate_fn=collate)))
    losses, grads = [], []
    for trainer in (exact, nchw, nhwc):
        trainer.model.train()
        for m in trainer.model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0  # dropout draws its mask in memory order: another mask in NHWC
        batch = trainer._to_batch(raw)
        image = batch.image.to(next(trainer.model.parameters()).dtype)
        terms = trainer.method.loss(trainer.model(image.contiguous(memory_format=trainer.memory_format)).contiguous(), batch)
        trainer.model.zero_grad()
        sum(terms.values()).backward()
        losses.append(float(sum(terms.values()).detach()))
        grads.append(torch.cat([p.grad.double().flatten() for p in trainer.model.parameters()]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5) and losses[2] == pytest.approx(losses[0], rel=1e-4)
    # Relative error of all gradients against float64: measured 7e-5 (NCHW) and 5e-4 (NHWC,
    # oneDNN's kernels) through ~50 layers of train-mode BatchNorm on 3 images; a layout bug
    # (mixed-up channels or pixels) makes it of order 1.
    error_nchw, error_nhwc = (torch.linalg.vector_norm(g - grads[0]) / torch.linalg.vector_norm(grads[0]) for g in grads[1:])
    assert error_nchw < 1e-3 and error_nhwc < 5e-3, (error_nchw, error_nhwc)


class DtypeProbe(PCEGD):
    name = "probe"
    description = "PCE-GD recording the dtype of the logits it is given"
    seen: list[torch.dtype] = []

    def loss(self, logits, batch):
        DtypeProbe.seen.append(logits.dtype)
        return super().loss(logits, batch)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_runs_the_network_only_and_trains(pascal_tree, tmp_path, amp):
    """With train.amp the network computes in half precision, the losses get float32 logits,
    fp16 scales the loss (its scaler is checkpointed), and from the same weights the first
    step's loss is fp32's up to half-precision rounding."""
    DtypeProbe.seen = []
    first = {}
    for mode in ("off", amp):
        ctx = context(pascal_tree, tmp_path / mode, DtypeProbe, **{"train.amp": mode, "train.epochs": 1})
        trainer = Trainer(ctx)
        # BatchNorm on its running statistics, no dropout: train-mode BatchNorm over a batch of
        # three 40-px crops (3×3 features at the deepest layer) amplifies half-precision
        # rounding to ~40 % of the logits, which would say nothing about the step itself
        trainer.model.eval()
        computed = set()
        trainer.model.classifier.register_forward_hook(lambda module, args, out: computed.add(out.dtype))
        raw = next(iter(torch.utils.data.DataLoader(trainer.train_set, batch_size=3, collate_fn=collate)))
        first[mode] = float(sum(trainer.train_step(trainer._to_batch(raw)).values()))
        trainer.run()
        assert AMP_DTYPES.get(mode, torch.float32) in computed  # training steps (evaluation is in fp32)
        assert math.isfinite(ctx.logger.series("train_loss")[0][1])
        assert trainer.scaler.is_enabled() == (mode == "fp16")
        assert "scaler" in load_checkpoint(ctx.run_dir / LAST_CHECKPOINT)
    assert set(DtypeProbe.seen) == {torch.float32}
    # bf16 keeps 8 bits of mantissa (0.4 % per rounding) through ~50 layers; a step computed
    # in the wrong precision or on wrong tensors is off by far more
    assert first[amp] == pytest.approx(first["off"], rel=0.03)


def test_loader_workers_living_across_epochs_see_the_same_batches(pascal_tree, tmp_path):
    """With data.num_workers the training loader's workers persist for the run and are told the
    epoch through the sampler: the weights after two epochs equal a run without workers, bit
    for bit (data.num_workers is not part of the run's identity)."""
    runs = [Trainer(context(pascal_tree, tmp_path / str(n), **{"data.num_workers": n})) for n in (0, 1)]
    for trainer in runs:
        trainer._train_epoch(1)
        trainer._train_epoch(2)
    assert runs[1]._train_loader.persistent_workers
    for (name, a), b in zip(runs[0].model.state_dict().items(), runs[1].model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(("n", "batch", "drop_last"), [(20, 4, True), (21, 4, True), (21, 4, False), (3, 8, False)])
def test_the_epoch_batches_are_a_shuffling_loaders(n, batch, drop_last):
    """The trainer's sampler gives the batches of `DataLoader(shuffle=True)` with the epoch's
    generator (the order of every run so far), and under DDP each process's contiguous share."""
    for epoch in (1, 2, 7):
        loader = torch.utils.data.DataLoader(
            range(n), batch_size=batch, shuffle=True, drop_last=drop_last, generator=torch.Generator().manual_seed(100 + epoch)
        )
        expected = [b.tolist() for b in loader]
        batches = EpochBatches(n, batch, drop_last, World(), lambda e: 100 + e)
        batches.epoch = epoch
        assert [[i for _, i in b] for b in batches] == expected and len(batches) == len(expected)
        assert {e for b in batches for e, _ in b} == {epoch}
        if batch % 2 == 0 and drop_last:
            shares = [EpochBatches(n, batch, drop_last, World(rank, 2), lambda e: 100 + e) for rank in (0, 1)]
            for share in shares:
                share.epoch = epoch
            assert [[i for _, i in a + b] for a, b in zip(*shares)] == expected
