"""Trimap (boundary band) accuracy, paper Fig. 6 (docs/tracking.md).

For band width w only pixels within Euclidean distance w of a GT boundary
count. On VOC the boundary is the void (255) outline; without void it is the
set of pixels with an 8-neighbour of another label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

from .confusion import _check_range, mean_iou

DEFAULT_TRIMAP_WIDTHS = (1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40)


def boundary_mask(gt: np.ndarray, ignore: int = 255) -> np.ndarray:
    """Boolean boundary of one H x W label map (a B x H x W batch is done per image)."""
    gt = np.asarray(gt)
    if gt.ndim == 3:
        return np.stack([boundary_mask(g, ignore) for g in gt])
    if (gt == ignore).any():
        return gt == ignore  # VOC draws its void band along object outlines
    edge = np.zeros(gt.shape, dtype=bool)
    # Four of the eight neighbour offsets; each differing pair marks both of its pixels.
    for a, b in [
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),  # right
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),  # down
        ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),  # down-right
        ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),  # down-left
    ]:
        diff = gt[a] != gt[b]
        edge[a] |= diff
        edge[b] |= diff
    return edge


def trimap_confusion(gt: np.ndarray, pred: np.ndarray, widths: Sequence[int], num_classes: int,
                     ignore: int = 255) -> np.ndarray:
    """(len(widths), K, K) confusion matrices of the pixels within distance <= w of the boundary.

    One pass: each pixel gets the index of the narrowest band containing it,
    one bincount over (band, gt, pred), then a cumulative sum makes the bands nested.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"trimap_confusion: GT shape {gt.shape} differs from prediction shape {pred.shape}")
    if gt.ndim == 3:
        return sum((trimap_confusion(g, p, widths, num_classes, ignore) for g, p in zip(gt, pred)),
                   np.zeros((len(widths), num_classes, num_classes), dtype=np.int64))
    order = np.argsort(widths)
    sorted_w = np.asarray(widths, dtype=np.float64)[order]
    n_w, k = len(widths), num_classes
    edge = boundary_mask(gt, ignore)
    if not edge.any():  # a single-label image has no boundary, hence no band pixels
        return np.zeros((n_w, k, k), dtype=np.int64)
    dist = distance_transform_edt(~edge)  # 0 on the boundary itself
    band = np.searchsorted(sorted_w, dist, side="left")  # first width w with dist <= w
    valid = (gt != ignore) & (band < n_w)
    g, p = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
    _check_range(g, k, "GT label")
    _check_range(p, k, "predicted label")
    counts = np.bincount((band[valid] * k + g) * k + p, minlength=n_w * k * k).reshape(n_w, k, k)
    out = np.empty_like(counts)
    out[order] = np.cumsum(counts, axis=0)  # back to the caller's width order
    return out


class TrimapAccumulator:
    """Sums trimap confusion matrices over a split; ``miou()`` -> {width: mIoU}."""

    def __init__(self, widths: Sequence[int], num_classes: int, ignore: int = 255):
        self.num_classes, self.widths, self.ignore = num_classes, tuple(widths), ignore
        self.matrices = np.zeros((len(self.widths), num_classes, num_classes), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """One H x W image or a B x H x W batch (bands are computed per image)."""
        self.matrices += trimap_confusion(gt, pred, self.widths, self.num_classes, self.ignore)

    def miou(self) -> dict[int, float]:
        return {w: mean_iou(m) for w, m in zip(self.widths, self.matrices)}
