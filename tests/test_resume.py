"""A run killed mid-training (SIGKILL, no chance to clean up) resumes from its last checkpoint
into the same MLflow run and ends with the metrics of a run that was never interrupted: the
shared smoke sweep's run of the same config."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtrbench.checkpoint import load_checkpoint
from tests.cli_helpers import rtrbench, runs_of, sweeps_of

pytestmark = pytest.mark.slow

# pce-gd/len1/seed0 of the shared smoke sweep, with its synthetic data
SWEEP = ("run", "--preset", "smoke", "--methods", "pce-gd", "--lengths", "1", "--seeds", "0", "--threads", "1", "--quiet")


def kill_after_first_checkpoint(cwd: Path, sweep: tuple[str, ...]) -> Path:
    """Start the sweep in its own process, SIGKILL it as soon as epoch 1's checkpoint exists;
    return the checkpoint."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtrbench.cli", *sweep], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def test_a_killed_run_resumes_into_the_same_mlflow_run(tmp_path, smoke_sweep):
    sweep = (*SWEEP, "--data-dir", str(smoke_sweep / "data"))
    checkpoint = kill_after_first_checkpoint(tmp_path, sweep)
    _, [interrupted] = runs_of(tmp_path)
    assert load_checkpoint(checkpoint)["epoch"] < int(interrupted.data.params["train.epochs"])
    assert interrupted.info.status == "RUNNING"  # nobody could mark it

    resumed = rtrbench(tmp_path, *sweep)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    client, [run] = runs_of(tmp_path)
    assert run.info.run_id == interrupted.info.run_id and run.info.status == "FINISHED"
    first, second = sorted(sweeps_of(tmp_path), key=lambda r: r.info.start_time)
    assert (first.info.status, second.info.status) == ("KILLED", "FINISHED")  # the killed sweep is closed
    assert run.data.tags["mlflow.parentRunId"] == second.info.run_id  # the run sits under the sweep that ended it

    ref_client, refs = runs_of(smoke_sweep)
    [ref] = [r for r in refs if r.info.run_name == "pce-gd/len1/seed0"]
    assert ref.data.tags["config_hash"] == run.data.tags["config_hash"]
    # bit for bit, as the uninterrupted run of the shared sweep (a Ray task with one thread:
    # this serial run with one thread is its arithmetic)
    for key in ("train_loss", "val_miou"):
        got, want = last_value_per_step(client, run.info.run_id, key), last_value_per_step(ref_client, ref.info.run_id, key)
        assert got == want, key
    assert run.data.metrics["val_miou"] == ref.data.metrics["val_miou"]

    again = rtrbench(tmp_path, *sweep)
    assert again.returncode == 0 and "nothing to train" in again.stdout
