"""Class names of a data set: `classes.txt` in its root, else PASCAL VOC's 21 (no heavy imports)."""

from __future__ import annotations

from pathlib import Path

from rtrbench.errors import DataError

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def read_class_names(root: Path) -> tuple[str, ...]:
    """`classes.txt` in the root if present (synthetic sets write one), else VOC's 21 classes."""
    path = root / "classes.txt"
    if path.is_file():
        names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
        if len(names) < 2:
            raise DataError(f"{path}: needs at least two class names, found {len(names)}")
        return names
    return VOC_CLASSES
