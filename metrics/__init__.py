"""Segmentation metrics: confusion matrix, per-class / mean IoU, trimap (boundary band) mIoU."""

from .confusion import ConfusionAccumulator, class_iou, confusion_matrix, mean_iou
from .trimap import DEFAULT_TRIMAP_WIDTHS, TrimapAccumulator, boundary_mask, trimap_confusion

__all__ = [
    "DEFAULT_TRIMAP_WIDTHS",
    "ConfusionAccumulator",
    "TrimapAccumulator",
    "boundary_mask",
    "class_iou",
    "confusion_matrix",
    "mean_iou",
    "trimap_confusion",
]
