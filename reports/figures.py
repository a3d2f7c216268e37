"""Fig. 5 (val mIoU vs scribble length) and Fig. 6 (trimap mIoU vs band width), PNG + SVG.

Both plot one line per table row (method and config) with the std over seeds as error bars;
the full-supervision reference is a dashed line, since it does not depend on the length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes

# Figure objects, not pyplot: no global backend is selected or changed (a notebook user keeps
# theirs), and saving to a file needs no display.
from matplotlib.figure import Figure

from rtrbench.reports.rows import FULL_ROW
from rtrbench.reports.table import length_label, lengths_of

FORMATS = ("png", "svg")
TRIMAP_COLUMNS = ["row", "length", "width", "mean", "std", "n"]


def save_figure(fig: Figure, out: Path, stem: str) -> list[Path]:
    """Write the figure as PNG and SVG next to each other."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.{fmt}" for fmt in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return paths


def row_colors(rows: list[str]) -> dict[str, tuple]:
    """One colour per row, the same in every figure; the reference is black."""
    palette = colormaps["tab10"].colors
    others = [r for r in rows if r != FULL_ROW]
    return {FULL_ROW: (0, 0, 0), **{r: palette[i % len(palette)] for i, r in enumerate(others)}}


def miou_vs_length(table: pd.DataFrame, out: Path, done: pd.DataFrame | None = None) -> list[Path]:
    """Fig. 5 from the Table-1 frame: mean val mIoU per length, error bars = std over seeds, and
    each seed's value as a dot (the finished runs `done`, when given)."""
    fig = Figure(figsize=(7.5, 4))
    ax = fig.subplots()
    colors = row_colors(list(table.index))
    lengths = np.array(lengths_of(table), float)
    # Shift each row's points a little sideways so error bars at one length do not hide each other.
    dodge = 0.01 * max(np.ptp(lengths), 1e-9) * (np.arange(len(table.index)) - (len(table.index) - 1) / 2)
    for row, shift in zip(table.index, dodge):
        means = table.loc[row, (slice(None), "mean")].to_numpy(float)
        stds = np.nan_to_num(table.loc[row, (slice(None), "std")].to_numpy(float))
        if row == FULL_ROW:
            ax.axhline(np.nanmean(means), color=colors[row], linestyle="--", label=row)
            continue
        present = ~np.isnan(means)
        ax.errorbar(lengths[present] + shift, means[present], yerr=stds[present], marker="o", capsize=3, label=row, color=colors[row])
        if done is not None:
            seeds = done[done["row"] == row]
            ax.scatter(seeds["length"] + shift, seeds["val_miou"], s=9, color=colors[row], alpha=0.45, linewidths=0)
    ax.set_xlabel("scribble length")
    ax.set_ylabel("val mIoU")
    ax.set_title("val mIoU vs scribble length (bars: std over seeds; dots: seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return save_figure(fig, out, "fig5_miou_vs_length")


def _legend_outside(ax: Axes) -> None:
    """Right of the axes, so that it never covers a curve, however many rows there are."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)


def trimap_summary(done: pd.DataFrame, histories: pd.DataFrame) -> pd.DataFrame:
    """Trimap mIoU per row, length and band width: mean, sample std and count over seeds.

    `done`: runs from `groups.finished_runs`; `histories`: `trimap_miou` histories (step = width).
    """
    trimap = histories[histories["key"] == "trimap_miou"].merge(done[["run_id", "row", "length"]], on="run_id")
    if trimap.empty:
        return pd.DataFrame(columns=TRIMAP_COLUMNS)
    stats = trimap.groupby(["row", "length", "step"])["value"].agg(["mean", "std", "count"]).reset_index()
    return stats.set_axis(TRIMAP_COLUMNS, axis=1)


def trimap_at_length(summary: pd.DataFrame, rows: list[str], length: float, out: Path) -> list[Path]:
    """Fig. 6 at one scribble length, rows in the given order; the reference whatever its own length."""
    fig = Figure(figsize=(7.5, 4))
    ax = fig.subplots()
    _plot_trimap(ax, summary, rows, length)
    ax.set_title(f"trimap mIoU vs band width, scribble length {length_label(length)}", fontsize=10)
    _legend_outside(ax)
    return save_figure(fig, out, "fig6_trimap")


def trimap_panels(summary: pd.DataFrame, rows: list[str], out: Path) -> list[Path]:
    """Fig. 6 with one small panel per scribble length, shared axes."""
    lengths = sorted(summary.loc[summary["row"] != FULL_ROW, "length"].unique()) or sorted(summary["length"].unique())
    fig = Figure(figsize=(3.2 * len(lengths), 3))
    axes = fig.subplots(1, len(lengths), sharey=True, squeeze=False)
    for ax, length in zip(axes[0], lengths):
        _plot_trimap(ax, summary, rows, length)
        ax.set_title(f"length {length_label(length)}", fontsize=9)
    for ax in axes[0][1:]:
        ax.set_ylabel("")
    fig.tight_layout()
    handles = {label: handle for ax in axes[0] for handle, label in zip(*ax.get_legend_handles_labels())}
    # Below the panels: a legend inside one would hide its curves.
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=min(4, len(handles)), fontsize=8, bbox_to_anchor=(0.5, 0.0))
    return save_figure(fig, out, "fig6_trimap_panels")


def _plot_trimap(ax: Axes, summary: pd.DataFrame, rows: list[str], length: float) -> None:
    colors = row_colors(rows)
    shown = summary[(summary["length"] == length) | (summary["row"] == FULL_ROW)]
    for row in rows:
        lines = shown[shown["row"] == row]
        if lines.empty:
            continue
        if row == FULL_ROW:  # one line even if the reference ran at several lengths
            lines = lines[lines["length"] == lines["length"].max()]
        lines = lines.sort_values("width")
        style = {"linestyle": "--"} if row == FULL_ROW else {"marker": "o", "markersize": 3}
        ax.errorbar(lines["width"], lines["mean"], yerr=lines["std"].fillna(0), capsize=2, label=row, color=colors[row], **style)
    ax.set_xlabel("band width (px)")
    ax.set_ylabel("trimap mIoU")
    ax.grid(alpha=0.3)
