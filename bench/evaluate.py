"""Evaluation on the val split: one confusion matrix over the split, trimap bands, predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rtrbench.metrics import ConfusionAccumulator, TrimapAccumulator


@dataclass(frozen=True)
class EvalResult:
    confusion: np.ndarray  # K×K, rows = GT
    class_iou: np.ndarray  # NaN where a class does not occur
    miou: float
    trimap: dict[int, float] | None  # band width (px) -> mIoU


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(images).argmax(1)
    finally:
        model.train(was_training)


def evaluate(
    model: torch.nn.Module, loader, num_classes: int, device: torch.device, trimap_widths: tuple[int, ...] | None = None
) -> EvalResult:
    conf = ConfusionAccumulator(num_classes)
    trimap = TrimapAccumulator(trimap_widths, num_classes) if trimap_widths else None
    for batch in loader:
        pred = predict(model, batch["image"].to(device)).cpu().numpy()
        gt = batch["gt"].numpy()  # padding between val images of different sizes is 255 = ignored
        conf.update(gt, pred)
        if trimap is not None:  # per image, unpadded: padding must not count as a void boundary
            for i, (h, w) in enumerate(batch["size"]):
                trimap.update(gt[i, :h, :w], pred[i, :h, :w])
    return EvalResult(conf.matrix.copy(), conf.class_iou(), conf.mean_iou(), trimap.miou() if trimap else None)
