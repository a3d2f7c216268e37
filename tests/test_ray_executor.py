"""`rtrbench run --executor ray`: runs as Ray tasks on a local 2-CPU cluster (one per test
session), overlapping where independent and after their dependency otherwise, logging to an
MLflow server, with the shared sweep's results (and so the serial executor's: the resume test
compares a serial run with it); a task whose process is killed is retried and resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from mlflow import MlflowClient

from rtrbench.checkpoint import load_checkpoint
from rtrbench.datasets.voc import read_ids
from rtrbench.errors import ConfigError
from rtrbench.ray_sweep import RayOptions, check_tracking_for_cluster
from tests.cli_helpers import rtrbench, runs_of, sweeps_of

RAY = ("--executor", "ray", "--cpus-per-run", "1", "--quiet")


def shared_runs(smoke_sweep: Path) -> dict:
    _, runs = runs_of(smoke_sweep)
    return {r.info.run_name: r for r in runs}


@pytest.mark.slow
def test_a_ray_sweep_overlaps_runs_logs_to_a_server_and_matches_the_shared_sweep(ray_cluster, smoke_sweep, mlflow_server, tmp_path):
    args = ("run", "--preset", "smoke", "--methods", "grid-gd", "--lengths", "0,1", "--seeds", "0", "--data-dir", str(smoke_sweep / "data"))
    result = rtrbench(tmp_path, *args, "--tracking-uri", mlflow_server.uri, *RAY)
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("rtrbench-smoke")
    every = client.search_runs([experiment.experiment_id])
    runs = {r.info.run_name: r for r in every if "config_hash" in r.data.tags}
    assert sorted(runs) == ["grid-gd/len0/seed0", "grid-gd/len1/seed0", "pce-gd/len0/seed0", "pce-gd/len1/seed0"]
    span = {name: (r.info.start_time, r.info.end_time) for name, r in runs.items()}
    first, second = span["pce-gd/len0/seed0"], span["pce-gd/len1/seed0"]
    assert first[0] < second[1] and second[0] < first[1], "the two independent PCE-GD runs did not overlap"
    for length in (0, 1):  # a fine-tuning run starts once the run it starts from has ended
        assert span[f"grid-gd/len{length}/seed0"][0] >= span[f"pce-gd/len{length}/seed0"][1]
        assert runs[f"grid-gd/len{length}/seed0"].data.tags["init_run_id"] == runs[f"pce-gd/len{length}/seed0"].info.run_id
    shared = shared_runs(smoke_sweep)
    for name, run in runs.items():  # one thread per run in both: the same arithmetic, the same scores
        assert run.info.status == "FINISHED" and run.data.tags["threads"] == "1"
        assert run.data.metrics["val_miou"] == shared[name].data.metrics["val_miou"], name
    [parent] = [r for r in every if r.data.tags.get("rtrbench.sweep") == "1"]
    assert parent.info.status == "FINISHED" and {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {parent.info.run_id}
    stored = {p.parent.parent.parent.name for p in mlflow_server.artifacts.rglob("checkpoint/model.pt")}
    assert {r.info.run_id for r in runs.values()} <= stored  # the artifacts went through the server


@pytest.mark.slow
def test_a_killed_task_is_retried_and_resumes_and_a_failing_run_is_not(ray_cluster, smoke_sweep, tmp_path):
    # the smoke sweep's data, with one length-0 scribble torn: that run fails for a data reason
    data = Path(shutil.copytree(next((smoke_sweep / "data").glob("synth-*")), tmp_path / "data"))
    (data / "pascal_2012_scribble0" / f"{read_ids(data, 'train')[0]}.png").write_bytes(b"")
    args = ("run", "--preset", "smoke", "--methods", "pce-gd", "--lengths", "0,1", "--seeds", "0", "--data", str(data))
    done: dict = {}
    driver = threading.Thread(target=lambda: done.setdefault("result", rtrbench(tmp_path, *args, *RAY)))
    driver.start()
    deadline = time.monotonic() + 300
    while not (checkpoints := list(tmp_path.glob("runs/*/last.pt"))):
        assert driver.is_alive() and time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.02)
    owner = json.loads(checkpoints[0].parent.with_suffix(".owner").read_text())  # runs/<hash>.owner
    assert load_checkpoint(checkpoints[0])["epoch"] < 8  # killed mid-training (the smoke preset's 8 epochs)
    os.kill(owner["pid"], signal.SIGKILL)
    driver.join(timeout=300)
    result = done["result"]
    assert result.returncode == 1, result.stdout + result.stderr  # the torn run failed

    _, runs = runs_of(tmp_path)  # one MLflow run per config: the killed one resumed by the retried task
    status = {r.info.run_name: r for r in runs}
    assert sorted(status) == ["pce-gd/len0/seed0", "pce-gd/len1/seed0"]
    resumed, failed = status["pce-gd/len1/seed0"], status["pce-gd/len0/seed0"]
    assert resumed.info.status == "FINISHED"
    ref = shared_runs(smoke_sweep)["pce-gd/len1/seed0"]
    assert resumed.data.metrics["val_miou"] == ref.data.metrics["val_miou"]  # as if never interrupted
    assert failed.info.status == "FAILED" and "cannot read image" in failed.data.tags["error"]
    assert [s.info.status for s in sweeps_of(tmp_path)] == ["FAILED"]  # the parent: some run failed


def test_a_local_store_is_refused_for_a_cluster_of_several_machines():
    check_tracking_for_cluster("sqlite:////data/mlflow.db", 1)  # one machine: fine
    check_tracking_for_cluster("http://mlflow.example:5000", 4)
    for uri in ("sqlite:////data/mlflow.db", "file:///data/mlruns", "/data/mlruns"):
        with pytest.raises(ConfigError, match="cannot be reached by the 4 machines") as err:
            check_tracking_for_cluster(uri, 4)
        assert "\n" not in str(err.value)


def test_without_ray_the_executor_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: importing it fails
    result = rtrbench(tmp_path, "run", "--preset", "smoke", "--methods", "pce-gd", "--lengths", "1", "--seeds", "0", *RAY)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert 'install it with pip install "ray>=2.9"' in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_the_auto_executor_runs_a_cpu_sweep_side_by_side(monkeypatch):
    """auto: Ray, one thread per run, for a CPU sweep on several CPUs; local with --threads, on
    one CPU, or on a GPU without --gpus-per-run; Ray whenever a cluster or a GPU share is given."""
    from rtrbench import cli, sweep, trainer

    def choice(cpus, device="cpu", threads=None, address=None, gpus=0.0):
        monkeypatch.setattr(sweep, "available_cpus", lambda: cpus)
        monkeypatch.setattr(trainer, "resolve_device", lambda name: torch.device(name))
        return cli._ray_options("auto", address, 1.0, gpus, device, threads)

    assert choice(2) == RayOptions(None, 1.0, 0.0)
    assert choice(2, threads=2) is None and choice(1) is None
    assert choice(8, device="cuda") is None
    assert choice(1, address="auto") == RayOptions("auto", 1.0, 0.0)
    assert choice(8, device="cuda", gpus=0.5) == RayOptions(None, 1.0, 0.5)
