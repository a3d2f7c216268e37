"""Class names in ScribbleSup XML tags: VOC's names, their usual aliases, and --class-map files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rtrbench.cli import app
from rtrbench.datasets.labelio import IGNORE, read_label_png
from rtrbench.datasets.scribblesup_xml import VOC_ALIASES, _normalise, class_lookup, read_class_map
from rtrbench.datasets.classes import VOC_CLASSES
from rtrbench.errors import ConfigError, DataError
from tests.miniature_voc import STROKES, TRAIN, XmlStroke, make_voc_download, scribble_xml

VOC = class_lookup(VOC_CLASSES)

ALIASES = {
    "plane": "aeroplane", "airplane": "aeroplane", "Aeroplane": "aeroplane", "aircraft": "aeroplane",
    "bike": "bicycle", "bicycle": "bicycle",
    "table": "diningtable", "dining table": "diningtable", "Dining-Table": "diningtable", "diningtable": "diningtable",
    "tv": "tvmonitor", "TV": "tvmonitor", "monitor": "tvmonitor", "tv/monitor": "tvmonitor", "tv monitor": "tvmonitor",
    "television": "tvmonitor", "tvmonitor": "tvmonitor",
    "plant": "pottedplant", "potted plant": "pottedplant", "potted_plant": "pottedplant",
    "motorcycle": "motorbike", "motor bike": "motorbike", "motorbike": "motorbike",
    "couch": "sofa", "sofa": "sofa",
    "people": "person", "person": "person", "human": "person",
    "bg": "background", "BG": "background", "background": "background",
    "ship": "boat", "automobile": "car",
}  # fmt: skip


@pytest.mark.parametrize("tag", list(ALIASES))
def test_voc_names_and_their_aliases_give_the_voc_index(tag):
    assert VOC.label(tag, "x.xml") == VOC_CLASSES.index(ALIASES[tag])


def test_aliases_are_unambiguous():
    spellings = [_normalise(a) for aliases in VOC_ALIASES.values() for a in aliases]
    assert len(set(spellings)) == len(spellings)  # no alias names two classes
    assert not set(spellings) & {_normalise(name) for name in VOC_CLASSES}  # nor shadows a class name
    assert set(VOC_ALIASES) <= set(VOC_CLASSES)


def test_aliases_apply_only_to_classes_the_data_set_has():
    lookup = class_lookup(("background", "road", "tree"))
    assert lookup.label("bg", "x.xml") == 0  # its target is one of the names
    with pytest.raises(DataError, match="unknown class name 'plane'"):
        lookup.label("plane", "x.xml")


def test_a_data_sets_own_name_beats_an_alias():
    lookup = class_lookup(("background", "table", "diningtable"))
    assert lookup.label("table", "x.xml") == 1
    assert lookup.label("dining table", "x.xml") == 2


def test_unknown_name_error_is_one_line_listing_the_accepted_names():
    with pytest.raises(DataError) as err:
        VOC.label("unicorn", "a/2007_000032.xml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("a/2007_000032.xml: unknown class name 'unicorn' (accepted: background, aeroplane, bicycle")
    assert all(name in message for name in VOC_CLASSES)
    assert "usual aliases" in message and "--class-map" in message
    # no aliases for a non-VOC class list: the message does not promise any
    with pytest.raises(DataError) as err:
        class_lookup(("road", "tree")).label("unicorn", "x.xml")
    assert "(accepted: road, tree; map other names with --class-map)" in str(err.value)


def test_class_map_reads_lines_comments_and_spellings(tmp_path):
    path = tmp_path / "map.txt"
    path.write_text("# German tags\n\nFlugzeug = aeroplane   # the plane\n  Mensch=Person\nTV-Gerät = tv/monitor\n")
    assert read_class_map(path, VOC_CLASSES) == {"flugzeug": 1, "mensch": 15, "tvgert": 20}
    lookup = class_lookup(VOC_CLASSES, path)
    assert lookup.label("FLUGZEUG", "x.xml") == 1 and lookup.label("plane", "x.xml") == 1  # aliases still work
    with pytest.raises(DataError, match=f"or the names mapped in {path}; map other names with --class-map"):
        lookup.label("Hund", "x.xml")


BAD_MAPS = {
    "no equals sign": ("cat = cat\nplane aeroplane\n", 2, "expected 'name_in_xml = class_name', found 'plane aeroplane'"),
    "no name": ("= aeroplane\n", 1, "expected 'name_in_xml = class_name'"),
    "no class": ("# ok\nplane =\n", 2, "expected 'name_in_xml = class_name'"),
    "not a class": ("\nplane = airplane\n", 2, "'airplane' is not a class name (expected one of: background, aeroplane,"),
    "two classes": ("x = cat\nX = dog\n", 2, "'X' is already mapped to 'cat'"),
}


@pytest.mark.parametrize("case", list(BAD_MAPS))
def test_a_bad_class_map_line_gives_one_line_naming_file_and_line(tmp_path, case):
    text, line, message = BAD_MAPS[case]
    path = tmp_path / "map.txt"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_class_map(path, VOC_CLASSES)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)


def test_a_missing_class_map_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothing.txt: class map not found"):
        class_lookup(VOC_CLASSES, tmp_path / "nothing.txt")


# ---------------------------------------------------------------------------------------------
# End to end through `rtrbench data prepare`


def retagged_download(base: Path, tags: tuple[str, ...]) -> tuple[Path, list[str]]:
    """The miniature download with STROKES' tags replaced by ``tags``: (root, prepare's arguments)."""
    root, xml_dir, sbd = make_voc_download(base)
    strokes = [XmlStroke(tag, s.label, s.xy) for tag, s in zip(tags, STROKES, strict=True)]
    for image_id in TRAIN:
        (xml_dir / f"{image_id}.xml").write_text(scribble_xml(strokes, filename=f"{image_id}.jpg"))
    args = ["data", "prepare", "--root", str(root), "--scribbles", str(xml_dir), "--sbd", str(sbd), "--lengths", "0", "--quiet"]
    return root, args


def assert_scribbles_have_stroke_labels(root: Path) -> None:
    for image_id in TRAIN:
        labels = read_label_png(root / "pascal_2012_scribble" / f"{image_id}.png")
        assert set(np.unique(labels)) == {s.label for s in STROKES} | {IGNORE}
        for stroke in STROKES:
            vertices = stroke.rows_cols.astype(int)
            assert (labels[vertices[:, 0], vertices[:, 1]] == stroke.label).all()


def test_prepare_reads_aliases(tmp_path):
    root, args = retagged_download(tmp_path, ("bg", "plane", "people"))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert_scribbles_have_stroke_labels(root)


def test_prepare_reads_a_class_map(tmp_path):
    root, args = retagged_download(tmp_path, ("Hintergrund", "Flugzeug", "Mensch"))
    unmapped = CliRunner().invoke(app, args)
    assert unmapped.exit_code == 2 and unmapped.stderr.count("\n") == 1
    assert "unknown class name 'Hintergrund'" in unmapped.stderr and "--class-map" in unmapped.stderr
    class_map = tmp_path / "german.txt"
    class_map.write_text("# XML tag = VOC class\nhintergrund = background\nflugzeug = aeroplane\nmensch = person\n")
    result = CliRunner().invoke(app, [*args, "--class-map", str(class_map)])
    assert result.exit_code == 0, result.output
    assert_scribbles_have_stroke_labels(root)


def test_prepare_stops_on_a_bad_class_map_with_one_line(tmp_path):
    root, args = retagged_download(tmp_path, ("background", "plane", "person"))
    class_map = tmp_path / "map.txt"
    class_map.write_text("plane = aeroplane\nman = human\n")
    result = CliRunner().invoke(app, [*args, "--class-map", str(class_map)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert f"{class_map}:2: 'human' is not a class name" in result.stderr
    assert not (root / "pascal_2012_scribble").exists()  # stopped before writing any scribbles
