"""Reading finished rtrbench runs out of MLflow into a tidy table."""

from __future__ import annotations

import pandas as pd

from rtrbench.tracking import Tracking


def runs_frame(tracking: Tracking) -> pd.DataFrame:
    """One row per run: method, length, seed, config_hash, status, val_miou, run_id, start_time."""
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
        }
        for r in tracking.runs()
    ]
    columns = ["method", "length", "seed", "config_hash", "status", "val_miou", "run_id", "start_time"]
    return pd.DataFrame(rows, columns=columns)


def latest_experiment(tracking_uri: str | None) -> str:
    """The experiment holding the most recently started rtrbench run."""
    from rtrbench.errors import ConfigError
    from rtrbench.tracking import Tracking

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
