"""Everything the report reads from MLflow, through MLflow's APIs only (any tracking URI).

Runs come out as a tidy DataFrame; metric histories as long frames; preview artifacts are
downloaded into a local folder. Nothing else in `rtrbench.reports` talks to MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rtrbench.tracking import Tracking

RUN_COLUMNS = [
    "method", "length", "seed", "config_hash", "status", "val_miou", "run_id", "start_time", "supervision", "init_run_id",
    "parent_run_id", "params", "tags",
]  # fmt: skip
HISTORY_COLUMNS = ["run_id", "key", "step", "value"]
PREVIEW_DIR = "preview"  # artifact folder the trainer logs per-image previews into
Progress = Callable[[int, int], None]  # progress(done, total), e.g. `ProgressView.counter`


def _no_progress(done: int, total: int) -> None:
    pass


def runs_frame(tracking: Tracking) -> pd.DataFrame:
    """One row per rtrbench run (sweep parent runs carry no config hash and are left out).

    Columns: method, length, seed, config_hash, status, val_miou, run_id, start_time (ms),
    supervision, init_run_id and parent_run_id (tags, "" when absent), params (dict of the
    flattened resolved config) and tags (dict of all tags).
    """
    rows = [
        {
            "method": r.tags.get("method"),
            "length": float(r.tags.get("length", "nan")),
            "seed": int(r.tags.get("seed", -1)),
            "config_hash": r.tags.get("config_hash"),
            "status": r.status,
            "val_miou": r.metrics.get("val_miou"),
            "run_id": r.run_id,
            "start_time": r.start_time,
            "supervision": r.tags.get("supervision", ""),
            "init_run_id": r.tags.get("init_run_id", ""),
            "parent_run_id": r.tags.get("mlflow.parentRunId", ""),  # the sweep that ran it
            "params": r.params,
            "tags": r.tags,
        }
        for r in tracking.runs()
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def metric_histories(tracking: Tracking, run_ids: list[str], keys: tuple[str, ...], progress: Progress = _no_progress) -> pd.DataFrame:
    """Every logged value of the given metrics of the given runs: run_id, key, step, value."""
    rows = []
    progress(0, len(run_ids))
    for done, run_id in enumerate(run_ids, start=1):
        rows += [(run_id, key, m.step, m.value) for key in keys for m in tracking.client.get_metric_history(run_id, key)]
        progress(done, len(run_ids))
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def download_previews(tracking: Tracking, run_ids: list[str], dest: Path, progress: Progress = _no_progress) -> dict[str, Path]:
    """Download each run's preview folder into dest/<run_id>; runs without one are left out."""
    from mlflow.artifacts import download_artifacts

    found = {}
    progress(0, len(run_ids))
    for done, run_id in enumerate(run_ids, start=1):
        if tracking.client.list_artifacts(run_id, PREVIEW_DIR):
            target = dest / run_id
            target.mkdir(parents=True, exist_ok=True)
            local = download_artifacts(run_id=run_id, artifact_path=PREVIEW_DIR, dst_path=str(target), tracking_uri=tracking.uri)
            found[run_id] = Path(local)
        progress(done, len(run_ids))
    return found


def class_names(tracking: Tracking, run_id: str) -> list[str] | None:
    """The run's class names in label order (from its class_iou.csv artifact), if it has one."""
    from mlflow.artifacts import download_artifacts

    try:
        local = download_artifacts(run_id=run_id, artifact_path="class_iou.csv", tracking_uri=tracking.uri)
    except Exception:  # no such artifact (an older or foreign run): the grid goes without a legend
        return None
    return [str(name) for name in pd.read_csv(local)["class"]]


def sweep_params(tracking: Tracking, parent_ids: list[str]) -> list[dict[str, str]]:
    """The params of the sweeps (parent runs) that ran the given runs: preset, methods, lengths, seeds."""
    return [tracking.client.get_run(run_id).data.params for run_id in sorted({i for i in parent_ids if i})]


def open_experiment(tracking_uri: str | None, name: str) -> Tracking:
    """The experiment if it exists (a report never creates one)."""
    from rtrbench.errors import ConfigError

    client = Tracking.client_for(tracking_uri)
    if client.get_experiment_by_name(name) is None:
        raise ConfigError(f"experiment '{name}' not found in {client.tracking_uri}")
    return Tracking(tracking_uri, name)


def latest_experiment(tracking_uri: str | None) -> str:
    """The experiment holding the most recently started rtrbench run."""
    from rtrbench.errors import ConfigError

    client = Tracking.client_for(tracking_uri)
    experiments = client.search_experiments()
    if experiments:
        runs = client.search_runs(
            [e.experiment_id for e in experiments],
            filter_string="tags.config_hash != ''",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            return client.get_experiment(runs[0].info.experiment_id).name
    raise ConfigError(f"no rtrbench runs in {client.tracking_uri} (run `rtrbench run` first, or pass --tracking-uri)")
