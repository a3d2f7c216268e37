"""`rtrbench data stats` against counts worked out by hand from the fixture tree's geometry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rtrbench.cli import app
from rtrbench.datasets.scribble_stats import count_strokes

H, W = 40, 48  # make_pascal_tree's default size
# make_pascal_tree draws three 1 px strokes per image: background row 1 (cols 2..W-3),
# square row (W//3 - 2 px), bar row (cols 6..W-7); the same map at every length.
STROKE_PIXELS = {"background": W - 4, "square": W // 3 - 2, "bar": W - 12}
GT_PIXELS = {"square": (H // 3) * (W // 3), "bar": 4 * (W - 8)}


def test_stats_match_the_hand_count(pascal_tree, tmp_path):
    out = tmp_path / "stats.csv"
    result = CliRunner().invoke(app, ["data", "stats", "--root", str(pascal_tree), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "labelled pixels" in result.stdout
    table = pd.read_csv(out, dtype={"length": str})
    fraction = table[table.quantity == "labelled_fraction"].set_index("length").value
    assert list(fraction.index) == ["1", "0.8", "0.5", "0.3", "0"]
    assert fraction.to_numpy() == pytest.approx(sum(STROKE_PIXELS.values()) / (H * W))
    strokes = table[table.quantity == "strokes_per_image"].value
    assert (strokes == 3).all()
    scribble_share = table[table.quantity == "scribble_class_share"].set_index("class").value
    total = sum(STROKE_PIXELS.values())
    assert scribble_share.to_dict() == pytest.approx({k: v / total for k, v in STROKE_PIXELS.items()})
    gt_share = table[table.quantity == "gt_class_share"].set_index("class").value
    assert gt_share["square"] == pytest.approx(GT_PIXELS["square"] / (H * W))
    assert gt_share["bar"] == pytest.approx(GT_PIXELS["bar"] / (H * W))


def test_strokes_are_components_per_label():
    labels = np.full((10, 10), 255, np.uint8)
    labels[1, 1:4] = 1
    labels[2, 4] = 1  # diagonal neighbour: same stroke
    labels[8, 1:9] = 1  # a second stroke of class 1
    labels[5, 5] = 2  # touches nothing of its class
    labels[5, 6] = 0  # touches class 2: still its own stroke
    assert count_strokes(labels) == 4


def test_a_missing_scribble_file_is_one_line(pascal_tree):
    (pascal_tree / "pascal_2012_scribble0.5" / "tr2.png").unlink()
    result = CliRunner().invoke(app, ["data", "stats", "--root", str(pascal_tree), "--quiet"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "pascal_2012_scribble0.5/tr2.png: file not found" in result.stderr
