"""The PASCAL-layout reader: items, joint transforms and one-line errors for bad data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rtrbench.datasets.labelio import IGNORE, read_label_png, write_label_png
from rtrbench.datasets.transforms import JointTransform
from rtrbench.datasets.voc import ScribbleDataset, collate, scribble_dir
from rtrbench.errors import DataError


def test_train_item_holds_image_scribbles_gt_and_id(pascal_tree):
    ds = ScribbleDataset(pascal_tree, "train", length=0.3)
    item = ds[0]
    assert item["id"] == "tr0"
    assert item["image"].shape == (3, 40, 48) and item["image"].dtype == torch.float32
    expected = read_label_png(pascal_tree / "pascal_2012_scribble0.3" / "tr0.png")
    assert torch.equal(item["scribbles"], torch.from_numpy(expected.astype(np.int64)))
    assert set(item["gt"].unique().tolist()) <= {0, 1, 2}
    assert item["roi"].all()
    assert ds.class_names == ("background", "square", "bar")


def test_val_item_has_no_scribbles(pascal_tree):
    item = ScribbleDataset(pascal_tree, "val")[1]
    assert item["id"] == "va1" and "scribbles" not in item


def test_scribble_folder_names():
    assert scribble_dir(1.0) == "pascal_2012_scribble"
    assert [scribble_dir(r) for r in (0, 0.3, 0.5, 0.8)] == [f"pascal_2012_scribble{s}" for s in ("0", "0.3", "0.5", "0.8")]


def test_extra_maps_travel_with_the_item(pascal_tree):
    proposal = np.zeros((40, 48), np.uint8)
    proposal[:, 24:] = 2
    ds = ScribbleDataset(pascal_tree, "train", 1.0, JointTransform(32, 0.5, 2.0), {"proposal": lambda i: proposal if i == "tr0" else None})
    assert set(ds[0]["proposal"].unique().tolist()) <= {0, 2, IGNORE}
    assert (ds[1]["proposal"] == IGNORE).all()


def coordinate_sample(h=60, w=70):
    rows, cols = np.mgrid[0:h, 0:w].astype(np.uint8)
    image = np.stack([rows, cols, np.zeros_like(rows)], -1)
    return image, {"row": rows.copy(), "col": cols.copy()}


@pytest.mark.parametrize("seed", range(8))
def test_joint_transform_keeps_image_and_maps_aligned(seed):
    # The image encodes each pixel's source (row, col); every label map carries the same
    # coordinates, so after scale/crop/flip both must still agree pixel by pixel.
    image, maps = coordinate_sample()
    transform = JointTransform(crop_size=80, scale_min=0.5, scale_max=2.0, flip=True)
    out, out_maps, roi = transform(image, maps, np.random.default_rng(seed))
    assert out.shape == (80, 80, 3) and roi.shape == (80, 80)
    inside = roi & (out_maps["row"] != IGNORE)
    assert inside.any()
    # bilinear (image) vs nearest (maps) sampling differ by at most one source pixel (+ rounding)
    assert np.abs(out[..., 0][inside].astype(int) - out_maps["row"][inside]).max() <= 2
    assert np.abs(out[..., 1][inside].astype(int) - out_maps["col"][inside]).max() <= 2
    # padding is outside the ROI and unlabelled in every map
    assert (out_maps["row"][~roi] == IGNORE).all() and (out_maps["col"][~roi] == IGNORE).all()


def test_joint_transform_flip_is_applied_to_all():
    image, maps = coordinate_sample(20, 20)
    transform = JointTransform(crop_size=20, flip=True)
    flips = 0
    for seed in range(10):
        out, out_maps, roi = transform(image, maps, np.random.default_rng(seed))
        assert roi.all()
        flipped = out_maps["col"][0, 0] == 19
        flips += flipped
        assert np.array_equal(out[..., 1], out_maps["col"])
    assert 0 < flips < 10


def test_augmentation_is_a_function_of_seed_epoch_index(pascal_tree):
    t = JointTransform(32, 0.5, 2.0)
    a, b = ScribbleDataset(pascal_tree, "train", 1.0, t, seed=3), ScribbleDataset(pascal_tree, "train", 1.0, t, seed=3)
    assert torch.equal(a[2]["image"], b[2]["image"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["image"], b[2]["image"])


def test_collate_pads_outside_roi():
    items = [
        {"image": torch.ones(3, 4, 5), "gt": torch.zeros(4, 5, dtype=torch.long), "roi": torch.ones(4, 5, dtype=torch.bool), "id": "a"},
        {"image": torch.ones(3, 6, 3), "gt": torch.zeros(6, 3, dtype=torch.long), "roi": torch.ones(6, 3, dtype=torch.bool), "id": "b"},
    ]
    batch = collate(items)
    assert batch["image"].shape == (2, 3, 6, 5) and batch["size"] == [(4, 5), (6, 3)]
    assert (batch["gt"][0, 4:] == IGNORE).all() and not batch["roi"][0, 4:].any()
    assert batch["roi"].sum() == 4 * 5 + 6 * 3


# -- bad data: one line naming the file ---------------------------------------------------


def _error(root, split="train") -> str:
    with pytest.raises(DataError) as info:
        ScribbleDataset(root, split, 1.0 if split == "train" else None).load(0)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_root(tmp_path):
    assert f"{tmp_path / 'nowhere'}: data root not found" == _error(tmp_path / "nowhere")


def test_missing_list_file(pascal_tree):
    (pascal_tree / "ImageSets" / "SegmentationAug" / "val.txt").unlink()
    assert _error(pascal_tree, "val").endswith("val.txt: image list not found")


def test_missing_image_and_mask(pascal_tree):
    (pascal_tree / "JPEGImages" / "tr2.jpg").unlink()
    assert _error(pascal_tree).endswith("tr2.jpg: file not found")
    (pascal_tree / "pascal_2012_scribble" / "tr3.png").unlink()
    assert "tr2.jpg: file not found (and 1 more missing files)" in _error(pascal_tree)


def test_size_mismatch(pascal_tree):
    write_label_png(pascal_tree / "SegmentationClassAug" / "tr1.png", np.zeros((40, 47), np.uint8))
    assert _error(pascal_tree).endswith("SegmentationClassAug/tr1.png: size 47×40 differs from its image's 48×40")


def test_corrupt_image(pascal_tree):
    (pascal_tree / "JPEGImages" / "tr4.jpg").write_bytes(b"not a jpeg at all")
    message = _error(pascal_tree)
    assert "tr4.jpg: cannot read image" in message


def test_unknown_label(pascal_tree):
    bad = read_label_png(pascal_tree / "pascal_2012_scribble" / "tr0.png")
    bad[0, 0] = 7
    write_label_png(pascal_tree / "pascal_2012_scribble" / "tr0.png", bad)
    assert _error(pascal_tree).endswith("pascal_2012_scribble/tr0.png: unknown label 7 (data set has 3 classes, 255 = unlabelled)")


def test_rgb_mask_is_rejected(pascal_tree):
    Image.new("RGB", (48, 40)).save(pascal_tree / "pascal_2012_scribble" / "tr0.png")
    assert "tr0.png: label map must be an indexed or greyscale PNG, got mode RGB" in _error(pascal_tree)


def test_extra_maps_stay_pixel_aligned_through_scale_crop_and_flip(pascal_tree):
    """Grid-TR's proposals travel through the loader as an extra map: one equal to the GT must
    come out equal to the GT's crop, pixel for pixel, for every scale/crop/flip drawn."""
    transform = JointTransform(32, 0.5, 2.0, flip=True)
    gt_of = lambda image_id: read_label_png(pascal_tree / "SegmentationClassAug" / f"{image_id}.png")  # noqa: E731
    ds = ScribbleDataset(pascal_tree, "train", 1.0, transform, {"proposal": gt_of}, seed=1)
    for epoch in range(4):  # 24 draws of scale, crop and flip
        ds.set_epoch(epoch)
        for index in range(len(ds)):
            item = ds[index]
            assert torch.equal(item["proposal"], item["gt"]), (epoch, index)


def test_the_decoded_cache_serves_what_the_files_hold(pascal_tree):
    """Items from the cache equal freshly decoded ones; a caller changing a sample does not
    change the cache; a budget too small for an image caches nothing."""
    t = JointTransform(32, 0.5, 2.0)
    plain = ScribbleDataset(pascal_tree, "train", 1.0, t, seed=3)
    cached = ScribbleDataset(pascal_tree, "train", 1.0, t, seed=3, cache_mb=1)
    for _ in range(2):  # the second pass reads the cache
        for i in range(len(plain)):
            x, y = plain[i], cached[i]
            assert all(torch.equal(x[k], y[k]) for k in ("image", "gt", "scribbles", "roi")), i
    assert len(cached._decoded) == len(cached)
    cached.load(0).image[:] = 0
    assert np.array_equal(cached.load(0).image, plain.load(0).image)
    tiny = ScribbleDataset(pascal_tree, "train", 1.0, cache_mb=1e-4)
    tiny.load(0)
    assert not tiny._decoded
