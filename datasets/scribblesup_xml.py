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
class names without regard to case, spaces and punctuation ("TV/Monitor" = "tvmonitor").
The files come from a folder or a .zip archive of XML files.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from rtrbench.datasets.scribbles import Stroke
from rtrbench.errors import DataError


@dataclass(frozen=True)
class XmlScribbles:
    """The strokes of one image, as (label, (P, 2) row/col polyline), and the size the file states."""

    width: int
    height: int
    strokes: list[Stroke]


def class_lookup(names: Sequence[str]) -> dict[str, int]:
    """Normalised class name -> class index."""
    return {_normalise(name): index for index, name in enumerate(names)}


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def parse_scribble_xml(data: bytes, where: str, classes: Mapping[str, int]) -> XmlScribbles:
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
        name = (_child(polygon, "tag", where).text or "").strip()
        label = classes.get(_normalise(name))
        if label is None:
            raise DataError(f"{where}: unknown class name {name!r}")
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
