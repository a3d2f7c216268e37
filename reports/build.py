"""`rtrbench report`: every table and figure of one experiment, written into one folder.

Reads MLflow through `reports.mlflow_runs` only, so a report can be made on any machine that
reaches the tracking URI; preview artifacts are downloaded into a temporary folder.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rtrbench.errors import ConfigError
from rtrbench.progress import ProgressView
from rtrbench.reports.figures import miou_vs_length, trimap_at_length, trimap_panels, trimap_summary
from rtrbench.reports.rows import finished_runs
from rtrbench.reports.html import Section, figure_html, frame_html, markdown_table_html, table1_html, write_index
from rtrbench.reports.pairwise import leaders, pairwise_markdown, pairwise_table, write_pairwise
from rtrbench.reports.provenance import absent_runs, provenance, provenance_markdown
from rtrbench.reports.qualitative import preview_runs, qualitative_grid
from rtrbench.reports.mlflow_runs import class_names, download_previews, metric_histories, runs_frame, sweep_params
from rtrbench.reports.table import length_label, miou_table, write_table
from rtrbench.reports.timing import TIMING_KEYS, timing_display, timing_table, write_timing
from rtrbench.tracking import Tracking


ONE_SEED_NOTE = "one seed per run: the rankings carry no error bars (run with --seeds 0,1,2 to compare methods)"


@dataclass(frozen=True)
class Report:
    table: pd.DataFrame  # Table 1 (`table.miou_table`)
    marks: dict  # its leaders per length (`pairwise.leaders`)
    files: list[Path]
    notes: list[str]  # what was left out or substituted, for the reader


def pick_length(available: list[float], wanted: float) -> tuple[float, str | None]:
    """The wanted scribble length if it has runs, else the nearest that has (with a note saying so)."""
    if wanted in available or not available:
        return wanted, None
    nearest = min(available, key=lambda x: (abs(x - wanted), -x))
    return nearest, f"no finished runs at scribble length {length_label(wanted)}: Fig. 6 and the grid use {length_label(nearest)}"


def make_report(tracking: Tracking, out: Path, length: float, progress: ProgressView) -> Report:
    """Write Table 1, Fig. 5, Fig. 6, the qualitative grid, the timing table and index.html into out."""
    runs = runs_frame(tracking)
    table = miou_table(runs)
    if table.empty:
        raise ConfigError(f"experiment '{tracking.experiment}' has no finished rtrbench runs")
    done = finished_runs(runs)
    length, note = pick_length(sorted(done.loc[~done["reference"], "length"].unique()), length)
    notes = absent_runs(runs, done) + ([note] if note else [])
    if done["seed"].nunique() < 2:
        notes.append(ONE_SEED_NOTE)
    marks, pairs = leaders(done), pairwise_table(done)
    info = provenance(runs, done, sweep_params(tracking, list(done["parent_run_id"])))
    header = provenance_markdown(info)
    out.mkdir(parents=True, exist_ok=True)
    (out / "provenance.json").write_text(json.dumps(info, indent=2))
    keys = ("trimap_miou", *TIMING_KEYS)
    histories = metric_histories(tracking, list(done["run_id"]), keys, progress.counter("reading metric histories"))
    grid = _qualitative(tracking, done, length, out, progress, notes)

    table_files = write_table(table, marks, out, header)
    pair_files = write_pairwise(pairs, out, header)
    fig5 = miou_vs_length(table, out, done[~done["reference"]])
    summary, rows = trimap_summary(done, histories), list(table.index)
    fig6 = trimap_at_length(summary, rows, length, out) if not summary.empty else []
    panels = trimap_panels(summary, rows, out) if not summary.empty else []
    timing = timing_table(done, histories)
    timing_files = write_timing(timing, out)
    sections = [
        Section("Table 1: val mIoU, mean ± std over seeds (number of seeds)", table1_html(table, marks), table_files),
        Section("Paired differences over seeds", markdown_table_html(pairwise_markdown(pairs)), pair_files),
        Section("Fig. 5: val mIoU vs scribble length", figure_html(fig5), fig5),
        Section(f"Fig. 6: trimap mIoU vs band width, length {length_label(length)}", figure_html(fig6), fig6),
        Section("Fig. 6, one panel per scribble length", figure_html(panels), panels),
        Section(f"Qualitative results, length {length_label(length)}", figure_html(grid), grid),
        Section("Training time relative to PCE-GD; Grid-TR stage-A share", frame_html(timing_display(timing)), timing_files),
    ]
    index = write_index(out, f"rtrbench report — {tracking.experiment}", sections, notes, info)
    files = [*table_files, *pair_files, out / "provenance.json", *fig5, *fig6, *panels, *grid, *timing_files, index]
    return Report(table, marks, files, notes)


def _qualitative(tracking: Tracking, done: pd.DataFrame, length: float, out: Path, progress: ProgressView, notes: list[str]) -> list[Path]:
    """Download the shown runs' previews (temporarily) and draw the grid; notes say what is missing."""
    shown = preview_runs(done, length)
    with tempfile.TemporaryDirectory() as tmp:
        folders = download_previews(tracking, list(shown["run_id"]), Path(tmp), progress.counter("downloading previews"))
        names = class_names(tracking, shown["run_id"].iloc[0]) if len(shown) else None
        grid = qualitative_grid(shown, folders, length, out, names)
    missing = shown.loc[~shown["run_id"].isin(folders), "row"]
    if len(missing):
        notes.append(f"left out of the qualitative grid (no preview artifacts): {', '.join(missing)}")
    if not grid:
        notes.append("no qualitative grid: no val image has previews from every shown run")
    return grid
