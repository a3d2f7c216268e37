"""Soft self-labeling's y-step against the network's forward + backward on the same batch (the
synth preset: batch 8, crop 96, K = 5, MobileNetV2 width 0.5), with one thread (a run of the
default sweep on a CPU) and with all of them. The y-step should cost no more.

    .venv/bin/pytest benchmarks/test_bench_ystep.py --benchmark-enable
"""

from __future__ import annotations

import pytest
import torch

from rtrbench.config import load_preset, resolve_run_config
from rtrbench.methods.soft_sl import SoftSLParams
from rtrbench.methods.solvers.potts import contrast_weights_torch
from rtrbench.methods.solvers.soft_labels import SoftLabelProblem, solve_soft_labels
from rtrbench.network import DeepLabV3Plus


@pytest.fixture(params=[1, torch.get_num_threads()], ids=lambda n: f"{n}-threads", autouse=True)
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batch():
    cfg = resolve_run_config(load_preset("synth"), "soft-sl", 0.3, 0)
    n, size, k = cfg.train.batch_size, cfg.data.crop_size, cfg.data.synth.classes
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, size, size, generator=g) * 255
    seeds = torch.full((n, size, size), 255, dtype=torch.long)
    seeds[:, size // 2, 10 : size - 10] = 1  # a stroke per image
    seeds[:, 5, 5:40] = 0
    roi = torch.ones(n, size, size, dtype=torch.bool)
    model = DeepLabV3Plus(k, cfg.model.width_mult, cfg.model.decoder_channels).train()
    if cfg.train.channels_last:  # as the trainer runs it
        model, images = model.to(memory_format=torch.channels_last), images.contiguous(memory_format=torch.channels_last)
    return cfg, model, images, seeds, roi


@pytest.mark.benchmark(group="soft-sl y-step vs network, synth batch")
def test_network_forward_backward(benchmark, batch):
    _, model, images, seeds, _ = batch

    def step():
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(images), seeds, ignore_index=255).backward()

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="soft-sl y-step vs network, synth batch")
def test_y_step(benchmark, batch):
    cfg, model, images, seeds, roi = batch
    p = SoftSLParams(**cfg.params)
    with torch.no_grad():
        logits = model(images)
    images = images.contiguous()  # the trainer gives methods NCHW tensors
    problem = SoftLabelProblem(logits.contiguous(), seeds, roi, contrast_weights_torch(images, roi), p.eta, p.lam, p.relaxation, p.coupling)
    result = benchmark.pedantic(lambda: solve_soft_labels(problem, p.steps, p.step_size), rounds=5, warmup_rounds=1)
    benchmark.extra_info.update(steps=p.steps, energy_init=result.energy_init.mean().item(), energy=result.energy.mean().item())
