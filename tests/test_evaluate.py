"""Evaluation does not depend on batching or on the order of val.txt; previews are the scored predictions."""

from __future__ import annotations

import shutil

import numpy as np
import torch

from rtrbench.datasets.labelio import read_label_png
from rtrbench.datasets.voc import ScribbleDataset, collate
from rtrbench.evaluate import evaluate, predict
from rtrbench.metrics import DEFAULT_TRIMAP_WIDTHS
from rtrbench.network import DeepLabV3Plus
from rtrbench.trainer import Trainer
from tests.conftest import make_pascal_tree
from tests.test_trainer import context

SIZES = [(40, 48), (56, 36), (33, 61)]


def mixed_size_tree(tmp_path):
    """A val split whose images have three different sizes."""
    root = make_pascal_tree(tmp_path / "voc", n_val=2, size=SIZES[0])
    ids = ["va0", "va1"]
    for n, size in enumerate(SIZES[1:]):
        other = make_pascal_tree(tmp_path / f"other{n}", n_train=1, n_val=2, size=size)
        for i in range(2):
            new = f"vb{n}{i}"
            shutil.copy(other / "JPEGImages" / f"va{i}.jpg", root / "JPEGImages" / f"{new}.jpg")
            shutil.copy(other / "SegmentationClass" / f"va{i}.png", root / "SegmentationClass" / f"{new}.png")
            ids.append(new)
    return root, ids


def write_val(root, ids):
    (root / "ImageSets" / "SegmentationAug" / "val.txt").write_text("\n".join(ids) + "\n")
    return ScribbleDataset(root, "val")


def model():
    torch.manual_seed(0)
    net = DeepLabV3Plus(3, width_mult=0.25, decoder_channels=16)
    net.train()
    for _ in range(2):  # BatchNorm statistics that are not the identity
        net(torch.rand(4, 3, 48, 48) * 255)
    return net.eval()


def test_scores_do_not_depend_on_order_or_batching(tmp_path):
    root, ids = mixed_size_tree(tmp_path)
    net, cpu = model(), torch.device("cpu")
    results = []
    for order in (ids, ids[::-1], ids[2:] + ids[:2]):
        for workers in (0, 2):  # the val loader's batching/decoding must not matter either
            dataset = write_val(root, order)
            results.append(evaluate(net, dataset, 3, cpu, DEFAULT_TRIMAP_WIDTHS, keep=ids, num_workers=workers))
    for other in results[1:]:
        np.testing.assert_array_equal(other.confusion, results[0].confusion)
        assert other.trimap == results[0].trimap and other.miou == results[0].miou
        for image_id in ids:
            np.testing.assert_array_equal(other.predictions[image_id], results[0].predictions[image_id])


def test_padded_batches_would_change_predictions(tmp_path):
    """Why one image per forward pass: the ASPP image pooling averages over padding, so the old
    padded batch predicted differently from the image alone (this check keeps the test above honest)."""
    root, ids = mixed_size_tree(tmp_path)
    net, dataset = model(), write_val(root, ids)
    alone = evaluate(net, dataset, 3, torch.device("cpu"), keep=ids).predictions
    batch = collate([dataset[i] for i in range(len(dataset))])
    padded = predict(net, batch["image"]).numpy()
    differs = [not np.array_equal(padded[i, :h, :w], alone[image_id]) for i, (image_id, (h, w)) in enumerate(zip(batch["id"], batch["size"]))]
    assert any(differs)


def test_previews_are_the_scored_predictions(pascal_tree, tmp_path):
    ctx = context(pascal_tree, tmp_path, **{"train.epochs": 1})
    trainer = Trainer(ctx)
    final = trainer.run()
    for image_id in trainer.val_set.ids:
        written = read_label_png(tmp_path / "run" / "final" / "preview" / f"{image_id}_pred.png")
        np.testing.assert_array_equal(written, final.predictions[image_id])
        image = torch.from_numpy(trainer.val_set.load(trainer.val_set.ids.index(image_id)).image).permute(2, 0, 1).float()[None]
        np.testing.assert_array_equal(written, predict(trainer.model, image)[0].numpy())
