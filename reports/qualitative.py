"""Fig. 4-style qualitative grid: per val image, the image, its scribbles, GT and each method's prediction.

Built from the `preview/` artifacts every run logs for the first val images (the same ids
for every run): `<id>_image.jpg`, `<id>_gt.png`, `<id>_pred.png` and, where the data set
has val scribbles at the run's length, `<id>_scribbles.png`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
# Figure objects, not pyplot: no global backend is selected or changed (a notebook user keeps
# theirs), and saving to a file needs no display.
from matplotlib.figure import Figure
from matplotlib.patches import Patch
import pandas as pd

from rtrbench.datasets.labelio import IGNORE, read_image, read_label_png
from rtrbench.reports.figures import save_figure
from rtrbench.reports.rows import row_order
from rtrbench.reports.table import length_label
from rtrbench.visualize import colorize


def preview_runs(done: pd.DataFrame, length: float) -> pd.DataFrame:
    """One run per row at this length (the reference at whatever length it ran): the lowest seed, newest."""
    shown = done[(done["length"] == length) | done["reference"]]
    shown = shown.sort_values(["seed", "start_time"], ascending=[True, False]).drop_duplicates("row")
    return shown.set_index("row").loc[row_order(shown)].reset_index()


def common_ids(folders: list[Path]) -> list[str]:
    """Image ids with a prediction in every folder, sorted (the trainer logs val.txt's first ids)."""
    per_run = [{p.name.removesuffix("_pred.png") for p in folder.glob("*_pred.png")} for folder in folders]
    return sorted(set.intersection(*per_run)) if per_run else []


def qualitative_grid(
    shown: pd.DataFrame, folders: dict[str, Path], length: float, out: Path, class_names: list[str] | None = None
) -> list[Path]:
    """Rows = image ids, columns = image, scribbles (when present), GT, one per table row; below,
    the colours of the classes shown (with `class_names`).

    `shown`: from `preview_runs`; `folders`: run_id -> downloaded preview folder (runs
    without one are already left out). Returns [] when no image is common to all runs.
    """
    shown = shown[shown["run_id"].isin(folders)]
    ids = common_ids([folders[r] for r in shown["run_id"]])
    if not ids:
        return []
    first = folders[shown["run_id"].iloc[0]]
    scribbles = scribble_folder(shown, folders, ids)
    columns = ["image", *(["scribbles"] if scribbles else []), "ground truth", *shown["row"]]
    fig = Figure(figsize=(1.7 * len(columns), 1.7 * len(ids) + 0.4))
    axes = fig.subplots(len(ids), len(columns), squeeze=False)
    seen: set[int] = set()  # labels drawn, for the legend
    for axes_row, image_id in zip(axes, ids):
        image = read_image(first / f"{image_id}_image.jpg")
        labels = [read_label_png(first / f"{image_id}_gt.png")]
        labels += [read_label_png(folders[r] / f"{image_id}_pred.png") for r in shown["run_id"]]
        panels = [image]
        if scribbles:
            panels.append(_overlay(image, read_label_png(scribbles / f"{image_id}_scribbles.png")))
        panels += [colorize(label_map) for label_map in labels]
        seen.update(int(v) for label_map in labels for v in np.unique(label_map) if v != IGNORE)
        for ax, panel in zip(axes_row, panels):
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes_row[0].set_ylabel(image_id, fontsize=7)
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize=7)
    fig.suptitle(f"val predictions, scribble length {length_label(length)}", fontsize=9)
    fig.tight_layout()
    if class_names:
        _class_legend(fig, [i for i in sorted(seen) if i < len(class_names)], class_names)
    return save_figure(fig, out, "qualitative")


def _class_legend(fig: Figure, labels: list[int], names: list[str]) -> None:
    """Class colours under the grid, for the classes it shows."""
    colours = colorize(np.array([labels], np.uint8))[0] / 255.0
    handles = [Patch(facecolor=colour, edgecolor="black", linewidth=0.3, label=names[i]) for i, colour in zip(labels, colours)]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(6, len(handles)), fontsize=7, frameon=False)


def scribble_folder(shown: pd.DataFrame, folders: dict[str, Path], ids: list[str]) -> Path | None:
    """A scribble-trained run's folder holding val scribbles for every shown image, if any."""
    for run_id in shown.loc[~shown["reference"], "run_id"]:
        if all((folders[run_id] / f"{i}_scribbles.png").is_file() for i in ids):
            return folders[run_id]
    return None


def _overlay(image: np.ndarray, scribbles: np.ndarray) -> np.ndarray:
    """The image, dimmed, with scribbled pixels in their class colour."""
    out = (image * 0.6).astype(np.uint8)
    labelled = scribbles != IGNORE
    out[labelled] = colorize(scribbles)[labelled]
    return out
