"""Running the command line from tests, and reading what it left in MLflow."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from typer.testing import CliRunner

from rtrbench.cli import app


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def rtrbench(cwd: Path, *args: str) -> CliResult:
    """`rtrbench ARGS` run in `cwd`, in this process: no interpreter start-up and no second
    import of torch and MLflow per call. (A test that kills the process starts its own.)"""
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


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
