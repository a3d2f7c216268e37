"""Synthetic data set: deterministic bytes, PASCAL layout, scribbles on their class, ~3 % labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import ndimage

from rtrbench.datasets.labelio import IGNORE, read_image, read_label_png
from rtrbench.datasets.specs import SynthConfig
from rtrbench.datasets.synth import class_names, render_sample, scribble_map, write_synthetic
from rtrbench.errors import ConfigError

SPEC = SynthConfig(seed=3, n_train=24, n_val=6, size=96, classes=5)
LENGTHS = (0.0, 0.3, 0.5, 0.8, 1.0)
SCRIBBLE_DIRS = {0.0: "pascal_2012_scribble0", 0.3: "pascal_2012_scribble0.3", 0.5: "pascal_2012_scribble0.5",
                 0.8: "pascal_2012_scribble0.8", 1.0: "pascal_2012_scribble"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    calls = []
    write_synthetic(out, SPEC, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (30, 30) and len(calls) == 30
    return out


def ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "SegmentationAug" / f"{split}.txt").read_text().split()


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_spec_gives_identical_bytes(root, tmp_path):
    write_synthetic(tmp_path / "again", SPEC)
    first, second = all_files(root), all_files(tmp_path / "again")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_different_seed_differs(tmp_path):
    small = SynthConfig(seed=3, n_train=3, n_val=1, size=48)
    write_synthetic(tmp_path / "a", small)
    write_synthetic(tmp_path / "b", SynthConfig(seed=4, n_train=3, n_val=1, size=48))
    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert a["JPEGImages/synth_train_00000.jpg"] != b["JPEGImages/synth_train_00000.jpg"]
    assert sum(a[k] != b[k] for k in a if k.startswith("SegmentationClassAug")) >= 3


def test_layout(root):
    train, val = ids(root, "train"), ids(root, "val")
    assert train == [f"synth_train_{i:05d}" for i in range(SPEC.n_train)]
    assert val == [f"synth_val_{i:05d}" for i in range(SPEC.n_val)]
    assert (root / "classes.txt").read_text().splitlines() == class_names(SPEC.classes)
    stems = lambda d: sorted(p.stem for p in (root / d).iterdir())  # noqa: E731
    assert stems("JPEGImages") == sorted(train + val)
    assert stems("SegmentationClassAug") == sorted(train + val)
    assert stems("SegmentationClass") == sorted(val)
    for d in SCRIBBLE_DIRS.values():
        assert stems(d) == sorted(train)


def test_sizes_and_scribbles_lie_on_their_class(root):
    for sid in ids(root, "train"):
        image = read_image(root / "JPEGImages" / f"{sid}.jpg")
        gt = read_label_png(root / "SegmentationClassAug" / f"{sid}.png")
        assert image.shape == (SPEC.size, SPEC.size, 3) and gt.shape == image.shape[:2]
        assert gt.max() < SPEC.classes  # no void: every pixel labelled
        for d in SCRIBBLE_DIRS.values():
            scr = read_label_png(root / d / f"{sid}.png")
            assert scr.shape == gt.shape
            seeds = scr != IGNORE
            assert np.array_equal(scr[seeds], gt[seeds]), f"{d}/{sid}: seed off its class"
        # Full scribbles touch every class present in the image (each object gets a stroke).
        full = read_label_png(root / "pascal_2012_scribble" / f"{sid}.png")
        assert set(np.unique(full)) - {IGNORE} == set(np.unique(gt)), sid
    for sid in ids(root, "val"):
        np.testing.assert_array_equal(
            read_label_png(root / "SegmentationClass" / f"{sid}.png"),
            read_label_png(root / "SegmentationClassAug" / f"{sid}.png"),
        )


def test_labelled_fraction(root):
    mean = {
        r: np.mean([(read_label_png(root / d / f"{sid}.png") != IGNORE).mean() for sid in ids(root, "train")])
        for r, d in SCRIBBLE_DIRS.items()
    }
    assert 0.02 <= mean[1.0] <= 0.04, mean
    assert all(mean[a] < mean[b] for a, b in zip(LENGTHS, LENGTHS[1:])), mean


def test_clicks_one_component_per_stroke(root):
    for index, sid in enumerate(ids(root, "train")):
        clicks = read_label_png(root / "pascal_2012_scribble0" / f"{sid}.png")
        labels = [label for label, _ in render_sample(SPEC, "train", index).strokes]
        for label in set(labels):
            n = ndimage.label(clicks == label, structure=np.ones((3, 3)))[1]
            assert n == labels.count(label), f"{sid}: label {label} has {n} clicks, {labels.count(label)} strokes"


def test_every_class_appears(root):
    seen = set()
    for sid in ids(root, "train") + ids(root, "val"):
        seen |= set(np.unique(read_label_png(root / "SegmentationClassAug" / f"{sid}.png")).tolist())
    assert seen == set(range(SPEC.classes))


def test_class_names():
    names = class_names(21)
    assert names[0] == "background" and len(names) == 21 and len(set(names)) == 21


@pytest.mark.parametrize("kwargs", [{"classes": 1}, {"classes": 99}, {"size": 8}, {"n_train": 0}])
def test_invalid_spec(kwargs):
    with pytest.raises(ValidationError):
        SynthConfig(**kwargs)


def test_invalid_length(tmp_path):
    with pytest.raises(ConfigError):
        write_synthetic(tmp_path, SynthConfig(n_train=1, n_val=0, size=48), lengths=(1.5,))


def test_wide_strokes_are_clipped_to_their_class():
    # At 160 px strokes are 2 px wide and would spill over region edges without clipping.
    spec = SynthConfig(seed=1, n_train=4, n_val=0, size=160)
    for index in range(4):
        sample = render_sample(spec, "train", index)
        for r in LENGTHS:
            scr = scribble_map(sample, r)
            seeds = scr != IGNORE
            assert seeds.any() and np.array_equal(scr[seeds], sample.gt[seeds])
