"""Reading and writing images and indexed label PNGs with clear one-line errors."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rtrbench.atomic import write_atomic
from rtrbench.errors import DataError

IGNORE = 255


@cache  # written into every label PNG; computing it is not free
def voc_palette() -> tuple[int, ...]:
    """The PASCAL VOC colour map (bit-interleaved), 256 entries, flattened RGB; 255 is white-ish void."""
    idx = np.arange(256)
    rgb = np.zeros((256, 3), dtype=np.int64)
    for shift in range(8):  # 8 bit planes, not pixels
        for ch in range(3):
            rgb[:, ch] |= ((idx >> (3 * shift + ch)) & 1) << (7 - shift)
    rgb[IGNORE] = (224, 224, 192)
    return tuple(rgb.astype(np.uint8).ravel().tolist())


def write_label_png(path: Path, labels: np.ndarray) -> None:
    """Write an H×W uint8 label map as an indexed PNG with the VOC palette (deterministic bytes)."""
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"label map must be 2-D uint8, got {labels.dtype} {labels.shape}")
    img = Image.fromarray(labels, mode="P")
    img.putpalette(voc_palette())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=False)


def write_label_png_atomic(path: Path, labels: np.ndarray) -> None:
    write_atomic(path, lambda tmp: write_label_png(tmp, labels))


def read_label_png(path: Path) -> np.ndarray:
    """Read an indexed (or greyscale) label PNG as H×W uint8 class indices."""
    img = _open(path)
    if img.mode not in ("P", "L"):
        raise DataError(f"{path}: label map must be an indexed or greyscale PNG, got mode {img.mode}")
    return np.asarray(img, dtype=np.uint8).copy()


def read_image(path: Path) -> np.ndarray:
    """Read an RGB image as H×W×3 uint8."""
    return np.asarray(_open(path).convert("RGB"), dtype=np.uint8).copy()


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None
    return img
