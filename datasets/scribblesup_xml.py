"""ScribbleSup's original scribble annotations: one XML file per image, one polyline per stroke.

The format (Lin et al. 2016; the reference conversion script `readspots.m` reads it the same way)::

    <annotation>
      <filename>2007_000032.jpg</filename>
      <size><width>500</width><height>281</height></size>
      <polygon><tag>aeroplane</tag><point><X>103</X><Y>133</Y></point>...</polygon>
      ...
    </annotation>

Coordinates are 0-based pixel columns (X) and rows (Y); points outside the image are clamped
into it, as the reference script does. Element names are matched without regard to case, and
class names without regard to case, spaces and punctuation ("TV/Monitor" = "tvmonitor"). A tag
may also be a usual alias of a VOC class ("plane", "tv") or a name mapped by a class-map file.
The files come from a folder or a .zip archive of XML files.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from rtrbench.datasets.scribbles import Stroke
from rtrbench.errors import ConfigError, DataError


@dataclass(frozen=True)
class XmlScribbles:
    """The strokes of one image, as (label, (P, 2) row/col polyline), and the size the file states."""

    width: int
    height: int
    strokes: list[Stroke]


# Other spellings of VOC's class names (keys: VOC_CLASSES), as other tools and data sets write
# them. Used only for the classes a data set has, and never over one of its own names, so they
# cannot change what a non-VOC class list means. Spellings that normalise to the class name
# itself ("dining table", "tv/monitor", "potted plant") need no entry.
VOC_ALIASES: dict[str, tuple[str, ...]] = {
    "background": ("bg",),
    "aeroplane": ("plane", "airplane", "aircraft"),
    "bicycle": ("bike",),
    "boat": ("ship",),
    "car": ("automobile",),
    "diningtable": ("table",),
    "motorbike": ("motorcycle",),
    "person": ("people", "human"),
    "pottedplant": ("plant", "houseplant"),
    "sofa": ("couch",),
    "tvmonitor": ("tv", "monitor", "television"),
}


@dataclass(frozen=True)
class ClassLookup:
    """XML tag -> class index: the data set's names, their usual aliases, and a class map's names."""

    names: tuple[str, ...]
    index: dict[str, int]  # normalised tag -> class index
    has_aliases: bool
    class_map: Path | None = None

    def label(self, tag: str, where: str) -> int:
        label = self.index.get(_normalise(tag))
        if label is None:
            extra = ", or their usual aliases" if self.has_aliases else ""
            if self.class_map is not None:
                extra += f", or the names mapped in {self.class_map}"
            raise DataError(
                f"{where}: unknown class name {tag!r} (accepted: {', '.join(self.names)}{extra}; "
                "map other names with --class-map)"
            )
        return label


def class_lookup(names: Sequence[str], class_map: Path | None = None) -> ClassLookup:
    """The lookup for a data set's class ``names``; a ``class_map`` file's names win over all others."""
    own = {_normalise(name): index for index, name in enumerate(names)}
    aliases = {
        _normalise(alias): own[target] for target, spellings in VOC_ALIASES.items() if target in own for alias in spellings
    }
    index = aliases | own  # a data set's own name beats an alias of another class
    if class_map is not None:
        index |= read_class_map(class_map, names)  # explicit: beats everything
    return ClassLookup(tuple(names), index, bool(aliases), class_map)


def read_class_map(path: Path, names: Sequence[str]) -> dict[str, int]:
    """Lines ``name_in_xml = class_name`` -> {normalised name_in_xml: index}; blank lines and # comments skipped."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: class map not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read class map ({exc})") from None
    own = {_normalise(name): index for index, name in enumerate(names)}
    mapping: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        tag, equals, target = (part.strip() for part in line.partition("="))
        if not equals or not _normalise(tag) or not target:
            raise ConfigError(f"{where}: expected 'name_in_xml = class_name', found {line!r}")
        label = own.get(_normalise(target))
        if label is None:
            raise ConfigError(f"{where}: {target!r} is not a class name (expected one of: {', '.join(names)})")
        key = _normalise(tag)
        if mapping.get(key, label) != label:  # the same name twice, to different classes
            raise ConfigError(f"{where}: {tag!r} is already mapped to {names[mapping[key]]!r}")
        mapping[key] = label
    return mapping


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def parse_scribble_xml(data: bytes, where: str, classes: ClassLookup) -> XmlScribbles:
    """Strokes of one ScribbleSup XML file; ``where`` names the file in errors."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise DataError(f"{where}: corrupt XML ({exc})") from None
    if root.tag.lower() != "annotation":
        raise DataError(f"{where}: expected an <annotation> root element, found <{root.tag}>")
    size = _child(root, "size", where)
    width, height = (_number(_child(size, name, where), where, int) for name in ("width", "height"))
    if width < 1 or height < 1:
        raise DataError(f"{where}: image size {width}×{height} is empty")
    strokes: list[Stroke] = []
    for polygon in _children(root, "polygon"):
        label = classes.label((_child(polygon, "tag", where).text or "").strip(), where)
        points = [
            (_number(_child(p, "y", where), where, float), _number(_child(p, "x", where), where, float))
            for p in _children(polygon, "point")
        ]
        if points:  # an empty polygon labels nothing; the annotation tool leaves a few
            rows_cols = np.clip(np.array(points), 0, [height - 1, width - 1])
            strokes.append((label, rows_cols))
    return XmlScribbles(width, height, strokes)


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if child.tag.lower() == name]


def _child(element: ElementTree.Element, name: str, where: str) -> ElementTree.Element:
    found = _children(element, name)
    if not found:
        raise DataError(f"{where}: <{element.tag}> has no <{name}> element")
    return found[0]


def _number(element: ElementTree.Element, where: str, cast: type) -> int | float:
    text = (element.text or "").strip()
    try:
        return cast(float(text)) if cast is int else cast(text)
    except ValueError:
        raise DataError(f"{where}: <{element.tag}> holds {text!r}, not a number") from None


class XmlSource:
    """The XML files of a folder (searched recursively) or a .zip archive, by image id (file stem)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            members = {p.stem: p for p in self.path.rglob("*") if p.suffix.lower() == ".xml" and p.is_file()}
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            members = {
                Path(info.filename).stem: info.filename
                for info in self._zip.infolist()
                if info.filename.lower().endswith(".xml") and not info.is_dir()
            }
        elif self.path.exists():
            raise DataError(f"{self.path}: --scribbles must be a folder or a .zip of ScribbleSup XML files")
        else:
            raise DataError(f"{self.path}: scribble annotations not found")
        if not members:
            raise DataError(f"{self.path}: no .xml files found")
        self._members = members

    def __enter__(self) -> XmlSource:
        return self

    def __exit__(self, *exc) -> None:
        if self._zip is not None:
            self._zip.close()

    def ids(self) -> list[str]:
        return sorted(self._members)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._members

    def where(self, image_id: str) -> str:
        """How errors name the file: its path, or archive.zip:member."""
        member = self._members[image_id]
        return f"{self.path}:{member}" if self._zip is not None else str(member)

    def read(self, image_id: str) -> bytes:
        member = self._members[image_id]
        try:
            return self._zip.read(member) if self._zip is not None else Path(member).read_bytes()
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"{self.where(image_id)}: cannot read ({exc})") from None
