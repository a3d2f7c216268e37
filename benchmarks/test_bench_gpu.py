"""The GPU runtime at the `pascal` preset's scale (crop 513, batch 12, MobileNetV2 width 1,
K = 21) on synthetic 513-px data: each method's training step, fp32 and bf16, in images/s and
relative to PCE-GD; Grid-TR's stage A per image; the torch permutohedral lattice on CUDA
against pydensecrf2 on the CPU. Needs a CUDA device (skipped without one):

    .venv/bin/pytest benchmarks/test_bench_gpu.py --benchmark-enable -s

Each step is timed between CUDA synchronisations, so the figures are the GPU's work, data
loading excluded (the batch is already on the device). Grid-TR's amortised step adds its
stage A per image × batch / M (stage A runs once every M epochs over the training set).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rtrbench.config import load_preset, resolve_run_config
from rtrbench.datasets.specs import SynthConfig
from rtrbench.datasets.synth_cache import ensure_synthetic
from rtrbench.datasets.voc import collate
from rtrbench.progress import ProgressView
from rtrbench.registry import get_method
from rtrbench.trainer import RunContext, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

METHODS = ("pce-gd", "dense-gd", "grid-gd", "grid-tr", "soft-sl")
STEPS = 10


class NoLogger:
    run_id = "benchmark"

    def log_metrics(self, metrics, step):
        pass

    def log_artifact(self, path, artifact_path=None):
        pass


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    # 24 training images: two batches of 12, and a stage-A pass long enough to time
    return ensure_synthetic(SynthConfig(n_train=24, n_val=2, size=513, classes=21), tmp_path_factory.mktemp("data"))


def trainer_for(method: str, amp: str, root, run_dir) -> Trainer:
    overrides = {"data.root": str(root), "data.num_workers": 0, "train.amp": amp}
    cfg = resolve_run_config(load_preset("pascal"), method, 0.5, 0, overrides)
    ctx = RunContext(cfg, get_method(method), root, run_dir, torch.device("cuda"), NoLogger(), ProgressView(enabled=False))
    return Trainer(ctx)


def seconds_per_step(trainer: Trainer) -> float:
    loader = torch.utils.data.DataLoader(trainer.train_set, batch_size=trainer.ctx.cfg.train.batch_size, collate_fn=collate)
    batch = trainer._to_batch(next(iter(loader)))
    for _ in range(3):  # warm-up: cuDNN autotuning, allocator
        trainer.train_step(batch)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(STEPS):
        trainer.train_step(batch)
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / STEPS


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_training_step_per_method(data_root, tmp_path, amp):
    rows, stage_a = {}, None
    for method in METHODS:
        trainer = trainer_for(method, amp, data_root, tmp_path / f"{method}-{amp}")
        trainer.model.train()
        if method == "grid-tr":  # one stage-A pass: proposals for the step, and its cost per image
            torch.cuda.synchronize()
            started = time.perf_counter()
            trainer.method.on_epoch_start(1, trainer.model, trainer.train_set)
            stage_a = (time.perf_counter() - started) / len(trainer.train_set)
            every = trainer.method.params.every
        rows[method] = seconds_per_step(trainer)
        trainer.method.close()
    batch, crop = trainer.ctx.cfg.train.batch_size, trainer.ctx.cfg.data.crop_size
    print(f"\n{torch.cuda.get_device_name()}, pascal preset (crop {crop}, batch {batch}), amp={amp}")
    for method, seconds in rows.items():
        print(f"  {method:9s} {seconds * 1000:7.1f} ms/step  {batch / seconds:6.1f} images/s  {seconds / rows['pce-gd']:.2f}× PCE-GD")
    amortised = rows["grid-tr"] + stage_a * batch / every
    print(f"  stage A {stage_a * 1000:.0f} ms/image; Grid-TR amortised (M = {every}) {amortised * 1000:.1f} ms/step, "
          f"{amortised / rows['dense-gd']:.2f}× Dense-GD")
    assert all(np.isfinite(list(rows.values())))


def test_lattice_on_cuda_against_pydensecrf(benchmark):
    pytest.importorskip("pydensecrf.densecrf")
    from rtrbench.methods.solvers.bilateral import bilateral_filter

    g = torch.Generator().manual_seed(0)
    image = torch.rand(256, 256, 3, generator=g) * 255
    values = torch.rand(21, 256, 256, generator=g)
    timings = {}
    for backend, device in (("torch", "cuda"), ("pydensecrf", "cpu")):
        args = (image.to(device), values.to(device), 15.0, 100.0)
        bilateral_filter(*args, backend=backend)  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(5):
            bilateral_filter(*args, backend=backend)
        torch.cuda.synchronize()
        timings[backend] = (time.perf_counter() - started) / 5
    print(f"\n{torch.cuda.get_device_name()}: 256², K = 21: torch on CUDA {timings['torch'] * 1000:.1f} ms, "
          f"pydensecrf2 on the CPU {timings['pydensecrf'] * 1000:.1f} ms: {timings['pydensecrf'] / timings['torch']:.0f}× faster")
    benchmark.extra_info.update({f"{k}_ms": v * 1000 for k, v in timings.items()})
