"""MLflow tracking with a fixed schema, through MlflowClient (no fluent global run state).

Default store: the embedded SQLite file ``mlflow.db`` in the working directory; any
tracking URI is accepted. Runs are found again by their ``config_hash`` tag. Several sweeps
may share one store: a SQLite file is created and migrated by one process at a time.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from rtrbench.config import RunConfig
from rtrbench.errors import ConfigError, one_line


SWEEP_TAG = "rtrbench.sweep"  # marks the parent run of a sweep
PARENT_TAG = "mlflow.parentRunId"  # how the MLflow UI nests a sweep's runs under its parent
# What MLflow 3's UI reads to open an experiment on its runs table rather than its GenAI pages.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def default_tracking_uri() -> str:
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _quiet_mlflow_logging() -> None:
    # Creating a SQLite store logs INFO lines (alembic migrations, table creation); mlflow
    # sets its loggers up on import, so this runs after the import.
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    status: str  # RUNNING / FINISHED / FAILED / KILLED
    tags: dict[str, str]
    metrics: dict[str, float]
    start_time: int  # ms since the epoch
    params: dict[str, str] = field(default_factory=dict)  # the flattened resolved config


class Tracking:
    """One MLflow experiment."""

    def __init__(self, uri: str | None, experiment: str) -> None:
        self.uri = uri or default_tracking_uri()
        db = sqlite_path(self.uri)
        # The first use of a SQLite file creates and migrates its schema; MLflow does that in
        # every process that finds it missing, and concurrent migrations break the file.
        with _file_lock(db) if db else contextlib.nullcontext():
            try:
                self.client = self.client_for(self.uri)
                self.experiment_id = self._experiment(experiment)
            except Exception as exc:  # bad URI, unreachable server, broken store, ...
                if db is None or not _recreate_if_empty(db):
                    raise ConfigError(_store_error(self.uri, db, exc)) from None
                self.client = self.client_for(self.uri)
                self.experiment_id = self._experiment(experiment)
        self.experiment = experiment

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is None:
            return self.client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # made by an older version
            self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id

    @staticmethod
    def client_for(uri: str | None):
        from mlflow import MlflowClient  # slow import, kept off the CLI's startup path

        _quiet_mlflow_logging()
        return MlflowClient(tracking_uri=uri or default_tracking_uri())

    def find(self, config_hash: str) -> list[RunRecord]:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.config_hash = '{config_hash}'", order_by=["attributes.start_time DESC"]
        )
        return [_record(r) for r in runs]

    def runs(self) -> list[RunRecord]:
        """All rtrbench runs of the experiment (those carrying a config hash)."""
        records, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string="tags.config_hash != ''", page_token=token)
            records += [_record(r) for r in page]
            token = page.token
            if not token:
                return records

    def start(self, cfg: RunConfig, extra_tags: dict[str, str]) -> RunLogger:
        tags = {
            "method": cfg.method,
            "length": f"{cfg.length:g}",
            "seed": str(cfg.seed),
            "dataset": cfg.data.name,
            "config_hash": cfg.config_hash(),
            **extra_tags,
        }
        run = self.client.create_run(self.experiment_id, run_name=cfg.run_name, tags=tags)
        logger = RunLogger(self.client, run.info.run_id)
        logger.log_params(cfg.flat_params())
        return logger

    def start_sweep(self, description: dict[str, str]) -> RunLogger:
        """The parent run grouping a sweep's runs in the MLflow UI; it has no config_hash tag,
        so it is never taken for a training run."""
        run = self.client.create_run(
            self.experiment_id, run_name=f"sweep {time.strftime('%Y-%m-%d %H:%M:%S')}", tags={SWEEP_TAG: "1"}
        )
        logger = RunLogger(self.client, run.info.run_id)
        logger.log_params(description)
        return logger

    def reopen(self, record: RunRecord, parent_id: str) -> RunLogger:
        """Continue an interrupted or failed run: same MLflow run, status back to RUNNING, moved
        under the sweep `parent_id` that finishes it."""
        if "error" in record.tags:
            self.client.delete_tag(record.run_id, "error")
        self._end_dead_parent(record, parent_id)
        self.client.set_tag(record.run_id, PARENT_TAG, parent_id)
        self.client.update_run(record.run_id, status="RUNNING")
        return RunLogger(self.client, record.run_id)

    def abandon(self, record: RunRecord, parent_id: str) -> None:
        """Mark a run left RUNNING by a killed process as KILLED."""
        self._end_dead_parent(record, parent_id)
        if record.status == "RUNNING":
            self.client.set_terminated(record.run_id, status="KILLED")

    def _end_dead_parent(self, record: RunRecord, parent_id: str) -> None:
        # The sweep that left this run unfinished was killed too, unless it is the sweep at work
        # (a Ray task retried after its process died); a dead sweep's parent still says RUNNING.
        old = record.tags.get(PARENT_TAG)
        if old and old != parent_id and self.client.get_run(old).info.status == "RUNNING":
            self.client.set_terminated(old, status="KILLED")


class RunLogger:
    """What the trainer sees of tracking: metrics, tags and artifacts of one run."""

    def __init__(self, client, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if math.isfinite(float(v))]
        for start in range(0, len(batch), 1000):  # MLflow's per-request limit
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's per-request limit for params
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        if error:
            self.client.set_tag(self.run_id, "error", error[:5000])
        self.client.set_terminated(self.run_id, status=status)


def _record(run) -> RunRecord:
    data = run.data
    return RunRecord(run.info.run_id, run.info.status, dict(data.tags), dict(data.metrics), run.info.start_time, dict(data.params))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other stores."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) and uri != prefix + ":memory:" else None


def _file_lock(db: Path):
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(db.with_name(db.name + ".lock"))


def _recreate_if_empty(db: Path) -> bool:
    """A store that fails to open but holds no run (left half-made by processes that created it
    at the same time, before stores were locked) is emptied, to be made again; True if so. (In
    place, not deleted: MLflow may still hold a connection to the file.)"""
    if not db.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if "runs" in tables and conn.execute("SELECT count(*) FROM runs").fetchone()[0]:
                return False
            conn.execute("PRAGMA foreign_keys = OFF")
            for table in (t for t in tables if not t.startswith("sqlite_")):  # SQLite's own
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            conn.commit()
    except sqlite3.Error:
        return False  # not a database, or not ours to change: leave it as it is
    return True


def _store_error(uri: str, db: Path | None, exc: Exception) -> str:
    message = f"tracking URI {uri}: {one_line(exc, 300)}"
    if db is not None and db.is_file():
        message += (
            f" (to keep its runs, back up {db} and run `mlflow db upgrade {uri}`;"
            " or pass another --tracking-uri)"
        )
    return message
