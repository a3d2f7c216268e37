"""The training loop shared by every method: SGD + poly schedule, evaluation, checkpoints, logging."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from rtrbench.atomic import write_atomic
from rtrbench.checkpoint import load_checkpoint, save_checkpoint
from rtrbench.config import RunConfig
from rtrbench.datasets.transforms import JointTransform
from rtrbench.datasets.labelio import write_label_png
from rtrbench.datasets.classes import read_class_names
from rtrbench.datasets.voc import ScribbleDataset, collate, scribble_dir
from rtrbench.distributed import EpochBatches, synchronise
from rtrbench.errors import ConfigError, NonFiniteLossError
from rtrbench.evaluate import EvalResult, evaluate
from rtrbench.methods.base import Batch, Method, MethodContext
from rtrbench.methods.world import World
from rtrbench.metrics import DEFAULT_TRIMAP_WIDTHS
from rtrbench.network import DeepLabV3Plus, load_backbone_weights
from rtrbench.progress import ProgressView
from rtrbench.tracking import RunLogger
from rtrbench.visualize import prediction_grid

LAST_CHECKPOINT = "last.pt"
N_PREVIEW = 4  # val images in the logged prediction grid
SYNC_EVERY = 10  # training steps between reads of the loss values (each read waits for the GPU)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class RunContext:
    """Where and how one run executes; nothing here changes its result (it is not hashed)."""

    cfg: RunConfig
    method: type[Method]
    data_root: Path
    run_dir: Path
    device: torch.device
    logger: RunLogger
    progress: ProgressView
    init_checkpoint: Path | None = None  # weights to fine-tune from (e.g. the PCE-GD run's)
    # CPUs the run may use: torch's intra-op threads, the method's worker pools
    threads: int = field(default_factory=torch.get_num_threads)
    world: World = World()  # this process's place among those training the run (`rtrbench.distributed`)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: expected cpu, cuda or auto")
    return torch.device(name)


def poly_factor(iteration: int, total: int, power: float) -> float:
    """The reference's poly schedule in closed form, lr = base · (1 − it/total)^power. Not
    torch's PolynomialLR: its recursive update drifts from this in the last bits (1e-15
    relative), so runs would no longer match the reference's arithmetic, nor earlier runs."""
    return (1 - min(iteration, total) / total) ** power


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


class Trainer:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        cfg, data = ctx.cfg, ctx.cfg.data
        torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
        torch.manual_seed(cfg.seed)
        self.class_names = read_class_names(ctx.data_root)
        k = len(self.class_names)
        world = ctx.world
        if cfg.train.batch_size % world.size:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size}: not divisible by the {world.size} processes of the run")
        method_ctx = MethodContext(k, self.class_names, ctx.device, ctx.run_dir, cfg.train.batch_average, ctx.threads, world)
        self.method = ctx.method(ctx.method.Params.model_validate(cfg.params), method_ctx)
        transform = JointTransform(data.crop_size, data.scale_min, data.scale_max, data.flip)
        self.train_set = ScribbleDataset(
            ctx.data_root, "train", cfg.length, transform, self.method.extra_maps(), cfg.seed, data.cache_mb / 2
        )
        self.val_set = ScribbleDataset(ctx.data_root, "val", cache_mb=data.cache_mb / 2)
        self.model = DeepLabV3Plus(k, cfg.model.width_mult, cfg.model.decoder_channels, cfg.model.output_stride)
        if cfg.model.backbone_weights is not None:
            load_backbone_weights(self.model, cfg.model.backbone_weights)
        if ctx.init_checkpoint is not None:
            self.model.load_state_dict(load_checkpoint(ctx.init_checkpoint)["model"])
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        if world.size > 1:
            self.model = synchronise(self.model, ctx.device, world)
        self.model.to(ctx.device, memory_format=self.memory_format)
        self.net = self.model  # what a training step runs: the model, or its DDP wrapper
        if world.size > 1:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            # BatchNorm's running statistics are the global batch's on every process already
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids, forward_sync_buffers=False)
        t = cfg.train
        self.optimizer = torch.optim.SGD(
            [
                {"params": self.model.backbone_parameters(), "lr": t.lr},
                {"params": self.model.head_parameters(), "lr": t.lr * t.head_lr_mult},
            ],
            lr=t.lr,
            momentum=t.momentum,
            weight_decay=t.weight_decay,
        )
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=t.amp == "fp16")
        self._train_loader: DataLoader | None = None
        self.iters_per_epoch = max(1, len(self.train_set) // t.batch_size)
        total = self.iters_per_epoch * t.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda it: poly_factor(it, total, t.poly_power))
        self.start_epoch = self._resume()

    # -- state -----------------------------------------------------------------------------
    def _resume(self) -> int:
        path = self.ctx.run_dir / LAST_CHECKPOINT
        if not path.is_file():
            return 0
        state = load_checkpoint(path)
        if state.get("config_hash") != self.ctx.cfg.config_hash():
            return 0  # a checkpoint of another config in this folder is never reused
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        return int(state["epoch"])

    def _save(self, epoch: int) -> None:
        if self.ctx.world.is_main:
            self._save_checkpoint(epoch)
        self.ctx.world.barrier()

    def _save_checkpoint(self, epoch: int) -> None:
        save_checkpoint(
            self.ctx.run_dir / LAST_CHECKPOINT,
            {
                "epoch": epoch,
                "config_hash": self.ctx.cfg.config_hash(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
            },
        )

    # -- loop ------------------------------------------------------------------------------
    def run(self) -> EvalResult:
        # process-wide settings, left as they were found: threads, and cuDNN's autotuner
        # (fastest kernels for the fixed crop size; off when deterministic kernels are asked for)
        threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
        torch.set_num_threads(self.ctx.threads)
        torch.backends.cudnn.benchmark = self.ctx.device.type == "cuda" and not self.ctx.cfg.train.deterministic
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads)
            torch.backends.cudnn.benchmark = benchmark
            self._train_loader = None  # its workers stop with it
            self.method.close()

    def _run(self) -> EvalResult:
        cfg, ctx = self.ctx.cfg, self.ctx
        ctx.progress.start_run(cfg.run_name, cfg.train.epochs, self.start_epoch)
        result = None
        for epoch in range(self.start_epoch + 1, cfg.train.epochs + 1):
            self._train_epoch(epoch)
            if epoch % cfg.train.eval_every == 0 and epoch < cfg.train.epochs:
                result = self._evaluate()
                ctx.logger.log_metrics({"val_miou": result.miou}, step=epoch)
            self._save(epoch)  # last: a run killed before this repeats the whole epoch, evaluation included
            ctx.progress.epoch_done(f"val mIoU {result.miou:.3f}" if result else "")
        final = self._evaluate(DEFAULT_TRIMAP_WIDTHS, keep=self.val_set.ids[:N_PREVIEW])
        if ctx.world.is_main:
            self._log_final(final)
        ctx.world.barrier()
        ctx.progress.end_run()
        return final

    def _train_epoch(self, epoch: int) -> None:
        ctx, t = self.ctx, self.ctx.cfg.train
        started = time.perf_counter()
        torch.manual_seed(_epoch_seed(ctx.cfg.seed, epoch))  # dropout etc.: resumable per epoch
        self.model.train()
        world = ctx.world
        hook_metrics = self.method.on_epoch_start(epoch, self.model, self.train_set)  # on every process
        self.train_set.set_epoch(epoch)
        loader = self._loader(epoch)
        ctx.progress.start_epoch(epoch, len(loader))
        sums: dict[str, float] = {}
        pending: list[tuple[str, list[str], dict[str, torch.Tensor]]] = []
        for index, raw in enumerate(loader):
            batch = self._to_batch(raw)
            pending.append((f"epoch {epoch}, batch {index}", batch.ids, self.train_step(batch)))
            if len(pending) == SYNC_EVERY or index == len(loader) - 1:
                values = self._fetch(pending)
                for step_values in values:
                    for name, value in step_values.items():
                        sums[name] = sums.get(name, 0.0) + value
                ctx.progress.iterations_done(len(pending), sum(values[-1].values()))
                pending = []
        n = max(1, len(loader))
        if world.size > 1:  # each process's terms are its share of the global batch's
            names = list(sums)
            totals = world.total(torch.tensor([sums[name] for name in names], dtype=torch.float64, device=ctx.device))
            sums = dict(zip(names, (totals / world.size).tolist()))
        metrics = {f"train_{name}_loss": value / n for name, value in sums.items()}
        metrics["train_loss"] = sum(sums.values()) / n
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["epoch_seconds"] = time.perf_counter() - started
        ctx.logger.log_metrics({**metrics, **hook_metrics, **self.method.epoch_metrics()}, step=epoch)

    def _loader(self, epoch: int) -> DataLoader:
        """The training loader, made once per run and told the epoch through its sampler: the
        order of a shuffling loader seeded by (seed, epoch), under DDP this process's share of
        each batch. Its workers (`data.num_workers`) live for the whole run; starting them each
        epoch costs seconds on large sets."""
        if self._train_loader is None:
            t, workers = self.ctx.cfg.train, self.ctx.cfg.data.num_workers
            drop_last = len(self.train_set) >= t.batch_size  # a batch of 1 breaks BatchNorm statistics
            batches = EpochBatches(len(self.train_set), t.batch_size, drop_last, self.ctx.world, lambda e: _epoch_seed(self.ctx.cfg.seed, e))
            # its own generator for the workers' base seed: drawing it from torch's global one
            # would shift the dropout masks
            self._train_loader = DataLoader(
                self.train_set, batch_sampler=batches, num_workers=workers, persistent_workers=workers > 0,
                collate_fn=collate, pin_memory=self.ctx.device.type == "cuda", generator=torch.Generator(),
            )  # fmt: skip
        self._train_loader.batch_sampler.epoch = epoch
        return self._train_loader

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One SGD step on `batch`; returns the loss terms, detached, where they were computed
        (reading them would wait for the device: `_fetch` reads several steps at once)."""
        amp = self.ctx.cfg.train.amp
        # the network in its memory format and (with train.amp) precision; the methods' losses
        # see plain NCHW float32 tensors, so every regularizer and solver runs in fp32
        with torch.autocast(self.ctx.device.type, dtype=AMP_DTYPES.get(amp), enabled=amp != "off"):
            logits = self.net(batch.image.contiguous(memory_format=self.memory_format))
        if amp != "off":
            logits = logits.float()
        terms = self.method.loss(logits.contiguous(), batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(sum(terms.values())).backward()
        self.scaler.step(self.optimizer)  # with fp16, skipped where the scaled gradients overflowed
        self.scaler.update()
        self.scheduler.step()
        return {name: term.detach() for name, term in terms.items()}

    def _fetch(self, steps: list[tuple[str, list[str], dict[str, torch.Tensor]]]) -> list[dict[str, float]]:
        """The loss terms of (where, image ids, terms) steps, read in one transfer; a NaN or
        infinite term stops the run, naming its step, images and term."""
        names = list(steps[0][2])
        rows = torch.stack([torch.stack([terms[n].float() for n in names]) for _, _, terms in steps]).tolist()
        for (where, ids, _), row in zip(steps, rows):
            for name, value in zip(names, row):
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"{self.ctx.cfg.run_name}: loss term '{name}' is {value} at {where} "
                        f"(images {', '.join(ids[:4])}{', ...' if len(ids) > 4 else ''})"
                    )
        return [dict(zip(names, row)) for row in rows]

    def _to_batch(self, raw: dict) -> Batch:
        device = self.ctx.device
        core = ("image", "scribbles", "gt", "roi", "id", "size")
        return Batch(
            image=raw["image"].to(device, non_blocking=True),
            scribbles=raw["scribbles"].to(device, non_blocking=True),
            gt=raw["gt"].to(device, non_blocking=True),
            roi=raw["roi"].to(device, non_blocking=True),
            ids=raw["id"],
            extra={k: v.to(device, non_blocking=True) for k, v in raw.items() if k not in core},
        )

    def _evaluate(self, trimap_widths: tuple[int, ...] | None = None, keep: Sequence[str] = ()) -> EvalResult:
        k, workers = len(self.class_names), self.ctx.cfg.data.num_workers
        return evaluate(self.model, self.val_set, k, self.ctx.device, trimap_widths, keep, workers, self.ctx.world)

    # -- results ---------------------------------------------------------------------------
    def _log_final(self, result: EvalResult) -> None:
        ctx, epochs = self.ctx, self.ctx.cfg.train.epochs
        out = ctx.run_dir / "final"
        out.mkdir(parents=True, exist_ok=True)
        logger = ctx.logger
        logger.log_metrics({"val_miou": result.miou}, step=epochs)
        logger.log_metrics({f"iou_{name}": iou for name, iou in zip(self.class_names, result.class_iou)}, step=epochs)
        for width, miou in result.trimap.items():
            logger.log_metrics({"trimap_miou": miou}, step=width)

        # atomic: a fine-tuning run, maybe in another process, reads model.pt the moment it exists
        write_atomic(out / "config.json", lambda tmp: tmp.write_text(json.dumps(ctx.cfg.model_dump(mode="json"), indent=2)))
        confusion = pd.DataFrame(result.confusion, index=self.class_names, columns=self.class_names)
        tables = {
            "confusion.csv": confusion.rename_axis("gt \\ prediction"),
            "trimap.csv": pd.DataFrame({"width_px": list(result.trimap), "miou": list(result.trimap.values())}),
            "class_iou.csv": pd.DataFrame({"class": self.class_names, "iou": result.class_iou}),
        }
        for name, frame in tables.items():
            write_atomic(out / name, lambda tmp: frame.to_csv(tmp, index=name == "confusion.csv"))
        save_checkpoint(out / "model.pt", {"model": self.model.state_dict(), "config": ctx.cfg.model_dump(mode="json")})
        previews = self._preview(result.predictions, out / "predictions.png", out / "preview")
        for name in ("config.json", "confusion.csv", "trimap.csv", "class_iou.csv", "predictions.png"):
            logger.log_artifact(out / name)
        for path in previews:
            logger.log_artifact(path, "preview")
        logger.log_artifact(out / "model.pt", "checkpoint")

    def _preview(self, predictions: dict[str, np.ndarray], grid_path: Path, folder: Path) -> list[Path]:
        """The prediction grid, and per preview image its files for the report's qualitative grid.

        The first N_PREVIEW val images in val.txt order, so every run of a sweep shows the same
        ones, with the very predictions the final evaluation scored: `<id>_image.jpg` (the
        original bytes), `<id>_gt.png`, `<id>_pred.png` and, where the data set has val
        scribbles at this length, `<id>_scribbles.png`.
        """
        folder.mkdir(parents=True, exist_ok=True)
        images, gts, preds, files = [], [], [], []
        for index in range(min(N_PREVIEW, len(self.val_set))):
            s = self.val_set.load(index)
            pred = predictions[s.image_id]
            images.append(s.image)
            gts.append(s.maps["gt"])
            preds.append(pred)
            files += self._preview_files(s.image_id, pred, folder)
        prediction_grid(images, gts, preds, grid_path)
        return files

    def _preview_files(self, image_id: str, pred: np.ndarray, folder: Path) -> list[Path]:
        sources = self.val_set.paths(image_id)
        copies = {"image.jpg": sources["image"], "gt.png": sources["gt"]}
        scribbles = self.ctx.data_root / scribble_dir(self.ctx.cfg.length) / f"{image_id}.png"
        if scribbles.is_file():
            copies["scribbles.png"] = scribbles
        files = []
        for suffix, source in copies.items():
            files.append(folder / f"{image_id}_{suffix}")
            shutil.copyfile(source, files[-1])
        files.append(folder / f"{image_id}_pred.png")
        write_label_png(files[-1], pred)
        return files
