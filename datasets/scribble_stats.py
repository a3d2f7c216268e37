"""`rtrbench data stats`: how much a scribble set labels, per length and per class.

Over the train split: the labelled-pixel fraction of every scribble length present (pooled over
pixels: labelled / all), strokes per image (8-connected components per label), and the share
of each class among full-length scribble pixels next to its share among GT pixels (void left
out of both).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from rtrbench.datasets.labelio import IGNORE, read_label_png
from rtrbench.datasets.classes import read_class_names
from rtrbench.datasets.voc import gt_dir, read_ids, scribble_dir
from rtrbench.errors import DataError

_EIGHT = np.ones((3, 3), dtype=bool)
_LENGTH_DIR = re.compile(r"pascal_2012_scribble(\d*\.?\d*)")


@dataclass(frozen=True)
class LengthStats:
    length: float
    images: int
    labelled_fraction: float  # labelled pixels / all pixels of the split
    strokes_per_image: float
    images_without_scribbles: int


@dataclass(frozen=True)
class ClassShare:
    name: str
    scribble_share: float  # of full-length scribble pixels
    gt_share: float  # of non-void GT pixels


@dataclass(frozen=True)
class ScribbleStats:
    lengths: list[LengthStats]
    classes: list[ClassShare]


def scribble_lengths(root: Path) -> list[float]:
    """Scribble lengths with a folder in the root, full length first."""
    found = set()
    for path in root.iterdir() if root.is_dir() else ():
        match = _LENGTH_DIR.fullmatch(path.name)
        if path.is_dir() and match:
            found.add(1.0 if match[1] == "" else float(match[1]))
    return sorted(found, reverse=True)


def count_strokes(labels: np.ndarray) -> int:
    """8-connected components per label (a stroke that crosses another of its class counts once)."""
    return sum(ndimage.label(labels == k, structure=_EIGHT)[1] for k in np.unique(labels) if k != IGNORE)


@dataclass
class _Totals:
    """Running sums of one scribble length over the split."""

    labelled: int = 0
    pixels: int = 0
    strokes: int = 0
    empty: int = 0

    def add(self, labels: np.ndarray) -> None:
        n = int((labels != IGNORE).sum())
        self.labelled, self.pixels, self.empty = self.labelled + n, self.pixels + labels.size, self.empty + (n == 0)
        self.strokes += count_strokes(labels)


def scribble_stats(root: Path, progress: Callable[[int, int], None] | None = None) -> ScribbleStats:
    ids = read_ids(root, "train")
    lengths = scribble_lengths(root)
    if not lengths:
        raise DataError(f"{root / scribble_dir(1.0)}: no scribble folder found")
    totals = {r: _Totals() for r in lengths}
    scribble_hist, gt_hist = np.zeros(256, dtype=np.int64), np.zeros(256, dtype=np.int64)
    for done, image_id in enumerate(ids, start=1):
        for r in lengths:
            labels = read_label_png(root / scribble_dir(r) / f"{image_id}.png")
            totals[r].add(labels)
            if r == 1.0:
                scribble_hist += np.bincount(labels.ravel(), minlength=256)
        gt = root / gt_dir("train") / f"{image_id}.png"
        if gt.is_file():  # GT is optional here: scribble-only sets still get their stats
            gt_hist += np.bincount(read_label_png(gt).ravel(), minlength=256)
        if progress is not None:
            progress(done, len(ids))
    per_length = [
        LengthStats(r, len(ids), t.labelled / max(t.pixels, 1), t.strokes / len(ids), t.empty) for r, t in totals.items()
    ]
    return ScribbleStats(per_length, _class_shares(read_class_names(root), scribble_hist, gt_hist))


def _class_shares(names: tuple[str, ...], scribble_hist: np.ndarray, gt_hist: np.ndarray) -> list[ClassShare]:
    k = len(names)
    scribble, gt = scribble_hist[:k], gt_hist[:k]
    return [
        ClassShare(name, float(s) / max(int(scribble.sum()), 1), float(g) / max(int(gt.sum()), 1))
        for name, s, g in zip(names, scribble, gt)
    ]


def write_stats_csv(stats: ScribbleStats, path: Path) -> None:
    """One tidy table: quantity, length, class, value (pivot it as needed)."""
    rows = [("quantity", "length", "class", "value")]
    for s in stats.lengths:
        length = f"{s.length:g}"
        rows += [
            ("labelled_fraction", length, "", f"{s.labelled_fraction:.10g}"),
            ("strokes_per_image", length, "", f"{s.strokes_per_image:.10g}"),
            ("images_without_scribbles", length, "", str(s.images_without_scribbles)),
        ]
    for c in stats.classes:
        rows += [("scribble_class_share", "1", c.name, f"{c.scribble_share:.10g}"), ("gt_class_share", "", c.name, f"{c.gt_share:.10g}")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
