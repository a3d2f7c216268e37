"""Small figures logged with runs: a grid of val images, ground truth and predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
# Figure objects, not pyplot: no global backend is selected or changed (a notebook user keeps
# theirs), and saving to a file needs no display.
from matplotlib.figure import Figure

from rtrbench.datasets.labelio import voc_palette

_PALETTE = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)


def colorize(labels: np.ndarray) -> np.ndarray:
    return _PALETTE[labels]


def prediction_grid(images: list[np.ndarray], gts: list[np.ndarray], preds: list[np.ndarray], path: Path) -> None:
    """Rows of (image, GT, prediction); images H×W×3 uint8, label maps H×W."""
    rows = len(images)
    fig = Figure(figsize=(6, 2 * rows))
    axes = fig.subplots(rows, 3, squeeze=False)
    for row, panels in enumerate(zip(images, map(colorize, gts), map(colorize, preds))):
        for col, (ax, panel) in enumerate(zip(axes[row], panels)):
            ax.imshow(panel, interpolation="nearest")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(("image", "ground truth", "prediction")[col], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
