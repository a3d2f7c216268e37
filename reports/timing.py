"""Training time per method relative to PCE-GD, and Grid-TR's stage-A share.

Per run: the mean `epoch_seconds` over its epochs (so Grid-TR's stage-A passes are amortised
over the M epochs they serve), divided by that of the PCE-GD run of
the same length and seed (the one it fine-tuned from when `init_run_id` names it), then
averaged over seeds. Stage-A share = Σ stageA_seconds / Σ epoch_seconds over a row's runs
(epoch_seconds includes the stage-A passes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rtrbench.reports.table import MISSING

BASELINE = "pce-gd"
TIMING_KEYS = ("epoch_seconds", "stageA_seconds")
COLUMNS = ["method", "length", "seeds", "mean epoch s", "× pce-gd", "stage-A share"]


def timing_table(done: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """One line per (row, length): seeds, mean epoch seconds, mean ratio to PCE-GD, stage-A share.

    `done`: runs from `groups.finished_runs` (with `init_run_id`); `histories`: their
    epoch_seconds / stageA_seconds histories. NaN where there is nothing to compare.
    """
    sums = histories.pivot_table(index="run_id", columns="key", values="value", aggfunc="sum")
    means = histories[histories["key"] == "epoch_seconds"].groupby("run_id")["value"].mean()
    runs = done.assign(epoch=done["run_id"].map(means)).dropna(subset=["epoch"])
    runs = runs.assign(ratio=[_ratio(run, runs) for run in runs.itertuples()])
    lines = []
    for (row, length), group in runs.groupby(["row", "length"], sort=False):
        stage_a = _column_sum(sums, group["run_id"], "stageA_seconds")
        share = stage_a / _column_sum(sums, group["run_id"], "epoch_seconds") if stage_a > 0 else np.nan
        lines.append([row, length, len(group), group["epoch"].mean(), group["ratio"].mean(), share])
    table = pd.DataFrame(lines, columns=COLUMNS)
    order = {row: i for i, row in enumerate(dict.fromkeys(done["row"]))}
    return table.sort_values(["length", "method"], key=lambda c: c.map(order) if c.name == "method" else c, ignore_index=True)


def write_timing(table: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / "timing.csv", out / "timing.md"
    table.to_csv(csv, index=False, float_format="%.6f")
    md.write_text(timing_markdown(table))
    return [md, csv]


def timing_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as text: lengths as `0.3`, seconds and ratios to 3 decimals, `—` where missing."""
    shown = table.astype(object).assign(length=table["length"].map("{:g}".format))
    for column in ("mean epoch s", "× pce-gd", "stage-A share"):
        shown[column] = table[column].map(lambda v: MISSING if pd.isna(v) else f"{v:.3f}")
    return shown


def timing_markdown(table: pd.DataFrame) -> str:
    shown = timing_display(table)
    text = shown.to_markdown(index=False, disable_numparse=True, colalign=("left", *["right"] * (len(shown.columns) - 1)))
    return text + "\n\nmean epoch seconds per run (stage-A passes included), mean over seeds; × pce-gd: the same ratio per seed, averaged.\n"


def _ratio(run, runs: pd.DataFrame) -> float:
    """This run's mean epoch time over that of its PCE-GD run (same length and seed)."""
    baseline = runs[runs["method"] == BASELINE]
    named = baseline[baseline["run_id"] == getattr(run, "init_run_id", None)]
    same = named if not named.empty else baseline[(baseline["length"] == run.length) & (baseline["seed"] == run.seed)]
    if same.empty:
        return np.nan
    return run.epoch / same.sort_values("start_time")["epoch"].iloc[-1]


def _column_sum(sums: pd.DataFrame, run_ids: pd.Series, key: str) -> float:
    return float(sums.reindex(run_ids)[key].sum()) if key in sums else 0.0
