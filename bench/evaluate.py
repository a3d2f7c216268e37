"""Evaluation on the val split: one confusion matrix over the split, trimap bands, predictions.

Every val image is predicted on its own, at its own size. Batching images of different sizes
would pad them, and the ASPP image-pooling branch averages over that padding, so a prediction
would depend on which images share its batch; even same-size batches may round differently
from single images in some convolution kernels. One image per forward pass makes every score
independent of batching and of the order of val.txt.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from rtrbench.methods.world import World
from rtrbench.metrics import ConfusionAccumulator, TrimapAccumulator


@dataclass(frozen=True)
class EvalResult:
    confusion: np.ndarray  # K×K, rows = GT
    class_iou: np.ndarray  # NaN where a class does not occur
    miou: float
    trimap: dict[int, float] | None  # band width (px) -> mIoU
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # the scored H×W labels of `keep` ids


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(images).argmax(1)
    finally:
        model.train(was_training)


def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    num_classes: int,
    device: torch.device,
    trimap_widths: tuple[int, ...] | None = None,
    keep: Collection[str] = (),
    num_workers: int = 0,
    world: World = World(),
) -> EvalResult:
    """Score `dataset` (items with "image", "gt", "id"), one image per forward pass; the
    predictions of the image ids in `keep` are returned as scored (for previews). Under DDP
    each process scores every `world.size`-th image and the confusion matrices are summed;
    the ids in `keep` are then scored by process 0 as well."""
    conf = ConfusionAccumulator(num_classes)
    trimap = TrimapAccumulator(trimap_widths, num_classes) if trimap_widths else None
    kept: dict[str, np.ndarray] = {}
    if world.size > 1:
        for item in (dataset[i] for i in range(len(dataset)) if world.is_main and dataset.ids[i] in keep):
            kept[item["id"]] = predict(model, item["image"][None].to(device))[0].cpu().numpy().astype(np.uint8)
        dataset, keep = Subset(dataset, range(world.rank, len(dataset), world.size)), ()
    # batch_size=None: items one by one, uncollated; workers only decode ahead
    for item in DataLoader(dataset, batch_size=None, num_workers=num_workers):
        pred = predict(model, item["image"][None].to(device))[0].cpu().numpy().astype(np.uint8)
        gt = item["gt"].numpy()
        conf.update(gt, pred)
        if trimap is not None:
            trimap.update(gt, pred)
        if item["id"] in keep:
            kept[item["id"]] = pred
    if world.size > 1:
        conf.matrix = world.total(torch.from_numpy(conf.matrix)).numpy()
        if trimap is not None:
            trimap.matrices = world.total(torch.from_numpy(trimap.matrices)).numpy()
    return EvalResult(conf.matrix.copy(), conf.class_iou(), conf.mean_iou(), trimap.miou() if trimap else None, kept)
