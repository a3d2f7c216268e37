"""End to end through the command line: a smoke sweep, its MLflow schema, skip on re-run,
the report, and a failing run that does not stop the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import make_pascal_tree

pytestmark = pytest.mark.slow


def rtrbench(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rtrbench.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("sweep")
    result = rtrbench(cwd, "run", "--preset", "smoke", "--methods", "pce-gd,full", "--lengths", "0,1", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd, result


def all_runs_of(cwd: Path, experiment: str = "rtrbench-smoke"):
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


def runs_of(cwd: Path, experiment: str = "rtrbench-smoke"):
    """The training runs (not the sweeps' parent runs)."""
    client, runs = all_runs_of(cwd, experiment)
    return client, [r for r in runs if "config_hash" in r.data.tags]


def sweeps_of(cwd: Path, experiment: str = "rtrbench-smoke"):
    return [r for r in all_runs_of(cwd, experiment)[1] if r.data.tags.get("rtrbench.sweep") == "1"]


def test_smoke_sweep_leaves_finished_runs_with_the_schema(smoke_sweep):
    cwd, _ = smoke_sweep
    client, runs = runs_of(cwd)
    # full supervision ignores the scribbles: one run per seed, at length 1
    assert sorted(r.info.run_name for r in runs) == ["full/len1/seed0", "pce-gd/len0/seed0", "pce-gd/len1/seed0"]
    [sweep] = sweeps_of(cwd)
    assert sweep.info.status == "FINISHED" and "config_hash" not in sweep.data.tags
    assert sweep.data.params["methods"] == "pce-gd,full" and sweep.data.params["lengths"] == "0,1"
    assert sweep.data.metrics["runs_finished"] == 3
    for run in runs:
        assert run.info.status == "FINISHED"
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert tags["mlflow.parentRunId"] == sweep.info.run_id
        assert tags["supervision"] == ("full" if tags["method"] == "full" else "scribbles")
        assert {tags["method"], tags["length"], tags["seed"], tags["dataset"]} <= {"pce-gd", "full", "0", "1", "synth"}
        assert len(tags["config_hash"]) == 16
        assert params["train.epochs"] == "2" and params["method"] == tags["method"] and "data.synth.size" in params
        for key in ("train_loss", "train_ce_loss", "lr", "epoch_seconds"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
        assert 0 <= metrics["val_miou"] <= 1 and "iou_background" in metrics
        trimap = client.get_metric_history(run.info.run_id, "trimap_miou")
        assert [m.step for m in trimap] == [1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.json", "confusion.csv", "trimap.csv", "predictions.png", "checkpoint"} <= artifacts
        assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")] == ["checkpoint/model.pt"]


def test_rerun_trains_nothing_and_says_so(smoke_sweep):
    cwd, _ = smoke_sweep
    result = rtrbench(cwd, "run", "--preset", "smoke", "--methods", "pce-gd,full", "--lengths", "0,1", "--quiet")
    assert result.returncode == 0
    assert "nothing to train" in result.stdout
    assert "val mIoU — rtrbench-smoke" in result.stdout  # the Table-1 view ends every sweep
    assert len(runs_of(cwd)[1]) == 3
    assert len(sweeps_of(cwd)) == 1  # a sweep that trains nothing leaves no parent run


def test_report_prints_and_writes_the_table(smoke_sweep):
    cwd, _ = smoke_sweep
    result = rtrbench(cwd, "report")
    assert result.returncode == 0, result.stderr
    assert "pce-gd" in result.stdout and "full" in result.stdout
    table = pd.read_csv(cwd / "reports" / "rtrbench-smoke" / "table.csv", index_col=0)
    _, runs = runs_of(cwd)
    for run in runs:  # the table holds exactly the runs' final val mIoU (one seed: n = 1)
        if run.data.tags["method"] == "pce-gd":
            value = table.loc["pce-gd", f"{run.data.tags['length']} mean"]
            assert value == pytest.approx(run.data.metrics["val_miou"], abs=1e-6)
    newest_full = max((r for r in runs if r.data.tags["method"] == "full"), key=lambda r: r.info.start_time)
    assert table.loc["full supervision", "0 mean"] == pytest.approx(newest_full.data.metrics["val_miou"], abs=1e-6)
    assert (table.filter(like=" n") == 1).all().all()
    assert (cwd / "reports" / "rtrbench-smoke" / "table.md").read_text().count("|") > 10


def test_a_failing_run_is_marked_failed_and_the_sweep_goes_on(tmp_path):
    root = make_pascal_tree(tmp_path / "voc", n_train=8, n_val=2)
    (root / "pascal_2012_scribble0" / "tr3.png").unlink()  # length 0 is broken, length 1 is fine
    result = rtrbench(
        tmp_path, "run", "--preset", "smoke", "--data", str(root), "--methods", "pce-gd", "--lengths", "0,1",
        "--epochs", "1", "--crop-size", "32", "--experiment", "broken", "--quiet",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"{root / 'pascal_2012_scribble0' / 'tr3.png'}: file not found" in result.stdout
    _, runs = runs_of(tmp_path, "broken")
    status = {r.info.run_name: r.info.status for r in runs}
    assert status == {"pce-gd/len0/seed0": "FAILED", "pce-gd/len1/seed0": "FINISHED"}
    failed = next(r for r in runs if r.info.status == "FAILED")
    assert failed.data.tags["error"].endswith("tr3.png: file not found")
    assert failed.data.tags["dataset"] == "voc"


def test_bad_option_is_one_line(tmp_path):
    result = rtrbench(tmp_path, "run", "--methods", "pce-gd", "--lengths", "0.3", "--data", str(tmp_path / "missing"), "--quiet")
    # found while planning (the data's digest is part of each run's identity): before any run starts
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{tmp_path / 'missing'}: data root not found" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()
    result = rtrbench(tmp_path, "run", "--methods", "pce-gd", "--set", "train.lr=-1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "train.lr" in result.stderr


def test_report_without_a_store_says_so(tmp_path):
    result = rtrbench(tmp_path, "report")
    assert result.returncode == 2 and "mlflow.db: no tracking store here" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_regularized_methods_fine_tune_from_the_pce_run(tmp_path):
    result = rtrbench(tmp_path, "run", "--preset", "smoke", "--methods", "grid-gd,dense-gd", "--lengths", "0.3", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    client, runs = runs_of(tmp_path)
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"pce-gd/len0.3/seed0", "grid-gd/len0.3/seed0", "dense-gd/len0.3/seed0"}
    assert all(r.info.status == "FINISHED" for r in runs)
    pce_id = by_name["pce-gd/len0.3/seed0"].info.run_id
    for name in ("grid-gd/len0.3/seed0", "dense-gd/len0.3/seed0"):
        run = by_name[name]
        assert run.data.tags["init_run_id"] == pce_id
        history = client.get_metric_history(run.info.run_id, "train_reg_loss")
        assert [m.step for m in history] == list(range(1, int(run.data.params["train.epochs"]) + 1))
    # a second sweep reuses the finished PCE run instead of retraining it
    again = rtrbench(tmp_path, "run", "--preset", "smoke", "--methods", "grid-gd", "--lengths", "0.3", "--quiet")
    assert again.returncode == 0 and "nothing to train" in again.stdout


def test_init_scratch_needs_no_pce_run(tmp_path):
    result = rtrbench(tmp_path, "run", "--preset", "smoke", "--methods", "grid-gd", "--lengths", "1", "--init", "scratch", "--epochs", "1", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    _, runs = runs_of(tmp_path)
    assert [r.info.run_name for r in runs] == ["grid-gd/len1/seed0"]
    assert "init_run_id" not in runs[0].data.tags and runs[0].data.params["init"] == "scratch"


def test_grid_tr_logs_stage_a(tmp_path):
    result = rtrbench(tmp_path, "run", "--preset", "smoke", "--methods", "pce-gd,grid-tr", "--lengths", "0,1", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    client, runs = runs_of(tmp_path)
    tr_runs = [r for r in runs if r.data.tags["method"] == "grid-tr"]
    assert len(tr_runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    for run in tr_runs:
        history = {k: client.get_metric_history(run.info.run_id, k) for k in (
            "stageA_energy_init", "stageA_energy", "stageA_changed_frac", "stageA_seconds",
            "stageA_seed_violations", "stageA_proposal_miou", "stageA_network_miou")}  # fmt: skip
        assert all(history.values()), {k: len(v) for k, v in history.items()}
        assert all(m.value == 0 for m in history["stageA_seed_violations"])
        for before, after in zip(history["stageA_energy_init"], history["stageA_energy"]):
            assert after.step == before.step and after.value <= before.value + 1e-6
        assert 0 <= history["stageA_proposal_miou"][0].value <= 1
        assert 0 <= history["stageA_network_miou"][0].value <= 1
        assert client.get_metric_history(run.info.run_id, "train_robust_ce_loss")
