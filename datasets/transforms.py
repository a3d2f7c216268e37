"""Joint random scale / crop / flip, applied identically to an image and all its label maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from rtrbench.datasets.labelio import IGNORE

# Crop padding is filled with the ImageNet mean so the network sees a neutral value there;
# it lies outside the ROI and no loss or metric counts it.
PAD_RGB = (124, 116, 104)


@dataclass(frozen=True)
class JointTransform:
    crop_size: int
    scale_min: float = 1.0
    scale_max: float = 1.0
    flip: bool = True

    def __call__(
        self, image: np.ndarray, maps: dict[str, np.ndarray], rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Return (image H×W×3 uint8, label maps H×W uint8, roi H×W bool) of size crop×crop."""
        h, w = image.shape[:2]
        scale = rng.uniform(self.scale_min, self.scale_max)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL order: (width, height)
        image = _resize(image, size, Image.BILINEAR)
        maps = {k: _resize(v, size, Image.NEAREST) for k, v in maps.items()}
        roi = np.ones(image.shape[:2], dtype=bool)

        image = _pad_to(image, self.crop_size, PAD_RGB)
        maps = {k: _pad_to(v, self.crop_size, IGNORE) for k, v in maps.items()}
        roi = _pad_to(roi, self.crop_size, False)

        top = int(rng.integers(0, image.shape[0] - self.crop_size + 1))
        left = int(rng.integers(0, image.shape[1] - self.crop_size + 1))
        window = (slice(top, top + self.crop_size), slice(left, left + self.crop_size))
        flip = self.flip and rng.random() < 0.5

        def cut(a: np.ndarray) -> np.ndarray:
            a = a[window]
            return np.ascontiguousarray(a[:, ::-1] if flip else a)

        return cut(image), {k: cut(v) for k, v in maps.items()}, cut(roi)


def _resize(a: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    if (a.shape[1], a.shape[0]) == size:
        return a
    return np.array(Image.fromarray(a).resize(size, resample=resample))  # a writable copy: torch.from_numpy warns on read-only arrays


def _pad_to(a: np.ndarray, crop: int, value) -> np.ndarray:
    pad_h, pad_w = max(0, crop - a.shape[0]), max(0, crop - a.shape[1])
    if not (pad_h or pad_w):
        return a
    out = np.empty((a.shape[0] + pad_h, a.shape[1] + pad_w) + a.shape[2:], dtype=a.dtype)
    out[...] = value
    out[: a.shape[0], : a.shape[1]] = a
    return out
