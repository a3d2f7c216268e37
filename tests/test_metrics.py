"""Confusion matrix, IoU and trimap bands against hand-computed and brute-force references."""

import math

import numpy as np
import pytest

from rtrbench.metrics import (
    ConfusionAccumulator,
    TrimapAccumulator,
    boundary_mask,
    class_iou,
    confusion_matrix,
    mean_iou,
    trimap_confusion,
)

GT = np.array([[0, 0, 1], [1, 2, 255]])
PRED = np.array([[0, 1, 1], [2, 2, 0]])
# valid pairs (gt -> pred): 0->0, 0->1, 1->1, 1->2, 2->2; the void pixel is skipped
CONF = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_confusion_by_hand():
    conf = confusion_matrix(GT, PRED, 3)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, CONF)


def test_iou_by_hand():
    # class 0: 1/(2+1-1); class 1: 1/(2+2-1); class 2: 1/(1+2-1)
    np.testing.assert_allclose(class_iou(CONF), [1 / 2, 1 / 3, 1 / 2])
    assert mean_iou(CONF) == pytest.approx(4 / 9)


def test_absent_class_is_excluded_from_mean():
    conf = confusion_matrix(GT, PRED, 5)
    np.testing.assert_array_equal(conf[:3, :3], CONF)
    iou = class_iou(conf)
    assert np.isnan(iou[3:]).all()
    assert mean_iou(conf) == pytest.approx(4 / 9)


def test_class_only_predicted_counts_as_zero():
    conf = confusion_matrix(np.array([0, 0, 0, 0]), np.array([0, 0, 0, 1]), 3)
    np.testing.assert_array_equal(conf, [[3, 1, 0], [0, 0, 0], [0, 0, 0]])
    iou = class_iou(conf)
    assert iou[0] == pytest.approx(3 / 4) and iou[1] == 0 and np.isnan(iou[2])
    assert mean_iou(conf) == pytest.approx(3 / 8)


def test_ignore_mask_and_bad_labels():
    assert confusion_matrix(np.full((2, 2), 255), np.zeros((2, 2), int), 3).sum() == 0
    assert math.isnan(mean_iou(np.zeros((3, 3))))
    mask = np.array([[True, False, True], [True, True, True]])
    conf = confusion_matrix(GT, PRED, 3, mask=mask)  # drops the 0->1 pixel
    np.testing.assert_array_equal(conf, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    conf = confusion_matrix(np.array([0, 9, 9]), np.array([0, 0, 0]), 3, ignore=9)
    np.testing.assert_array_equal(conf, [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="7"):
        confusion_matrix(np.array([0, 7]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int), 3)


def test_batch_accumulation_equals_whole():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, (5, 8, 9))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, 4, (5, 8, 9))
    per_image, batched = ConfusionAccumulator(4), ConfusionAccumulator(4)
    for g, p in zip(gt, pred):
        per_image.update(g, p)
    batched.update(gt[:2], pred[:2])
    batched.update(gt[2:], pred[2:])
    whole = confusion_matrix(gt, pred, 4)
    np.testing.assert_array_equal(per_image.matrix, whole)
    np.testing.assert_array_equal(batched.matrix, whole)
    assert batched.mean_iou() == pytest.approx(mean_iou(whole))
    np.testing.assert_allclose(batched.class_iou(), class_iou(whole))


# ---------------------------------------------------------------- trimap

def test_boundary_uses_8_neighbours():
    gt = np.zeros((5, 5), int)
    gt[2, 2] = 1
    expected = np.zeros((5, 5), bool)
    expected[1:4, 1:4] = True  # diagonal neighbours of the centre count too
    np.testing.assert_array_equal(boundary_mask(gt), expected)


def test_trimap_vertical_boundary_by_hand():
    gt = np.zeros((4, 8), int)
    gt[:, 4:] = 1  # boundary pixels: columns 3 and 4
    pred = np.zeros((4, 8), int)
    pred[:, 5:] = 1  # prediction's edge one column to the right
    expected_edge = np.zeros((4, 8), bool)
    expected_edge[:, 3:5] = True
    np.testing.assert_array_equal(boundary_mask(gt), expected_edge)
    conf = trimap_confusion(gt, pred, [1, 2], 2)
    # w=1: columns 2..5 -> gt0 cols 2,3 (8 px, pred 0); gt1 col 4 (pred 0), col 5 (pred 1)
    np.testing.assert_array_equal(conf[0], [[8, 0], [4, 4]])
    # w=2: columns 1..6 -> gt0 cols 1-3 (12 px); gt1 col 4 (pred 0), cols 5,6 (pred 1)
    np.testing.assert_array_equal(conf[1], [[12, 0], [4, 8]])
    # the caller's width order is kept
    np.testing.assert_array_equal(trimap_confusion(gt, pred, [2, 1], 2), conf[::-1])


def test_trimap_voc_void_outline():
    gt = np.zeros((5, 7), int)
    gt[:, 4:] = 1
    gt[:, 3] = 255  # void band between the two objects
    np.testing.assert_array_equal(boundary_mask(gt), gt == 255)
    pred = np.ones((5, 7), int)
    conf = trimap_confusion(gt, pred, [1, 2], 2)
    # w=1: columns 2 and 4 (the void column itself is ignored)
    np.testing.assert_array_equal(conf[0], [[0, 5], [0, 5]])
    # w=2: columns 1,2 and 4,5
    np.testing.assert_array_equal(conf[1], [[0, 10], [0, 10]])


def test_wide_band_equals_plain_miou_and_no_boundary():
    rng = np.random.default_rng(1)
    gt = np.zeros((20, 30), int)
    gt[5:15, 8:20] = 1
    gt[12:, 22:] = 2
    pred = np.where(rng.random(gt.shape) < 0.2, rng.integers(0, 3, gt.shape), gt)
    acc = TrimapAccumulator([1, 3, 100], 3)
    acc.update(gt, pred)
    miou = acc.miou()
    assert list(miou) == [1, 3, 100]
    assert miou[100] == pytest.approx(mean_iou(confusion_matrix(gt, pred, 3)))
    assert miou[1] != pytest.approx(miou[100])
    # a single-label image has no boundary and contributes nothing
    assert trimap_confusion(np.zeros((4, 4), int), np.ones((4, 4), int), [1, 50], 2).sum() == 0


def test_trimap_batch_equals_per_image():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 3, (3, 6, 7))
    pred = rng.integers(0, 3, (3, 6, 7))
    a, b = TrimapAccumulator((1, 2), 3), TrimapAccumulator((1, 2), 3)
    a.update(gt, pred)
    for g, p in zip(gt, pred):
        b.update(g, p)
    np.testing.assert_array_equal(a.matrices, b.matrices)


def _brute_force(gt, pred, widths, k, ignore=255):
    h, w = gt.shape
    has_void = (gt == ignore).any()
    edge = []
    for y in range(h):
        for x in range(w):
            if has_void:
                on_edge = gt[y, x] == ignore
            else:
                on_edge = any(
                    gt[y + dy, x + dx] != gt[y, x]
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                    if 0 <= y + dy < h and 0 <= x + dx < w
                )
            if on_edge:
                edge.append((y, x))
    out = np.zeros((len(widths), k, k), np.int64)
    for y in range(h):
        for x in range(w):
            if gt[y, x] == ignore or not edge:
                continue
            d = min(math.hypot(y - ey, x - ex) for ey, ex in edge)
            for i, wd in enumerate(widths):
                if d <= wd:
                    out[i, gt[y, x], pred[y, x]] += 1
    return out


@pytest.mark.parametrize("seed", range(12))
def test_trimap_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    h, w, k = rng.integers(3, 9), rng.integers(3, 9), 3
    # blocky GT so there are interior pixels far from any boundary
    gt = np.repeat(np.repeat(rng.integers(0, k, (3, 3)), 3, 0), 3, 1)[:h, :w].copy()
    if seed % 3 == 0:
        gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, k, gt.shape)
    widths = [1, 2, 3, 5]
    np.testing.assert_array_equal(trimap_confusion(gt, pred, widths, k), _brute_force(gt, pred, widths, k))
