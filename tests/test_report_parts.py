"""The report's parts on hand-made inputs: timing ratios and stage-A share, the qualitative
grid's image choice and scribble column, and the fallback scribble length."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rtrbench.datasets.labelio import write_label_png
from rtrbench.reports.build import pick_length
from rtrbench.reports.rows import FULL_ROW
from rtrbench.reports.qualitative import common_ids, preview_runs, qualitative_grid, scribble_folder
from rtrbench.reports.timing import timing_table


def run(run_id, method, length, seed, start, init="", row=None):
    reference = method == "full"
    return {
        "run_id": run_id, "method": method, "length": length, "seed": seed, "start_time": start, "init_run_id": init,
        "row": row or (FULL_ROW if reference else method), "reference": reference,
    }  # fmt: skip


def history(run_id, key, values, first_step=1):
    return [{"run_id": run_id, "key": key, "step": first_step + i, "value": v} for i, v in enumerate(values)]


def test_timing_ratio_is_per_seed_then_averaged_and_stage_a_share_is_pooled():
    done = pd.DataFrame([
        run("p0", "pce-gd", 1.0, 0, 1), run("p1", "pce-gd", 1.0, 1, 2), run("p0-old", "pce-gd", 1.0, 0, 0, row="pce-gd [x=1]"),
        run("t0", "grid-tr", 1.0, 0, 3, init="p0"), run("t1", "grid-tr", 1.0, 1, 4, init="p1"),
    ])  # fmt: skip
    hist = pd.DataFrame(
        history("p0", "epoch_seconds", [2, 2, 9]) + history("p1", "epoch_seconds", [4, 4, 1]) + history("p0-old", "epoch_seconds", [100] * 3)
        + history("t0", "epoch_seconds", [5, 6, 4]) + history("t0", "stageA_seconds", [1, 2], 1)
        + history("t1", "epoch_seconds", [8, 8, 8]) + history("t1", "stageA_seconds", [3])
    )  # fmt: skip
    table = timing_table(done, hist).set_index("method")
    # means (stage A amortised): p0 13/3, p1 3, t0 5, t1 8 (init_run_id picks p0, not the old 100 s run)
    assert table.loc["grid-tr", "× pce-gd"] == pytest.approx(np.mean([5 / (13 / 3), 8 / 3]))
    assert table.loc["grid-tr", "mean epoch s"] == pytest.approx(6.5)
    assert table.loc["grid-tr", "stage-A share"] == pytest.approx((1 + 2 + 3) / (5 + 6 + 4 + 24))
    assert table.loc["pce-gd", "× pce-gd"] == pytest.approx(1.0) and np.isnan(table.loc["pce-gd", "stage-A share"])
    assert table.loc["grid-tr", "seeds"] == 2


def write_preview(folder, image_id, pred_label, scribbles=False):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(folder / f"{image_id}_image.jpg")
    write_label_png(folder / f"{image_id}_gt.png", np.ones((8, 8), np.uint8))
    write_label_png(folder / f"{image_id}_pred.png", np.full((8, 8), pred_label, np.uint8))
    if scribbles:
        write_label_png(folder / f"{image_id}_scribbles.png", np.full((8, 8), 255, np.uint8))


def test_grid_shows_the_images_common_to_all_runs_and_a_scribble_column_when_present(tmp_path):
    done = pd.DataFrame([
        run("a1", "pce-gd", 1.0, 1, 5), run("a0", "pce-gd", 1.0, 0, 1), run("b0", "grid-tr", 1.0, 0, 2),
        run("c0", "grid-tr", 0.0, 0, 3), run("f0", "full", 0.0, 0, 4),
    ])  # fmt: skip
    shown = preview_runs(done, 1.0)
    assert list(shown["run_id"]) == ["a0", "b0", "f0"]  # lowest seed; other lengths left out; the reference kept
    folders = {r: tmp_path / r for r in ("a0", "b0", "f0")}
    for image_id in ("v1", "v2", "v3"):
        write_preview(folders["a0"], image_id, 1, scribbles=True)
        write_preview(folders["f0"], image_id, 2, scribbles=True)  # the reference's scribbles never count
    for image_id in ("v2", "v3", "v4"):
        write_preview(folders["b0"], image_id, 1)
    ids = common_ids(list(folders.values()))
    assert ids == ["v2", "v3"]
    assert scribble_folder(shown, folders, ids) == folders["a0"]
    with_scribbles = Image.open(qualitative_grid(shown, folders, 1.0, tmp_path / "with")[0]).size
    (folders["a0"] / "v2_scribbles.png").unlink()
    assert scribble_folder(shown, folders, ids) is None
    without = Image.open(qualitative_grid(shown, folders, 1.0, tmp_path / "without")[0]).size
    assert with_scribbles[0] > without[0] and with_scribbles[1] == without[1]
    assert qualitative_grid(shown, {}, 1.0, tmp_path / "none") == []
    # with the class names, a legend of the colours shown (labels 1 and 2) goes under the grid
    legend = Image.open(qualitative_grid(shown, folders, 1.0, tmp_path / "legend", ["bg", "square", "bar", "unseen"])[0]).size
    assert legend[1] > without[1]


def test_pick_length_prefers_the_wanted_then_the_nearest():
    assert pick_length([0.0, 0.5, 1.0], 1.0) == (1.0, None)
    length, note = pick_length([0.0, 0.3], 1.0)
    assert length == 0.3 and "length 1" in note and "use 0.3" in note
    assert pick_length([0.0, 1.0], 0.5)[0] == 1.0  # a tie goes to the longer scribbles
