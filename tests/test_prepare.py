"""`rtrbench data prepare` on a miniature VOC + SBD + ScribbleSup download."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from rtrbench.cli import app
from rtrbench.datasets.labelio import IGNORE, read_label_png
from rtrbench.datasets.scribbles import disk_footprint
from rtrbench.datasets.voc import scribble_dir
from tests.miniature_voc import PERSON, SBD_ONLY, STROKES, TRAIN, VAL, VOC_TRAIN, gt_mask, make_voc_download, scribble_xml

EIGHT = np.ones((3, 3), bool)


def prepare(root: Path, *args: str):
    return CliRunner().invoke(app, ["data", "prepare", "--root", str(root), "--quiet", *args])


def prepared(base: Path, *args: str) -> Path:
    root, xml_dir, sbd = make_voc_download(base)
    result = prepare(root, "--scribbles", str(xml_dir), "--sbd", str(sbd), *args)
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return prepared(tmp_path_factory.mktemp("voc"))


def distance_to_polyline(points: np.ndarray, rows_cols: np.ndarray) -> np.ndarray:
    """Euclidean distance of each (row, col) point to the polyline."""
    a, b = rows_cols[:-1], rows_cols[1:]
    d = b - a
    t = np.clip(((points[:, None] - a) * d).sum(-1) / (d * d).sum(-1), 0, 1)
    return np.linalg.norm(points[:, None] - (a + t[..., None] * d), axis=-1).min(1)


def test_lists_are_voc_val_and_voc_train_joined_with_sbd(voc):
    lists = voc / "ImageSets" / "SegmentationAug"
    assert (lists / "train.txt").read_text().split() == list(TRAIN)  # SBD's val image is left out
    assert (lists / "val.txt").read_text().split() == list(VAL)


def test_segmentation_class_aug_prefers_voc_masks_over_sbd(voc):
    aug = voc / "SegmentationClassAug"
    for image_id in VOC_TRAIN + VAL:  # VOC_TRAIN[1] and VAL[0] also have an (all-person) SBD mask
        np.testing.assert_array_equal(read_label_png(aug / f"{image_id}.png"), gt_mask(1))
    np.testing.assert_array_equal(read_label_png(aug / f"{SBD_ONLY[0]}.png"), np.full((60, 80), PERSON))


def test_full_scribbles_lie_on_their_polylines_with_their_class(voc):
    for image_id in TRAIN:
        labels = read_label_png(voc / "pascal_2012_scribble" / f"{image_id}.png")
        assert set(np.unique(labels)) == {s.label for s in STROKES} | {IGNORE}
        for stroke in STROKES:
            pixels = np.argwhere(labels == stroke.label)
            assert distance_to_polyline(pixels, stroke.rows_cols).max() <= np.sqrt(2) + 1e-9  # within the 3 px pen
            vertices = stroke.rows_cols.astype(int)
            assert (labels[vertices[:, 0], vertices[:, 1]] == stroke.label).all()
            # 3 px wide: about 3 pixels per unit of length
            assert 2.5 * stroke.length < len(pixels) <= 3 * (stroke.length + 3)  # + the pen past both ends


def test_shortening_keeps_r_of_each_xml_stroke_exactly(tmp_path):
    root = prepared(tmp_path, "--stroke-width", "1", "--lengths", "0.3,0.5,0.8")
    for image_id in TRAIN:
        for r in (0.3, 0.5, 0.8):
            labels = read_label_png(root / scribble_dir(r) / f"{image_id}.png")
            for stroke in STROKES:
                kept = labels == stroke.label
                assert ndimage.label(kept, EIGHT)[1] == 1  # one contiguous piece
                # a 1 px axis-aligned polyline of length L covers L + 1 pixels
                assert abs((kept.sum() - 1) - r * stroke.length) <= 1, (image_id, r, stroke.tag)
                middle = np.argwhere(kept).mean(0)  # the kept part is centred on the stroke
                assert distance_to_polyline(middle[None], stroke.rows_cols)[0] < 0.75 * r * stroke.length


def test_length_zero_leaves_one_click_per_stroke_at_its_middle(voc):
    disk = disk_footprint(3.0).sum()
    for image_id in TRAIN:
        labels = read_label_png(voc / "pascal_2012_scribble0" / f"{image_id}.png")
        for stroke in STROKES:
            comps, n = ndimage.label(labels == stroke.label, EIGHT)
            assert n == 1 and (comps > 0).sum() == disk
            arc = np.concatenate([[0], np.cumsum(np.abs(np.diff(stroke.rows_cols, axis=0)).sum(1))])
            mid = np.array([np.interp(arc[-1] / 2, arc, stroke.rows_cols[:, k]) for k in (0, 1)])
            np.testing.assert_allclose(np.argwhere(comps > 0).mean(0), mid, atol=0.5)


def test_rerun_writes_nothing_and_says_so(tmp_path):
    root = prepared(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = prepare(root, "--scribbles", str(tmp_path / "scribble_annotation" / "pascal_2012"), "--sbd", str(tmp_path / "benchmark_RELEASE" / "dataset"))
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes


def test_existing_files_are_kept_unless_forced(tmp_path):
    root, xml_dir, sbd = make_voc_download(tmp_path)
    mine = root / "pascal_2012_scribble0.3" / f"{TRAIN[0]}.png"
    mine.parent.mkdir()
    mine.write_bytes(b"the user's own file")
    assert prepare(root, "--scribbles", str(xml_dir), "--sbd", str(sbd)).exit_code != 0  # not a PNG: the check fails
    assert mine.read_bytes() == b"the user's own file"
    result = prepare(root, "--scribbles", str(xml_dir), "--sbd", str(sbd), "--force")
    assert result.exit_code == 0, result.output
    assert (read_label_png(mine) != IGNORE).any()
    assert not list(root.rglob("*.tmp"))  # no temporary file left behind


def test_zip_of_xml_files_gives_the_same_scribbles(voc, tmp_path):
    root, xml_dir, sbd = make_voc_download(tmp_path)
    archive = tmp_path / "scribbles.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in xml_dir.iterdir():
            zf.write(path, f"pascal_2012/{path.name}")
    assert prepare(root, "--scribbles", str(archive), "--sbd", str(sbd)).exit_code == 0
    for r in (1, 0, 0.3):
        for image_id in TRAIN:
            name = Path(scribble_dir(r)) / f"{image_id}.png"
            np.testing.assert_array_equal(read_label_png(root / name), read_label_png(voc / name))


def test_without_xml_shortened_scribbles_come_from_the_png_strokes(voc, tmp_path):
    root, _, sbd = make_voc_download(tmp_path)
    full = root / "pascal_2012_scribble"
    full.mkdir()
    for image_id in TRAIN:
        (full / f"{image_id}.png").write_bytes((voc / "pascal_2012_scribble" / f"{image_id}.png").read_bytes())
    result = prepare(root, "--sbd", str(sbd), "--lengths", "0,0.5")
    assert result.exit_code == 0, result.output
    for image_id in TRAIN:
        clicks = read_label_png(root / "pascal_2012_scribble0" / f"{image_id}.png")
        half = read_label_png(root / "pascal_2012_scribble0.5" / f"{image_id}.png")
        for stroke in STROKES:
            assert ndimage.label(clicks == stroke.label, EIGHT)[1] == 1
            # the skeleton of a 3 px line is about as long as the polyline
            assert abs((half == stroke.label).sum() / 3 - 0.5 * stroke.length) <= 4


BAD_XML = {
    "corrupt": (lambda: "<annotation><size><width>80</width>", "corrupt XML"),
    "unknown class": (lambda: scribble_xml(strokes=[STROKES[0].__class__("unicorn", 0, ((1, 1), (5, 1)))]), "unknown class name 'unicorn'"),
    "size mismatch": (lambda: scribble_xml(size=(60, 81)), "size 81×60 differs"),
}


@pytest.mark.parametrize("case", list(BAD_XML))
def test_a_bad_xml_stops_with_one_line_naming_it(tmp_path, case):
    root, xml_dir, sbd = make_voc_download(tmp_path)
    text, message = BAD_XML[case]
    bad = xml_dir / f"{TRAIN[1]}.xml"
    bad.write_text(text())
    result = CliRunner().invoke(app, ["data", "prepare", "--root", str(root), "--scribbles", str(xml_dir), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert f"{bad}: " in result.stderr and message in result.stderr


def test_an_xml_for_a_missing_image_stops_naming_it(tmp_path):
    root, xml_dir, _ = make_voc_download(tmp_path)
    stray = xml_dir / "2009_999999.xml"
    stray.write_text(scribble_xml())
    result = prepare(root, "--scribbles", str(xml_dir))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"{stray}: its image {root / 'JPEGImages' / '2009_999999.jpg'} does not exist" in result.stderr


def test_a_missing_mask_fails_the_check_with_a_summary(tmp_path):
    root, xml_dir, sbd = make_voc_download(tmp_path)
    (root / "SegmentationClass" / f"{VOC_TRAIN[0]}.png").unlink()  # and SBD has no mask of it either
    result = prepare(root, "--scribbles", str(xml_dir), "--sbd", str(sbd))
    assert result.exit_code == 2
    assert "SegmentationClassAug" in result.stdout and VOC_TRAIN[0] in result.stdout  # the table names it
    assert result.stderr.count("\n") == 1
    assert f"{root / 'SegmentationClassAug' / VOC_TRAIN[0]}.png: file not found" in result.stderr


def test_stray_files_are_reported_but_do_not_fail(voc):
    stray = voc / "JPEGImages" / "notes.txt"
    stray.write_text("hello")
    try:
        result = prepare(voc)
        assert result.exit_code == 0, result.output
        assert "1 stray files" in result.stdout and "notes.txt" in result.stdout
    finally:
        stray.unlink()
