"""`rtrbench run --executor ray`: runs as Ray tasks on a local 2-CPU cluster (one per test
session), overlapping where independent and after their dependency otherwise, with the
serial sweep's results; a task whose process is killed is retried and resumes; an MLflow
server as the tracking store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from rtrbench.checkpoint import load_checkpoint
from rtrbench.errors import ConfigError
from rtrbench.ray_sweep import check_tracking_for_cluster
from tests.cli_helpers import rtrbench, runs_of, sweeps_of

RAY = ("--executor", "ray", "--cpus-per-run", "1", "--quiet")


def serial_runs(smoke_sweep: Path) -> dict:
    _, runs = runs_of(smoke_sweep)
    return {r.info.run_name: r for r in runs}


@pytest.mark.slow
def test_ray_sweep_overlaps_independent_runs_and_matches_the_serial_sweep(ray_cluster, smoke_sweep, tmp_path):
    args = ("run", "--preset", "smoke", "--methods", "grid-gd", "--lengths", "0,1", "--data-dir", str(smoke_sweep / "data"))
    result = rtrbench(tmp_path, *args, *RAY)
    assert result.returncode == 0, result.stdout + result.stderr
    _, runs = runs_of(tmp_path)
    runs = {r.info.run_name: r for r in runs}
    assert sorted(runs) == ["grid-gd/len0/seed0", "grid-gd/len1/seed0", "pce-gd/len0/seed0", "pce-gd/len1/seed0"]
    span = {name: (r.info.start_time, r.info.end_time) for name, r in runs.items()}
    first, second = span["pce-gd/len0/seed0"], span["pce-gd/len1/seed0"]
    assert first[0] < second[1] and second[0] < first[1], "the two independent PCE-GD runs did not overlap"
    for length in (0, 1):  # a fine-tuning run starts once the run it starts from has ended
        assert span[f"grid-gd/len{length}/seed0"][0] >= span[f"pce-gd/len{length}/seed0"][1]
        assert runs[f"grid-gd/len{length}/seed0"].data.tags["init_run_id"] == runs[f"pce-gd/len{length}/seed0"].info.run_id
    serial = serial_runs(smoke_sweep)
    for name, run in runs.items():  # one thread per run in both: the same arithmetic, the same scores
        assert run.data.tags["threads"] == "1"
        assert run.data.metrics["val_miou"] == serial[name].data.metrics["val_miou"], name
    [parent] = sweeps_of(tmp_path)
    assert parent.info.status == "FINISHED" and {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {parent.info.run_id}


@pytest.mark.slow
def test_a_task_whose_process_is_killed_is_retried_and_resumes(ray_cluster, smoke_sweep, tmp_path):
    args = ("run", "--preset", "smoke", "--methods", "pce-gd", "--lengths", "1", "--data-dir", str(smoke_sweep / "data"))
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
    assert result.returncode == 0, result.stdout + result.stderr

    _, [run] = runs_of(tmp_path)  # one MLflow run, resumed by the retried task
    assert run.info.status == "FINISHED"
    ref = serial_runs(smoke_sweep)["pce-gd/len1/seed0"]
    assert run.data.metrics["val_miou"] == ref.data.metrics["val_miou"]  # as if never interrupted
    assert [s.info.status for s in sweeps_of(tmp_path)] == ["FINISHED"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_ray_sweep_logs_to_an_mlflow_server(ray_cluster, smoke_sweep, tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the MLflow server did not start"
                time.sleep(0.2)
        args = ("run", "--preset", "smoke", "--methods", "grid-gd", "--lengths", "1", "--epochs", "1",
                "--data-dir", str(smoke_sweep / "data"), "--tracking-uri", uri)  # fmt: skip
        result = rtrbench(tmp_path, *args, *RAY)
        assert result.returncode == 0, result.stdout + result.stderr
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("rtrbench-smoke")
        runs = [r for r in client.search_runs([experiment.experiment_id]) if "config_hash" in r.data.tags]
        assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
        assert list((tmp_path / "artifacts").rglob("checkpoint/model.pt")), "the server stored no checkpoint"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_local_store_is_refused_for_a_cluster_of_several_machines():
    check_tracking_for_cluster("sqlite:////data/mlflow.db", 1)  # one machine: fine
    check_tracking_for_cluster("http://mlflow.example:5000", 4)
    for uri in ("sqlite:////data/mlflow.db", "file:///data/mlruns", "/data/mlruns"):
        with pytest.raises(ConfigError, match="cannot be reached by the 4 machines") as err:
            check_tracking_for_cluster(uri, 4)
        assert "\n" not in str(err.value)


def test_without_ray_the_executor_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: importing it fails
    result = rtrbench(tmp_path, "run", "--preset", "smoke", "--methods", "pce-gd", "--lengths", "1", *RAY)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert 'install it with pip install -e ".[ray]"' in result.stderr
    assert not (tmp_path / "mlflow.db").exists()
