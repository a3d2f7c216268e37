"""Stage A of Grid-TR over the `synth` preset's training set: serial against the worker pool.

    pytest benchmarks/test_bench_stage_a.py --benchmark-enable

Both variants solve the same problems (network: the synth preset's, freshly initialised and
fixed by the seed; proposals are not stored between rounds, so every round starts alike).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from rtrbench.config import load_preset, resolve_run_config
from rtrbench.datasets.synth_cache import ensure_synthetic
from rtrbench.datasets.classes import read_class_names
from rtrbench.datasets.voc import ScribbleDataset
from rtrbench.methods.base import MethodContext
from rtrbench.methods.grid_tr import GridTR, GridTRParams
from rtrbench.network import DeepLabV3Plus


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = resolve_run_config(load_preset("synth"), "grid-tr", 0.3, 0)
    root = ensure_synthetic(cfg.data.synth, tmp_path_factory.mktemp("data"))
    names = read_class_names(root)
    torch.manual_seed(0)
    model = DeepLabV3Plus(len(names), cfg.model.width_mult, cfg.model.decoder_channels).eval()
    run_dir = tmp_path_factory.mktemp("run")
    method = GridTR(GridTRParams(**cfg.params), MethodContext(len(names), names, torch.device("cpu"), run_dir))
    return method, model, ScribbleDataset(root, "train", cfg.length, extra_maps={})


@pytest.mark.benchmark(group="stage-A synth train set")
@pytest.mark.parametrize("mode", ["serial", "pool"])
def test_stage_a_pass(benchmark, setup, mode):
    method, model, train_set = setup
    workers = os.cpu_count() or 1
    executor = None
    if mode == "pool":
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        list(executor.map(abs, range(workers)))  # start the workers outside the timing
    try:
        metrics = benchmark.pedantic(
            lambda: method.stage_a(model, train_set, 1, executor), setup=lambda: method.passes.keep_only(None), rounds=2
        )
    finally:
        if executor:
            executor.shutdown()
    benchmark.extra_info.update({"workers": workers if executor else 1, "images": len(train_set), **metrics})
    assert metrics["stageA_seed_violations"] == 0
