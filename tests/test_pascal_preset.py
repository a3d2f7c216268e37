"""The `pascal` preset carries the paper's meta-parameters (docs/methods.md) and trains end to end
on a prepared miniature VOC tree."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from rtrbench.config import load_preset, resolve_run_config
from tests.miniature_voc import make_voc_download
from tests.cli_helpers import rtrbench


def test_pascal_preset_has_the_reference_settings():
    cfg = resolve_run_config(load_preset("pascal"), "pce-gd", 0.3, 0)
    assert (cfg.data.crop_size, cfg.data.scale_min, cfg.data.scale_max, cfg.data.flip) == (513, 0.5, 2.0, True)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.lr, cfg.train.head_lr_mult) == (12, 60, 0.007, 10.0)
    assert (cfg.train.momentum, cfg.train.weight_decay, cfg.train.poly_power) == (0.9, 5e-4, 0.9)
    assert cfg.train.batch_average  # the reference's loss scaling (its update: tests/test_reference_update.py)
    assert (cfg.model.output_stride, cfg.model.width_mult) == (16, 1.0)
    dense = resolve_run_config(load_preset("pascal"), "dense-gd", 0.3, 0).params
    assert dense == {"weight": 2e-9, "sigma_rgb": 15.0, "sigma_xy": 100.0, "scale": 0.5}
    expected = {1.0: (0.944, 0.05), 0.8: (0.946, 0.075), 0.5: (0.9514, 0.1), 0.3: (0.9516, 0.1), 0.0: (0.9522, 0.1)}
    for length, (eps, lam) in expected.items():
        tr = resolve_run_config(load_preset("pascal"), "grid-tr", length, 0)
        assert (tr.params["eps"], tr.params["lam"], tr.params["nu"], tr.params["every"], tr.params["max_sweeps"]) == (eps, lam, 100.0, 5, 5)
        assert tr.train.lr == 0.0007 and tr.params["init"] == "lowest" and tr.params.get("proposal_weight") is None


@pytest.mark.slow
def test_pascal_preset_trains_on_a_prepared_voc_tree(tmp_path):
    root, xml_dir, sbd = make_voc_download(tmp_path / "download")
    prepared = rtrbench(tmp_path, "data", "prepare", "--root", str(root), "--scribbles", str(xml_dir), "--sbd", str(sbd), "--quiet")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    result = rtrbench(
        tmp_path, "run", "--preset", "pascal", "--data", str(root), "--epochs", "1", "--batch-size", "2",
        "--crop-size", "64", "--methods", "pce-gd", "--lengths", "0.3", "--set", "data.num_workers=0",
        "--device", "cpu", "--seeds", "0", "--executor", "local", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rtrbench-pascal").experiment_id])
    [run] = [r for r in runs if "config_hash" in r.data.tags]  # not the sweep's parent run
    assert run.info.status == "FINISHED" and run.data.tags["dataset"] == "VOC2012"
    assert run.data.params["data.crop_size"] == "64" and run.data.params["model.output_stride"] == "16"
    assert 0 <= run.data.metrics["val_miou"] <= 1 and "iou_aeroplane" in run.data.metrics
