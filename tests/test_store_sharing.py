"""The tracking store: a store broken by an interrupted creation is repaired, one holding runs
is reported in one line. (Processes creating one store at once: tests/test_sweeps_side_by_side.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rtrbench.errors import ConfigError
from rtrbench.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, Tracking

def test_experiments_open_on_their_runs_in_the_mlflow_ui(tmp_path):
    tracking = Tracking(f"sqlite:///{tmp_path / 'm.db'}", "x")
    assert tracking.client.get_experiment(tracking.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def _break_schema(db: Path) -> str:
    """What an interrupted migration leaves: a schema version MLflow does not know. Returns a
    new URI of the file: MLflow keeps one store object per URI in a process, and another
    spelling makes it open the file again, as a new process would."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'deadbeef'")
    return f"sqlite:///{db.parent}/./{db.name}"


def test_a_half_made_store_without_runs_is_made_again(tmp_path):
    db = tmp_path / "m.db"
    Tracking(f"sqlite:///{db}", "x")
    tracking = Tracking(_break_schema(db), "x")
    assert tracking.client.search_runs([tracking.experiment_id]) == []


def test_a_broken_store_with_runs_is_reported_in_one_line(tmp_path):
    db = tmp_path / "m.db"
    tracking = Tracking(f"sqlite:///{db}", "x")
    tracking.client.create_run(tracking.experiment_id)
    uri = _break_schema(db)
    with pytest.raises(ConfigError, match="mlflow db upgrade") as err:
        Tracking(uri, "y")
    assert "\n" not in str(err.value)
    with sqlite3.connect(db) as conn:  # nothing was touched
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
