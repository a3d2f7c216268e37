"""A run killed mid-training (SIGKILL, no chance to clean up) resumes from its last checkpoint
into the same MLflow run and ends with the metrics of a run that was never interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtrbench.checkpoint import load_checkpoint
from tests.test_cli_sweep import rtrbench, runs_of, sweeps_of

pytestmark = pytest.mark.slow

EPOCHS = 4
SWEEP = (
    "run", "--preset", "smoke", "--methods", "pce-gd", "--lengths", "1", "--epochs", str(EPOCHS),
    "--set", "train.deterministic=true", "--quiet",
)  # fmt: skip


def kill_after_first_checkpoint(cwd: Path) -> Path:
    """Start the sweep, SIGKILL it as soon as epoch 1's checkpoint exists; return the checkpoint."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtrbench.cli", *SWEEP], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    try:
        while not (found := list(cwd.glob("runs/*/last.pt"))):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return found[0]


def last_value_per_step(client, run_id: str, key: str) -> dict[int, float]:
    # a kill between logging an epoch and checkpointing it makes that epoch run (and log) twice
    return {m.step: m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)}


def test_a_killed_run_resumes_into_the_same_mlflow_run(tmp_path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    killed.mkdir(), straight.mkdir()

    checkpoint = kill_after_first_checkpoint(killed)
    assert load_checkpoint(checkpoint)["epoch"] < EPOCHS
    _, [interrupted] = runs_of(killed)
    assert interrupted.info.status == "RUNNING"  # nobody could mark it

    resumed = rtrbench(killed, *SWEEP)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    client, [run] = runs_of(killed)
    assert run.info.run_id == interrupted.info.run_id and run.info.status == "FINISHED"
    first, second = sorted(sweeps_of(killed), key=lambda r: r.info.start_time)
    assert (first.info.status, second.info.status) == ("KILLED", "FINISHED")  # the killed sweep is closed
    assert run.data.tags["mlflow.parentRunId"] == second.info.run_id  # the run sits under the sweep that ended it

    reference = rtrbench(straight, *SWEEP)
    assert reference.returncode == 0, reference.stdout + reference.stderr
    ref_client, [ref] = runs_of(straight)
    assert run.data.metrics["val_miou"] == pytest.approx(ref.data.metrics["val_miou"], abs=1e-9)
    for key in ("train_loss", "val_miou"):
        got, want = last_value_per_step(client, run.info.run_id, key), last_value_per_step(ref_client, ref.info.run_id, key)
        assert got.keys() == want.keys() and got == pytest.approx(want, abs=1e-9), key

    again = rtrbench(killed, *SWEEP)
    assert again.returncode == 0 and "nothing to train" in again.stdout
