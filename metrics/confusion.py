"""Confusion matrix and IoU: one matrix over the whole split, 255 ignored."""

from __future__ import annotations

import numpy as np


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore: int = 255,
                     mask: np.ndarray | None = None) -> np.ndarray:
    """K x K int64 counts, rows = ground truth, columns = prediction.

    Works on any shape (one image or a batch). Pixels whose GT is ``ignore``,
    or where ``mask`` is False, are skipped.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"confusion_matrix: GT shape {gt.shape} differs from prediction shape {pred.shape}")
    valid = gt != ignore
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    g, p = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
    _check_range(g, num_classes, "GT label")
    _check_range(p, num_classes, "predicted label")
    return np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def _check_range(labels: np.ndarray, num_classes: int, what: str) -> None:
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:  # silently dropping them would inflate IoU
        raise ValueError(f"{what} {int(bad[0])} out of range for {num_classes} classes")


def class_iou(conf: np.ndarray) -> np.ndarray:
    """TP / (TP + FP + FN) per class; NaN for classes absent from both GT and prediction."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """Mean IoU over the classes that occur (in GT or prediction); NaN if none does."""
    iou = class_iou(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


class ConfusionAccumulator:
    """Sums confusion matrices over images or batches: ``update(gt, pred)``."""

    def __init__(self, num_classes: int, ignore: int = 255):
        self.num_classes, self.ignore = num_classes, ignore
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> None:
        self.matrix += confusion_matrix(gt, pred, self.num_classes, self.ignore, mask)

    def class_iou(self) -> np.ndarray:
        return class_iou(self.matrix)

    def mean_iou(self) -> float:
        return mean_iou(self.matrix)
